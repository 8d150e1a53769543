// Package config reads and checks ringside's YAML configuration.
//
// Load parses the file into a yaml.Node tree first, so that every later error — an unknown
// key, a value of the wrong type, a value out of range — names the file, the line, the field
// path and what is allowed. ${VAR} and ${VAR:-default} are expanded in scalar values (never in
// keys, and never into YAML syntax: an environment value cannot add fields).
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem in a configuration file.
type Error struct {
	File  string
	Line  int    // 0 when the problem is not tied to a line (for example a missing section)
	Field string // the field path, e.g. upstreams[0].balancer
	Msg   string // what is wrong and what is allowed
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads, expands, decodes, defaults and validates the file at path. Every problem found
// is returned, joined; each is an *Error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load on bytes already read; lookup resolves ${VAR} (os.LookupEnv in Load).
func Parse(name string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(name, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{File: name, Msg: "empty file: want at least an upstreams list"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: name, Line: root.Line, Msg: "want a mapping of sections (admin, discovery, upstreams, ...)"}
	}
	lines := make(map[string]int)
	c := &treeChecker{file: name, skip: make(map[*yaml.Node]bool)}
	walk(root, "", func(path string, n *yaml.Node) {
		lines[path] = n.Line
		if n.Kind == yaml.ScalarNode && n.Tag != "!!binary" {
			v, err := expand(n.Value, lookup)
			if err != nil {
				c.skip[n] = true
				c.fail(n.Line, path, "%v", err)
				return
			}
			if v != n.Value && n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) == 0 {
				// An unquoted ${PORT} was resolved as a string before expansion; let yaml
				// resolve the expanded text again, so it can fill an int, float or bool.
				n.Tag = ""
			}
			n.Value = v
		}
	})
	var cfg Config
	decodeErr := root.Decode(&cfg)
	var te *yaml.TypeError
	if decodeErr != nil && !errors.As(decodeErr, &te) {
		return nil, &Error{File: name, Msg: decodeErr.Error()} // e.g. excessive aliasing
	}
	c.check(root, reflect.TypeFor[Config](), "", root.Line)
	if err := c.err(); err != nil {
		return nil, err
	}
	if decodeErr != nil {
		return nil, typeErrors(name, decodeErr) // a shape check does not know: still with its line
	}
	cfg.file, cfg.lines = name, lines
	cfg.applyDefaults()
	v := &validator{cfg: &cfg}
	cfg.validate(v)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return &cfg, nil
}

// walk calls fn for every node under n with its field path.
func walk(n *yaml.Node, path string, fn func(string, *yaml.Node)) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			fn(p, n.Content[i+1])
			walk(n.Content[i+1], p, fn)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			fn(p, c)
			walk(c, p, fn)
		}
	case yaml.AliasNode:
		// Aliases share their anchor's node, already walked (and expanded) where it stands.
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// syntaxError turns a yaml.v3 parse error ("yaml: line 7: ...") into an *Error.
func syntaxError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ":"); ok {
			if n, convErr := strconv.Atoi(num); convErr == nil {
				line, msg = n, strings.TrimSpace(tail)
			}
		}
	}
	return &Error{File: file, Line: line, Msg: "YAML syntax: " + msg}
}

// typeErrors turns yaml.v3's *yaml.TypeError ("line 7: cannot unmarshal !!str `x` into int")
// into one *Error per problem.
func typeErrors(file string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return &Error{File: file, Msg: err.Error()}
	}
	errs := make([]error, 0, len(te.Errors))
	for _, e := range te.Errors {
		se := syntaxError(file, fmt.Errorf("yaml: %s", e)).(*Error)
		se.Msg = strings.Replace(se.Msg, "YAML syntax: ", "wrong type: ", 1)
		errs = append(errs, se)
	}
	return errors.Join(errs...)
}
