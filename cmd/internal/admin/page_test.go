package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringside-proxy/ringside/cmd/internal/admin"
)

// hostileID and hostileTag are an endpoint ID and a tag that would run script in the status
// page if it put them into its HTML unescaped.
const (
	hostileID  = `cart-<img src=x onerror="document.title='pwned'">`
	hostileTag = `</script><script>document.title='pwned'</script>`
)

// addHostileEndpoint adds to f's services file an endpoint, in front of a backend of its
// own, whose ID, zone and tags are markup, and waits until cart has it.
func addHostileEndpoint(f *fixture) {
	f.t.Helper()
	be := startBackend(f.t, hostileID)
	type entry struct {
		ID      string   `json:"id"`
		Address string   `json:"address"`
		Zone    string   `json:"zone"`
		Tags    []string `json:"tags"`
	}
	var eps []entry
	for _, b := range f.backends {
		eps = append(eps, entry{ID: b.name, Address: b.addr, Zone: "z1", Tags: []string{"v1"}})
	}
	eps = append(eps, entry{ID: hostileID, Address: be.addr, Zone: "<b>z2</b>", Tags: []string{hostileTag}})
	f.backends = append(f.backends, be)
	text, err := json.Marshal(map[string]any{"services": map[string]any{"cart": eps}})
	if err != nil {
		f.t.Fatal(err)
	}
	path := filepath.Join(f.dir, "services.yaml") // JSON is YAML
	if err := os.WriteFile(path+".tmp", text, 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		f.t.Fatal(err)
	}
	f.waitFor("the hostile endpoint", func() bool {
		var v admin.EndpointsView
		f.get("/v1/upstreams/cart/endpoints", &v)
		return len(v.Endpoints) == len(eps)
	})
}

// getPage fetches path from the admin server and returns the answer and its body.
func (f *fixture) getPage(path string) (*http.Response, string) {
	f.t.Helper()
	resp, err := f.client.Get(f.admin + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp, string(body)
}

// GET / renders the whole page on the server: every endpoint, escaped; a policy that allows
// no script, style or load but the page's own; GET /?part=live is the live section alone.
func TestStatusPageRendered(t *testing.T) {
	f := newFixture(t, fixtureOptions{backends: 3, token: true})
	addHostileEndpoint(f)
	f.send("alice")

	resp, body := f.getPage("/")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'sha256-", "style-src 'sha256-", "connect-src 'self'", "form-action 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "http") {
		t.Errorf("Content-Security-Policy %q allows inline code or loads from elsewhere", csp)
	}
	for _, id := range []string{"cart-1", "cart-2", "cart-3"} {
		if !strings.Contains(body, `data-endpoint="`+id+`"`) {
			t.Errorf("GET /: no row for %s", id)
		}
	}
	for _, raw := range []string{hostileID, hostileTag, "<b>z2</b>", "<img"} {
		if strings.Contains(body, raw) {
			t.Errorf("GET /: %q unescaped in the page", raw)
		}
	}
	if !strings.Contains(body, "cart-&lt;img src=x onerror=&#34;document.title=&#39;pwned&#39;&#34;&gt;") {
		t.Errorf("GET /: the hostile endpoint's ID is not shown escaped")
	}
	if strings.Count(body, "<script>") != 1 || !strings.Contains(body, `data-action="drain"`) {
		t.Errorf("GET /: want the page's one script and drain buttons")
	}

	resp, part := f.getPage("/?part=live")
	if resp.StatusCode != http.StatusOK || strings.Contains(part, "<html") || strings.Contains(part, "<script") ||
		!strings.Contains(part, `data-endpoint="cart-1"`) || !strings.Contains(part, "Recent events") {
		t.Errorf("GET /?part=live: status %d, want the live section alone:\n%s", resp.StatusCode, part)
	}
	if resp, _ := f.getPage("/?part=nope"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET /?part=nope: status %d, want 400", resp.StatusCode)
	}
	if resp, _ := f.getPage("/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: status %d, want 404", resp.StatusCode)
	}
}

// Without admin.token_file the page's buttons are disabled and say how to enable them.
func TestStatusPageWithoutToken(t *testing.T) {
	f := newFixture(t, fixtureOptions{backends: 2})
	_, body := f.getPage("/")
	if n := strings.Count(body, "disabled title=\"changes are disabled: set admin.token_file\""); n != 4 {
		t.Errorf("%d disabled buttons, want 4 (drain and eject on 2 endpoints)", n)
	}
}
