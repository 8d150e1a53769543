package file

import (
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// This file holds the generic part of the YAML walk: following aliases within a budget,
// expanding merge keys, and decoding strings, lists and maps of strings.

// maxMergeDepth bounds merge keys inside merged mappings (an anchor can merge itself).
const maxMergeDepth = 8

// field is one key of a mapping, after merge keys have been expanded.
type field struct {
	name  string
	key   *yaml.Node
	value *yaml.Node
}

// resolve follows n if it is an alias, and charges the visit to the budget.
func (p *parser) resolve(n *yaml.Node, path string) (*yaml.Node, error) {
	p.budget--
	if p.budget < 0 {
		return nil, p.errorf(n, path, "too many nodes (aliases expand to more than the file holds tenfold)")
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias, nil
	}
	return n, nil
}

// mapping returns the keys of the mapping n in file order, merged keys first. Explicit keys
// override merged ones and earlier merged mappings override later ones, as YAML's merge key
// specifies; an explicit key given twice is an error.
func (p *parser) mapping(n *yaml.Node, path string) ([]field, error) {
	return p.mappingDepth(n, path, 0)
}

func (p *parser) mappingDepth(n *yaml.Node, path string, depth int) ([]field, error) {
	r, err := p.resolve(n, path)
	if err != nil {
		return nil, err
	}
	if r.Kind != yaml.MappingNode {
		return nil, p.errorf(n, path, "want a mapping, got %s", describe(r))
	}
	var own, merged []field
	seen := make(map[string]int, len(r.Content)/2)
	for i := 0; i+1 < len(r.Content); i += 2 {
		k, v := r.Content[i], r.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			fs, err := p.merge(v, path, depth)
			if err != nil {
				return nil, err
			}
			merged = append(merged, fs...)
			continue
		}
		kr, err := p.resolve(k, path)
		if err != nil {
			return nil, err
		}
		if kr.Kind != yaml.ScalarNode || isNull(kr) {
			return nil, p.errorf(k, path, "want a string key, got %s", describe(kr))
		}
		name := kr.Value
		if line, dup := seen[name]; dup {
			return nil, p.errorf(k, join(path, name), "duplicate key (first at line %d)", line)
		}
		seen[name] = k.Line
		own = append(own, field{name: name, key: k, value: v})
	}
	out := make([]field, 0, len(merged)+len(own))
	for _, f := range merged {
		if _, ok := seen[f.name]; !ok {
			seen[f.name] = f.key.Line
			out = append(out, f)
		}
	}
	return append(out, own...), nil
}

// merge expands the value of a merge key: a mapping or a list of mappings.
func (p *parser) merge(n *yaml.Node, path string, depth int) ([]field, error) {
	if depth >= maxMergeDepth {
		return nil, p.errorf(n, path, "merge keys (<<) nested more than %d deep", maxMergeDepth)
	}
	r, err := p.resolve(n, path)
	if err != nil {
		return nil, err
	}
	if r.Kind != yaml.SequenceNode {
		return p.mappingDepth(n, path, depth+1)
	}
	var out []field
	for _, item := range r.Content {
		fs, err := p.mappingDepth(item, path, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

// scalar resolves n and checks that it is a scalar (possibly null).
func (p *parser) scalar(n *yaml.Node, path string) (*yaml.Node, error) {
	r, err := p.resolve(n, path)
	if err != nil {
		return nil, err
	}
	if r.Kind != yaml.ScalarNode {
		return nil, p.errorf(n, path, "want a single value, got %s", describe(r))
	}
	return r, nil
}

// str returns a scalar as written, so that version: 1.10 stays "1.10"; null is "".
func (p *parser) str(n *yaml.Node, path string) (string, error) {
	r, err := p.scalar(n, path)
	if err != nil || isNull(r) {
		return "", err
	}
	return r.Value, nil
}

// strList decodes a list of scalars; null is an empty list.
func (p *parser) strList(n *yaml.Node, path string) ([]string, error) {
	r, err := p.resolve(n, path)
	if err != nil || isNull(r) {
		return nil, err
	}
	if r.Kind != yaml.SequenceNode {
		return nil, p.errorf(n, path, "want a list, got %s", describe(r))
	}
	out := make([]string, 0, len(r.Content))
	for i, item := range r.Content {
		s, err := p.str(item, path+"["+strconv.Itoa(i)+"]")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// strMap decodes a mapping of scalars; null or {} is a nil map.
func (p *parser) strMap(n *yaml.Node, path string) (map[string]string, error) {
	r, err := p.resolve(n, path)
	if err != nil || isNull(r) {
		return nil, err
	}
	fields, err := p.mapping(n, path)
	if err != nil || len(fields) == 0 {
		return nil, err
	}
	out := make(map[string]string, len(fields))
	for _, f := range fields {
		v, err := p.str(f.value, join(path, f.name))
		if err != nil {
			return nil, err
		}
		out[f.name] = v
	}
	return out, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what n is, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "an alias"
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// join appends key to path as .key, or as ["key"] when key would be ambiguous after a dot.
func join(path, key string) string {
	switch {
	case !plainKey.MatchString(key):
		return path + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	}
	return path + "." + key
}
