package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The decoding layer. yaml.v3 decodes the node tree into Config; before its result is used,
// treeChecker.check walks the same tree beside Config's type and explains every node that does not
// fit its field — an unknown key, a duplicate key, a value of the wrong type or shape — as an
// *Error with the file, the value's line, the full field path and what the field allows. A
// new field of a known kind needs nothing here.

var (
	durationType        = reflect.TypeFor[time.Duration]()
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// maxDecodeErrors bounds the problems reported for one file: an alias repeats its anchor's
// problems at every place it is used, and a few lines could otherwise yield megabytes.
const maxDecodeErrors = 50

// treeChecker collects the problems of one file.
type treeChecker struct {
	file string
	skip map[*yaml.Node]bool // nodes already reported (a ${VAR} that failed to expand)
	open map[*yaml.Node]bool // anchored nodes being walked, to refuse an alias cycle
	errs []error             // each an *Error
	more bool                // the walk stopped at maxDecodeErrors
}

func (c *treeChecker) fail(line int, field, format string, args ...any) {
	if c.full() {
		c.more = true
		return
	}
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// full reports whether enough problems were found to stop looking.
func (c *treeChecker) full() bool { return len(c.errs) >= maxDecodeErrors }

// err returns the problems found, in the order of their lines, or nil.
func (c *treeChecker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	errs := slices.Clone(c.errs)
	slices.SortStableFunc(errs, func(a, b error) int { return a.(*Error).Line - b.(*Error).Line })
	if c.more {
		errs = append(errs, &Error{File: c.file, Msg: fmt.Sprintf("stopped after %d problems: fix these first", maxDecodeErrors)})
	}
	return errors.Join(errs...)
}

// check reports whether n fits t, the type of the field at path, and descends into it. line
// is where the field stands: its key's line (a block mapping or list starts on the next one),
// and an alias's own line, not its anchor's.
func (c *treeChecker) check(n *yaml.Node, t reflect.Type, path string, line int) {
	switch {
	case n.Kind == yaml.AliasNode:
		if !c.enter(n, path) {
			return
		}
		defer delete(c.open, n.Alias)
		n = n.Alias
	case n.Anchor != "":
		c.mark(n)
		defer delete(c.open, n)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if c.full() {
		c.more = true
		return
	}
	if c.skip[n] || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // null leaves the field at its zero value (then its default)
	}
	switch {
	case reflect.PointerTo(t).Implements(unmarshalerType),
		reflect.PointerTo(t).Implements(textUnmarshalerType) && n.Kind == yaml.ScalarNode:
		c.custom(n, t, line, path)
	case t.Kind() == reflect.Struct:
		if c.shape(n, yaml.MappingNode, t, line, path) {
			c.fields(n, t, path)
		}
	case t.Kind() == reflect.Map:
		if c.shape(n, yaml.MappingNode, t, line, path) {
			c.entries(n, t, path)
		}
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		if n.Kind == yaml.ScalarNode {
			c.fail(line, path, "%s is not a list: write [%s]", describe(n), n.Value)
			return
		}
		if c.shape(n, yaml.SequenceNode, t, line, path) {
			for i, e := range n.Content {
				c.check(e, t.Elem(), path+"["+strconv.Itoa(i)+"]", e.Line)
			}
		}
	case t.Kind() == reflect.Interface:
		// Anything decodes into an interface.
	default:
		if c.shape(n, yaml.ScalarNode, t, line, path) {
			c.scalar(n, t, line, path)
		}
	}
}

// shape reports whether n is of kind want, and says what t allows when it is not.
func (c *treeChecker) shape(n *yaml.Node, want yaml.Kind, t reflect.Type, line int, path string) bool {
	if n.Kind == want {
		return true
	}
	c.fail(line, path, "want %s, not %s", allowed(t), describe(n))
	return false
}

// mapping calls fn with each key and value of mapping n and the key's field path. A "<<" key
// merges the mappings it names, as yaml.v3 does; a key seen twice is reported, not passed on.
func (c *treeChecker) mapping(n *yaml.Node, path string, fn func(k, v *yaml.Node, path string)) {
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if c.full() {
			c.more = true
			return
		}
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			c.merge(v, path, fn)
			continue
		}
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			c.fail(k.Line, p, "duplicate key (also at line %d): keep one", first)
			continue
		}
		seen[k.Value] = k.Line
		fn(k, v, p)
	}
}

// fields checks a mapping that fills a struct of type t.
func (c *treeChecker) fields(n *yaml.Node, t reflect.Type, path string) {
	fields := yamlFields(t)
	c.mapping(n, path, func(k, v *yaml.Node, p string) {
		if ft, ok := fields[k.Value]; ok {
			c.check(v, ft, p, k.Line)
			return
		}
		c.fail(k.Line, p, "unknown field; allowed here: %s", strings.Join(sortedKeys(fields), ", "))
	})
}

// entries checks a mapping that fills a Go map of type t.
func (c *treeChecker) entries(n *yaml.Node, t reflect.Type, path string) {
	c.mapping(n, path, func(k, v *yaml.Node, p string) {
		if t.Key().Kind() != reflect.String {
			c.check(k, t.Key(), p, k.Line)
		}
		c.check(v, t.Elem(), p, k.Line)
	})
}

// merge walks the mappings a "<<" value names: a mapping, an alias of one, or a list of them.
func (c *treeChecker) merge(v *yaml.Node, path string, fn func(k, v *yaml.Node, path string)) {
	switch v.Kind {
	case yaml.AliasNode:
		if c.enter(v, path) {
			c.merge(v.Alias, path, fn)
			delete(c.open, v.Alias)
		}
	case yaml.MappingNode:
		c.mapping(v, path, fn)
	case yaml.SequenceNode:
		for _, e := range v.Content {
			c.merge(e, path, fn)
		}
	}
}

// enter marks alias's anchor as being walked, or reports that it contains itself.
func (c *treeChecker) enter(alias *yaml.Node, path string) bool {
	if c.open[alias.Alias] {
		c.fail(alias.Line, path, "*%s refers to its own anchor: an anchor cannot contain itself", alias.Value)
		return false
	}
	c.mark(alias.Alias)
	return true
}

// mark records that anchored node n is being walked.
func (c *treeChecker) mark(n *yaml.Node) {
	if c.open == nil {
		c.open = make(map[*yaml.Node]bool)
	}
	c.open[n] = true
}

// scalar decodes n into a fresh t, as yaml.v3 will, and is stricter in one way: a fraction
// does not silently lose its decimals in a whole-number field.
func (c *treeChecker) scalar(n *yaml.Node, t reflect.Type, line int, path string) {
	tag := n.ShortTag()
	err := n.Decode(reflect.New(t).Interface())
	whole, integral := isInt(t) || isUint(t), tag == "!!int"
	if whole && tag == "!!float" {
		f, perr := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		integral = perr == nil && f == math.Trunc(f) && !math.IsInf(f, 0)
		if err == nil && !integral {
			err = errors.New("a fraction")
		}
	}
	switch {
	case err == nil:
	case whole && integral:
		lo, hi := intRange(t)
		c.fail(line, path, "%s is out of range: want a whole number from %s to %s", n.Value, lo, hi)
	case t == durationType && tag == "!!int":
		c.fail(line, path, "%s is not a duration: add a unit (e.g. 500ms, 5s)", n.Value)
	default:
		c.fail(line, path, "%s is not %s", describe(n), allowed(t))
	}
}

// custom decodes n into a type with its own UnmarshalYAML or UnmarshalText and reports what
// it says.
func (c *treeChecker) custom(n *yaml.Node, t reflect.Type, line int, path string) {
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if _, tail, ok := strings.Cut(rest, ": "); ok {
			msg = tail
		}
	}
	c.fail(line, path, "%s", msg)
}

// allowed says in words what a field of type t takes.
func allowed(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration (e.g. 500ms, 5s)"
	case isInt(t):
		return "a whole number (e.g. 3)"
	case isUint(t):
		return "a whole number >= 0 (e.g. 3)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Float32, reflect.Float64:
		return "a number (e.g. 1.5)"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list (e.g. [a, b])"
	case reflect.Map:
		return "a mapping of names to values (e.g. {name: value})"
	case reflect.Struct:
		return "a mapping of fields (" + strings.Join(sortedKeys(yamlFields(t)), ", ") + ")"
	}
	return t.String()
}

// describe names a node's value for a message: a scalar quoted when it is text, otherwise
// what kind of node it is.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if len(v) > 60 {
		v = v[:57] + "..."
	}
	if n.ShortTag() == "!!str" {
		return strconv.Quote(v)
	}
	return v
}

func isInt(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return t != durationType
	}
	return false
}

func isUint(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

func intRange(t reflect.Type) (lo, hi string) {
	bits := t.Bits()
	if isUint(t) {
		return "0", strconv.FormatUint(math.MaxUint64>>(64-bits), 10)
	}
	return strconv.FormatInt(math.MinInt64>>(64-bits), 10), strconv.FormatInt(math.MaxInt64>>(64-bits), 10)
}

// yamlFields maps the YAML keys of struct t to their field types, the way yaml.v3 names
// them: the tag's name, else the lower-cased field name; ",inline" structs lend their fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		inline := slices.Contains(strings.Split(opts, ","), "inline")
		if name == "-" || !f.IsExported() && !(f.Anonymous && inline) {
			continue
		}
		if inline && f.Type.Kind() == reflect.Struct {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
