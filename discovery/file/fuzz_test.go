package file

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringside-proxy/ringside/discovery"
)

// fuzzSeeds cover each construct Parse handles, so that mutations start from all of them.
var fuzzSeeds = []string{
	"",
	"services: {}\n",
	"services:\n  cart:\n    - id: cart-1\n      address: 127.0.0.1:8081\n      weight: 2\n      health: warning\n      zone: z\n      tags: [v2]\n      meta: {version: \"1.4\"}\n",
	"services:\n  cart:\n    - &b {address: 'a:1', id: one}\n    - {<<: *b, id: two}\n  search: *x\n",
	"services:\n  a: &l [{address: '[::1]:80'}]\n  b: *l\n",
	"services: {cart: [{address: 'a:1'}, {address: 'a:1'}]}",
	"services: {cart: [{address: 'a:99999', weight: 0x10, health: CRITICAL}]}",
	"services: {cart: [{<<: [{zone: z1}, {weight: 2}], address: 'a:1', meta: {<<: {a: b}}}]}",
	`{"services": {"cart": [{"address": "a:1", "meta": {"u": "http:\/\/x", "e": "\ud83d\ude00\ud800"}}]}}`,
	"services: {cart: [{address: 'a:1', tags: &t [*t]}]}\n---\nservices: {}\n",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	files, err := filepath.Glob("testdata/*.*")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		services, err := Parse("fuzz.yaml", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q (%T) is not a *ParseError naming the file", err, err)
			}
			if services != nil {
				t.Fatalf("Parse returned services %v with error %v", services, err)
			}
			return
		}
		for name, eps := range services {
			if name == "" {
				t.Fatalf("empty service name in %v", services)
			}
			ids := make(map[string]bool, len(eps))
			for _, e := range eps {
				if err := e.Validate(); err != nil {
					t.Fatalf("service %q: endpoint %+v: %v", name, e, err)
				}
				if e.Weight > MaxWeight || e.Health > discovery.HealthCritical {
					t.Fatalf("service %q: endpoint %+v out of range", name, e)
				}
				if ids[e.ID] {
					t.Fatalf("service %q: duplicate id %q", name, e.ID)
				}
				ids[e.ID] = true
			}
		}
	})
}
