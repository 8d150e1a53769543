package file

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringside-proxy/ringside/discovery"
)

// The editor adds, replaces and removes endpoints, keeping comments and the other entries, and
// leaves a file Parse accepts.
func TestEditorPutAndDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.yaml")
	orig := "# the cart service\nservices:\n  cart:\n    - {id: cart-1, address: 10.0.0.1:80} # first\n    - address: 10.0.0.2:80\n"
	if err := os.WriteFile(path, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	ed := NewEditor(path)
	created, err := ed.Put("cart", discovery.Endpoint{ID: "cart-3", Address: "10.0.0.3:80", Weight: 2, Zone: "z", Tags: []string{"v2"}})
	if err != nil || !created {
		t.Fatalf("put new: %v %v", created, err)
	}
	created, err = ed.Put("cart", discovery.Endpoint{ID: "10.0.0.2:80", Address: "10.0.0.2:80", Weight: 1, Health: discovery.HealthCritical})
	if err != nil || created {
		t.Fatalf("put existing (id defaulted to address): %v %v", created, err)
	}
	if _, err := ed.Put("search", discovery.Endpoint{ID: "s1", Address: "10.0.1.1:80", Weight: 1}); err != nil {
		t.Fatal(err)
	}
	found, err := ed.Delete("cart", "cart-1")
	if err != nil || !found {
		t.Fatalf("delete: %v %v", found, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(path, data)
	if err != nil {
		t.Fatalf("edited file does not parse: %v\n%s", err, data)
	}
	cart := got["cart"]
	if len(cart) != 2 || cart[0].ID != "10.0.0.2:80" || cart[0].Health != discovery.HealthCritical ||
		cart[1].ID != "cart-3" || cart[1].Weight != 2 || cart[1].Zone != "z" || len(got["search"]) != 1 {
		t.Errorf("after the edits: %+v\n%s", got, data)
	}
	if !strings.Contains(string(data), "# the cart service") {
		t.Errorf("comment lost:\n%s", data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the original 0640", fi.Mode().Perm())
	}
	if found, err := ed.Delete("cart", "nope"); found || err != nil {
		t.Errorf("delete of an unknown endpoint: %v %v", found, err)
	}
	if found, err := ed.Delete("nope", "x"); found || err != nil {
		t.Errorf("delete in an unknown service: %v %v", found, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// An invalid file, a bad endpoint and a service written with an alias are refused with
// ErrEdit, and the file is left alone.
func TestEditorRefusals(t *testing.T) {
	tests := []struct {
		name, file string
		ep         discovery.Endpoint
	}{
		{"invalid file", "services:\n  cart: [{address: nope}]\n", discovery.Endpoint{ID: "a", Address: "1.2.3.4:80", Weight: 1}},
		{"bad endpoint", "services: {}\n", discovery.Endpoint{ID: "a", Address: "1.2.3.4:0", Weight: 1}},
		{"alias", "services:\n  search: &l [{address: 1.1.1.1:80}]\n  cart: *l\n", discovery.Endpoint{ID: "a", Address: "1.2.3.4:80", Weight: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "services.yaml")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := NewEditor(path).Put("cart", tt.ep); !errors.Is(err, ErrEdit) {
				t.Errorf("err %v, want ErrEdit", err)
			}
			if data, _ := os.ReadFile(path); string(data) != tt.file {
				t.Errorf("file changed:\n%s", data)
			}
		})
	}
}

// The editor follows a symbolic link (the file it points to is replaced, the link stays), and
// reads a JSON services file as the source does, escapes included.
func TestEditorFollowsSymlinksAndReadsJSON(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.json")
	orig := `{"services": {"cart": [{"id": "cart-1", "address": "10.0.0.1:80", "meta": {"path": "a\/b"}}]}}`
	if err := os.WriteFile(real, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "services.json")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	ed := NewEditor(link)
	if _, err := ed.Put("cart", discovery.Endpoint{ID: "cart-2", Address: "10.0.0.2:80", Weight: 1}); err != nil {
		t.Fatalf("put: %v", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi.Mode(), err)
	}
	data, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := Parse(real, data)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snaps["cart"]); n != 2 {
		t.Fatalf("the file the link points to holds %d cart endpoints, want 2:\n%s", n, data)
	}
}
