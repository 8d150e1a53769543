package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// A value of the wrong type or shape reads like every other configuration error: file, line,
// the full field path, what is wrong and what the field allows.
func TestLoadWrongTypeNamesFieldAndWhatIsAllowed(t *testing.T) {
	tests := []struct {
		file string
		want string // the whole error, after "testdata/wrongtype/<file>:"
	}{
		{"duration.yaml", `7: upstreams[0].health_check.interval: "5 parsecs" is not a duration (e.g. 500ms, 5s)`},
		{"duration_without_unit.yaml", `6: upstreams[0].timeouts.dial: 5 is not a duration: add a unit (e.g. 500ms, 5s)`},
		{"int.yaml", `6: upstreams[0].retries.attempts: "many" is not a whole number (e.g. 3)`},
		{"int_fraction.yaml", `6: upstreams[0].retries.attempts: 2.5 is not a whole number (e.g. 3)`},
		{"int_out_of_range.yaml", `5: upstreams[0].max_requests: 99999999999999999999 is out of range: ` +
			`want a whole number from -9223372036854775808 to 9223372036854775807`},
		{"bool.yaml", `3: admin.pprof: "maybe" is not a boolean (true or false)`},
		{"float.yaml", `5: upstreams[0].bounded_load: "lots" is not a number (e.g. 1.5)`},
		{"list_given_scalar.yaml", `5: upstreams[0].hash_key: "header:X-User-ID" is not a list: write [header:X-User-ID]`},
		{"list_given_mapping.yaml", `5: upstreams[0].trusted_proxies: want a list (e.g. [a, b]), not a mapping`},
		{"section_given_scalar.yaml", `5: upstreams[0].health_check: want a mapping of fields (expect_status, ` +
			`healthy_threshold, host, interval, path, timeout, unhealthy_threshold), not "yes"`},
		{"string_given_list.yaml", `5: upstreams[0].service: want a string, not a list`},
		{"nested_in_list.yaml", `9: upstreams[1].health_check.expect_status[1]: "ok" is not a whole number (e.g. 3)`},
		{"duplicate_key.yaml", `7: upstreams[0].retries.attempts: duplicate key (also at line 6): keep one`},
		{"anchor_contains_itself.yaml", `4: upstreams[0]: *cart refers to its own anchor: an anchor cannot contain itself` + "\n" +
			`testdata/wrongtype/anchor_contains_itself.yaml:6: upstreams[0].name: duplicate key (also at line 5): keep one`},
		{"several.yaml", `6: upstreams[0].retries.attempts: "many" is not a whole number (e.g. 3)` + "\n" +
			`testdata/wrongtype/several.yaml:8: upstreams[0].timeouts.dial: "soon" is not a duration (e.g. 500ms, 5s)`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "wrongtype", tt.file)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%s) accepted it", path)
			}
			if want := path + ":" + tt.want; err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Line == 0 || ce.Field == "" {
				t.Errorf("error is not a *config.Error with line and field: %#v", err)
			}
		})
	}
}

// A merge key ("<<: *anchor") fills fields as yaml.v3 decodes it, and is no unknown field.
func TestLoadMergeKeyFillsFields(t *testing.T) {
	cfg, err := Load("testdata/merge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Upstreams[1]; got.Name != "orders" || got.Listen != "127.0.0.1:9002" || got.Retries.Attempts != 2 {
		t.Errorf("merged upstream: name %q listen %q attempts %d, want orders, 127.0.0.1:9002, 2",
			got.Name, got.Listen, got.Retries.Attempts)
	}
}

// A ${VAR} that is not set is reported once, not again as a value of the wrong type.
func TestParseUnsetVariableInTypedFieldReportedOnce(t *testing.T) {
	_, err := Parse("c.yaml", []byte("upstreams:\n  - name: a\n    listen: 127.0.0.1:1\n    max_requests: ${MAX}\n"), env(nil))
	want := "c.yaml:4: upstreams[0].max_requests: environment variable MAX is not set: set it, or write ${MAX:-default}"
	if err == nil || err.Error() != want {
		t.Errorf("error\n got: %v\nwant: %s", err, want)
	}
}

// size is a field type with its own UnmarshalYAML, as a later field might have.
type size int64

func (s *size) UnmarshalYAML(n *yaml.Node) error {
	if n.Value != "1KiB" {
		return fmt.Errorf("%q is not a size (e.g. 64KiB)", n.Value)
	}
	*s = 1024
	return nil
}

// Fields added later need nothing in the decoding layer: a type with its own UnmarshalYAML or
// UnmarshalText is reported in its own words, and ",inline" structs lend their keys.
func TestCheckCustomAndInlineFields(t *testing.T) {
	type common struct {
		Limit size `yaml:"limit"`
	}
	type section struct {
		common `yaml:",inline"`
		Name   string       `yaml:"name"`
		Net    netip.Prefix `yaml:"net"` // an UnmarshalText type: a scalar, not a mapping
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte("name: a\nlimit: lots\nextra: 1\nnet: 10.0.0.0/99\n"), &root); err != nil {
		t.Fatal(err)
	}
	c := &treeChecker{file: "c.yaml"}
	c.check(root.Content[0], reflect.TypeFor[section](), "s", 1)
	want := `c.yaml:2: s.limit: "lots" is not a size (e.g. 64KiB)` + "\n" +
		`c.yaml:3: s.extra: unknown field; allowed here: limit, name, net` + "\n" +
		`c.yaml:4: s.net: netip.ParsePrefix("10.0.0.0/99"): prefix length out of range`
	if got := errors.Join(c.errs...); got == nil || got.Error() != want {
		t.Errorf("errors\n got: %v\nwant: %s", got, want)
	}
}

// An alias repeats its anchor's problems wherever it is used; the report stops at
// maxDecodeErrors, so a few lines cannot produce megabytes of errors.
func TestParseBoundsTheProblemsReported(t *testing.T) {
	var b strings.Builder
	b.WriteString("upstreams: [&u {name: a, listen: ':1'")
	for i := range 20 {
		fmt.Fprintf(&b, ", k%d: 1", i)
	}
	b.WriteString("}" + strings.Repeat(", *u", 20) + "]\n")
	_, err := Parse("c.yaml", []byte(b.String()), env(nil))
	if err == nil {
		t.Fatal("Parse accepted 420 unknown fields")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxDecodeErrors+1 || lines[len(lines)-1] != "c.yaml: stopped after 50 problems: fix these first" {
		t.Errorf("%d lines, the last %q; want %d problems and a note that it stopped", len(lines), lines[len(lines)-1], maxDecodeErrors)
	}
}
