package file

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ringside-proxy/ringside/discovery"
)

// testdataWant is what testdata/services.yaml and testdata/services.json both hold.
var testdataWant = map[string][]discovery.Endpoint{
	"cart": {
		{ID: "cart-1", Address: "127.0.0.1:8081", Weight: 2, Zone: "eu-west-1a",
			Tags: []string{"v2"}, Meta: map[string]string{"version": "1.4"}},
		{ID: "127.0.0.1:8082", Address: "127.0.0.1:8082", Weight: 1,
			Health: discovery.HealthWarning, Zone: "eu-west-1b"},
	},
	"search": {
		{ID: "search-a", Address: "[::1]:9000", Weight: 1,
			Meta: map[string]string{"owner": "team/search", "tier": "gold"}},
		{ID: "search-b", Address: "search-b.internal:9000", Weight: 1, Health: discovery.HealthCritical,
			Meta: map[string]string{"owner": "team/search", "tier": "gold"}},
	},
	"idle": {},
}

func TestParseTestdata(t *testing.T) {
	for _, name := range []string{"testdata/services.yaml", "testdata/services.json"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(name, data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, testdataWant) {
				t.Errorf("Parse =\n%#v\nwant\n%#v", got, testdataWant)
			}
		})
	}
}

func TestParseGood(t *testing.T) {
	ep := func(id, addr string) discovery.Endpoint {
		return discovery.Endpoint{ID: id, Address: addr, Weight: 1}
	}
	tests := []struct {
		name string
		give string
		want map[string][]discovery.Endpoint
	}{
		{"empty services mapping", "services: {}\n", map[string][]discovery.Endpoint{}},
		{"null services", "services:\n", map[string][]discovery.Endpoint{}},
		{"null service", "services:\n  cart:\n", map[string][]discovery.Endpoint{"cart": {}}},
		{"id defaults to address", "services: {cart: [{address: 'a:1'}]}",
			map[string][]discovery.Endpoint{"cart": {ep("a:1", "a:1")}}},
		{"empty id defaults to address", "services: {cart: [{id: '', address: 'a:1'}]}",
			map[string][]discovery.Endpoint{"cart": {ep("a:1", "a:1")}}},
		{"file order kept", "services: {cart: [{id: b, address: 'b:1'}, {id: a, address: 'a:1'}]}",
			map[string][]discovery.Endpoint{"cart": {ep("b", "b:1"), ep("a", "a:1")}}},
		{"same address, different ids", "services: {cart: [{id: x, address: 'a:1'}, {id: y, address: 'a:1'}]}",
			map[string][]discovery.Endpoint{"cart": {ep("x", "a:1"), ep("y", "a:1")}}},
		{"same id in two services", "services: {a: [{id: x, address: 'a:1'}], b: [{id: x, address: 'b:1'}]}",
			map[string][]discovery.Endpoint{"a": {ep("x", "a:1")}, "b": {ep("x", "b:1")}}},
		{"null fields mean defaults", "services: {cart: [{address: 'a:1', weight: ~, health: ~, zone: ~, tags: ~, meta: ~}]}",
			map[string][]discovery.Endpoint{"cart": {ep("a:1", "a:1")}}},
		{"hex weight and max weight", "services: {cart: [{id: x, address: 'a:1', weight: 0x10}, {id: y, address: 'a:1', weight: 65535}]}",
			map[string][]discovery.Endpoint{"cart": {
				{ID: "x", Address: "a:1", Weight: 16}, {ID: "y", Address: "a:1", Weight: 65535}}}},
		{"health is case-insensitive", "services: {cart: [{address: 'a:1', health: CRITICAL}]}",
			map[string][]discovery.Endpoint{"cart": {{ID: "a:1", Address: "a:1", Weight: 1, Health: discovery.HealthCritical}}}},
		{"scalars kept as written", "services: {cart: [{id: 7, address: 'a:1', tags: [1.10, true], meta: {v: 1.10}}]}",
			map[string][]discovery.Endpoint{"cart": {{ID: "7", Address: "a:1", Weight: 1,
				Tags: []string{"1.10", "true"}, Meta: map[string]string{"v": "1.10"}}}}},
		{"empty meta is nil", "services: {cart: [{address: 'a:1', meta: {}, tags: []}]}",
			map[string][]discovery.Endpoint{"cart": {{ID: "a:1", Address: "a:1", Weight: 1, Tags: []string{}}}}},
		{"merge key, explicit keys win", "services:\n  cart:\n    - &base {id: one, address: 'a:1', zone: z1, weight: 3}\n    - {<<: *base, id: two, zone: z2}\n",
			map[string][]discovery.Endpoint{"cart": {
				{ID: "one", Address: "a:1", Weight: 3, Zone: "z1"},
				{ID: "two", Address: "a:1", Weight: 3, Zone: "z2"}}}},
		{"merge list, earlier wins", "services:\n  cart:\n    - {<<: [{zone: z1}, {zone: z2, weight: 2}], address: 'a:1'}\n",
			map[string][]discovery.Endpoint{"cart": {{ID: "a:1", Address: "a:1", Weight: 2, Zone: "z1"}}}},
		{"aliased service list", "services:\n  a: &eps [{address: 'a:1'}]\n  b: *eps\n",
			map[string][]discovery.Endpoint{"a": {ep("a:1", "a:1")}, "b": {ep("a:1", "a:1")}}},
		{"service name with a dot", "services: {cart.v2: [{address: 'a:1'}]}",
			map[string][]discovery.Endpoint{"cart.v2": {ep("a:1", "a:1")}}},
		{"json with escapes", `{"services": {"cart": [{"address": "a:1", "meta": {"u": "http:\/\/x", "e": "\ud83d\ude00\u00e9"}}]}}`,
			map[string][]discovery.Endpoint{"cart": {{ID: "a:1", Address: "a:1", Weight: 1,
				Meta: map[string]string{"u": "http://x", "e": "😀é"}}}}},
		{"json with tabs and a lone surrogate", "{\n\t\"services\": {\n\t\t\"c\": [{\"address\": \"a:1\", \"zone\": \"\\ud800\"}]\n\t}\n}",
			map[string][]discovery.Endpoint{"c": {{ID: "a:1", Address: "a:1", Weight: 1, Zone: "\uFFFD"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("services.yaml", []byte(tt.give))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{"empty file", "", `services.yaml: empty file (write "services: {}" to list no services)`},
		{"comments only", "# nothing\n", `services.yaml: empty file (write "services: {}" to list no services)`},
		{"no services key", "{}\n", `services.yaml:1: no services key (write "services: {}" to list none)`},
		{"root not a mapping", "- a\n", `services.yaml:1: want a mapping, got a list`},
		{"unknown top-level key", "services: {}\nservice: {}\n", `services.yaml:2: service: unknown field (want services)`},
		{"syntax error", "services:\n  cart: [\n", `services.yaml:2: did not find expected node content`},
		{"tab indentation", "services:\n  cart:\n    - address: a:1\n\tweight: 2\n", `services.yaml:3: found a tab character that violates indentation`},
		{"two documents", "services: {}\n---\nservices: {}\n", `services.yaml:2: a second YAML document; want one`},
		{"unknown anchor", "services: {cart: [{address: *x}]}\n", `services.yaml: unknown anchor 'x' referenced`},
		{"services a list", "services: [a]\n", `services.yaml:1: services: want a mapping, got a list`},
		{"endpoints a mapping", "services:\n  cart: {address: 'a:1'}\n", `services.yaml:2: services.cart: want a list of endpoints, got a mapping`},
		{"endpoint a string", "services:\n  cart: [a]\n", `services.yaml:2: services.cart[0]: want a mapping, got "a"`},
		{"empty service name", "services:\n  '': []\n", `services.yaml:2: services[""]: empty service name`},
		{"duplicate service", "services:\n  cart: []\n  cart: []\n", `services.yaml:3: services.cart: duplicate key (first at line 2)`},
		{"unknown field", "services:\n  cart:\n    - address: a:1\n      colour: red\n",
			`services.yaml:4: services.cart[0].colour: unknown field (want one of id, address, weight, health, zone, tags, meta)`},
		{"duplicate field", "services:\n  cart:\n    - address: a:1\n      address: a:2\n",
			`services.yaml:4: services.cart[0].address: duplicate key (first at line 3)`},
		{"no address", "services:\n  cart:\n    - id: x\n", `services.yaml:3: services.cart[0]: no address`},
		{"empty address", "services:\n  cart:\n    - address: ''\n", `services.yaml:3: services.cart[0].address: empty address, want host:port`},
		{"address without port", "services:\n  cart:\n    - address: 10.0.0.1\n", `services.yaml:3: services.cart[0].address: address 10.0.0.1: missing port in address`},
		{"port out of range", "services:\n  cart:\n    - id: a\n      address: 127.0.0.1:8081\n    - id: b\n      weight: 2\n      address: 127.0.0.1:99999\n",
			`services.yaml:7: services.cart[1].address: port "99999": want a number in 1..65535`},
		{"port zero", "services: {cart: [{address: 'h:0'}]}", `services.yaml:1: services.cart[0].address: port "0": want a number in 1..65535`},
		{"port a name", "services: {cart: [{address: 'h:http'}]}", `services.yaml:1: services.cart[0].address: port "http": want a number in 1..65535`},
		{"empty host", "services: {cart: [{address: ':80'}]}", `services.yaml:1: services.cart[0].address: ":80": empty host`},
		{"space in host", "services: {cart: [{address: ' h:80'}]}", `services.yaml:1: services.cart[0].address: host " h": has a space or control character`},
		{"address a list", "services: {cart: [{address: [a]}]}", `services.yaml:1: services.cart[0].address: want a single value, got a list`},
		{"weight zero", "services:\n  cart:\n    - address: a:1\n      weight: 0\n", `services.yaml:4: services.cart[0].weight: "0": want a whole number in 1..65535`},
		{"weight negative", "services: {cart: [{address: 'a:1', weight: -1}]}", `services.yaml:1: services.cart[0].weight: "-1": want a whole number in 1..65535`},
		{"weight too big", "services: {cart: [{address: 'a:1', weight: 65536}]}", `services.yaml:1: services.cart[0].weight: "65536": want a whole number in 1..65535`},
		{"weight huge", "services: {cart: [{address: 'a:1', weight: 99999999999999999999}]}", `services.yaml:1: services.cart[0].weight: "99999999999999999999": want a whole number in 1..65535`},
		{"weight fraction", "services: {cart: [{address: 'a:1', weight: 2.5}]}", `services.yaml:1: services.cart[0].weight: "2.5": want a whole number in 1..65535`},
		{"weight quoted", "services: {cart: [{address: 'a:1', weight: '2'}]}", `services.yaml:1: services.cart[0].weight: "2": want a whole number in 1..65535`},
		{"unknown health", "services:\n  cart:\n    - address: a:1\n      health: sick\n", `services.yaml:4: services.cart[0].health: "sick": health must be passing, warning or critical`},
		{"tags a string", "services: {cart: [{address: 'a:1', tags: v2}]}", `services.yaml:1: services.cart[0].tags: want a list, got "v2"`},
		{"tag a mapping", "services: {cart: [{address: 'a:1', tags: [{a: b}]}]}", `services.yaml:1: services.cart[0].tags[0]: want a single value, got a mapping`},
		{"meta a list", "services: {cart: [{address: 'a:1', meta: [a]}]}", `services.yaml:1: services.cart[0].meta: want a mapping, got a list`},
		{"meta value a list", "services: {cart: [{address: 'a:1', meta: {a: [b]}}]}", `services.yaml:1: services.cart[0].meta.a: want a single value, got a list`},
		{"meta key a list", "services: {cart: [{address: 'a:1', meta: {[a]: b}}]}", `services.yaml:1: services.cart[0].meta: want a string key, got a list`},
		{"duplicate id", "services:\n  cart:\n    - id: x\n      address: a:1\n    - id: x\n      address: a:2\n",
			`services.yaml:5: services.cart[1].id: duplicate id "x" (also services.cart[0], line 3)`},
		{"duplicate defaulted id", "services:\n  cart:\n    - address: a:1\n    - address: a:1\n",
			`services.yaml:4: services.cart[1].address: duplicate id "a:1" (also services.cart[0], line 3)`},
		{"id equal to another's address", "services:\n  cart:\n    - address: a:1\n    - id: a:1\n      address: a:2\n",
			`services.yaml:4: services.cart[1].id: duplicate id "a:1" (also services.cart[0], line 3)`},
		{"merge of a string", "services: {cart: [{<<: x, address: 'a:1'}]}", `services.yaml:1: services.cart[0]: want a mapping, got "x"`},
		{"merge cycle", "services: {cart: [{<<: &m {<<: *m}, address: 'a:1'}]}", `services.yaml:1: services.cart[0]: merge keys (<<) nested more than 8 deep`},
		{"alias cycle", "services: {cart: [{address: 'a:1', tags: &t [*t]}]}", `services.yaml:1: services.cart[0].tags[0]: want a single value, got a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("services.yaml", []byte(tt.give))
			if err == nil {
				t.Fatalf("Parse = %v, nil error; want %s", got, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse error\n got %s\nwant %s", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *ParseError", err)
			}
		})
	}
}

func TestParseErrorUnwraps(t *testing.T) {
	_, err := Parse("s.yaml", []byte("services: {cart: [{address: 'a:1', health: sick}]}"))
	if !errors.Is(err, discovery.ErrBadHealth) {
		t.Errorf("Parse error %v does not wrap discovery.ErrBadHealth", err)
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.File != "s.yaml" || pe.Line != 1 || pe.Path != "services.cart[0].health" {
		t.Errorf("ParseError = %+v, want file s.yaml, line 1, path services.cart[0].health", pe)
	}
}

// A document whose aliases expand exponentially ("billion laughs", here through merge keys)
// must fail fast rather than walk the expansion.
func TestParseAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("services:\n  cart:\n    - &e0 {address: 'a:1', id: e0}\n")
	for i := 1; i < 8; i++ {
		fmt.Fprintf(&b, "    - &e%d {id: e%d, <<: [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*e%d", i-1)
		}
		b.WriteString("]}\n")
	}
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too many nodes") {
		t.Errorf("Parse(alias bomb) error = %v, want too many nodes", err)
	}
}

func TestJSONForYAMLLeavesOtherInputAlone(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{"yaml", `services: {a: "\/"}`, `services: {a: "\/"}`},
		{"invalid json", `{"a": "\/"`, `{"a": "\/"`},
		{"no escapes", `{"a": "b"}`, `{"a": "b"}`},
		{"escaped backslash before u", `{"a": "\\u0041\/"}`, `{"a": "\\u0041/"}`},
		{"bmp escape kept", `["\u00e9"]`, `["\u00e9"]`},
		{"pair", `["\ud83d\ude00"]`, `["\U0001F600"]`},
		{"high surrogate then bmp escape", `["\ud83d\u0041"]`, `["\uFFFD\u0041"]`},
		{"low surrogate alone", `["\ude00"]`, `["\uFFFD"]`},
		{"escapes outside strings untouched", "[1, \"\\/\",\n\"x\"]", "[1, \"/\",\n\"x\"]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(jsonForYAML([]byte(tt.give))); got != tt.want {
				t.Errorf("jsonForYAML(%s) = %s, want %s", tt.give, got, tt.want)
			}
		})
	}
}
