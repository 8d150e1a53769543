package admin_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// screenshot, when set, is where TestStatusPageScreenshot saves a picture of the page, the
// README's deploy/admin-page.png:
//
//	go test -run TestStatusPageScreenshot ./cmd/internal/admin/ -screenshot ../../../deploy/admin-page.png
var (
	screenshot      = flag.String("screenshot", "", "save a screenshot of the status page to this PNG file")
	screenshotWidth = flag.Int("screenshot-width", 1000, "the screenshot's width in CSS pixels")
)

// Bounds of the browser test: the whole browser's life, and each step's wait.
const (
	browserLife = 2 * time.Minute
	browserStep = 15 * time.Second
)

// browser is a headless Chromium with one tab, and what its pages logged as errors.
type browser struct {
	t   *testing.T
	ctx context.Context // the tab's context, which has run once

	mu     sync.Mutex
	errors []string
}

// chromiumPath finds the Chromium binary; "" if there is none.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startBrowser starts headless Chromium for the test and stops it (the process and its
// children) when the test ends. Without Chromium the test fails, unless -short.
func startBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the browser test needs Chromium")
	}
	path := chromiumPath()
	if path == "" {
		t.Fatal("Chromium not found on PATH (chromium, chromium-browser, google-chrome): " +
			"`make chromium` installs Debian's chromium (make test does it first); go test -short skips this test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height), chromedp.Flag("disable-gpu", true))
	life, lifeCancel := context.WithTimeout(context.Background(), browserLife)
	actx, acancel := chromedp.NewExecAllocator(life, opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_ = chromedp.Cancel(cctx) // closes the browser and waits for it
		cancel()
		acancel() // kills what is left and waits for the process
		lifeCancel()
	})
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Listen(ctx, b.onEvent); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return b
}

// onEvent keeps what a page reports as an error: console.error and console.assert calls,
// uncaught exceptions, and the browser's own error log (failed loads, policy violations).
func (b *browser) onEvent(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var args []string
		for _, a := range ev.Args {
			args = append(args, string(a.Value))
		}
		msg = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level != log.EntryLevelError {
			return
		}
		msg = "log (" + string(ev.Entry.Source) + "): " + ev.Entry.Text + " " + ev.Entry.URL
	default:
		return
	}
	b.mu.Lock()
	b.errors = append(b.errors, msg)
	b.mu.Unlock()
}

// pageErrors returns what the pages reported as errors so far.
func (b *browser) pageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// do runs steps within browserStep.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v (page errors: %q)", what, err, b.pageErrors())
	}
}

// eval returns the value of a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript expression is true.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting for %s (%s): %v (page errors: %q)", what, expr, err, b.pageErrors())
	}
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	out, _ := json.Marshal(s)
	return string(out)
}

// rowButton is a JS path to the button of action in the row of cart's endpoint id.
func rowButton(id, action string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(`Array.from(document.querySelectorAll('section[data-upstream="cart"] tr[data-endpoint]'))`+
		`.find(r => r.dataset.endpoint === %s).querySelector('button[data-action=%q]')`, jsString(id), action))
}

// keyOn returns a key that the request path sends to endpoint id.
func (f *fixture) keyOn(id string) string {
	f.t.Helper()
	for i := range 1000 {
		k := fmt.Sprintf("user-%d", i)
		if targetID(f.explain(k)) == id {
			return k
		}
	}
	f.t.Fatalf("no key of 1000 lands on %s", id)
	return ""
}

// The status page in a real browser against a running sidecar: it loads without errors (its
// inline script and style pass its own Content-Security-Policy), shows every endpoint with
// registry text as text, its route box names the endpoint a real request through the
// upstream's listener reaches, and a drain from the page, with the token typed into its
// dialog (a wrong one first), moves that key elsewhere on the data path.
func TestStatusPageInBrowser(t *testing.T) {
	b := startBrowser(t, 1000, 900)
	f := newFixture(t, fixtureOptions{backends: 3, token: true})
	addHostileEndpoint(f)
	for i := range 200 {
		f.send(fmt.Sprintf("warm-%d", i))
	}

	b.do("loading the page", chromedp.Navigate(f.admin+"/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-endpoint]`)))
	ids := eval[[]string](b, `Array.from(document.querySelectorAll('tr[data-endpoint] .id')).map(e => e.textContent)`)
	want := []string{"cart-1", "cart-2", "cart-3", hostileID}
	if strings.Join(ids, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows %q, want %q", ids, want)
	}
	if title := eval[string](b, `document.title`); title != "ringside status" {
		t.Errorf("document.title %q: markup from the registry ran", title)
	}
	if n := eval[int](b, `document.querySelectorAll('#live img, #live script, #live b').length`); n != 0 {
		t.Errorf("%d elements made from registry text", n)
	}
	states := eval[[]string](b, `Array.from(document.querySelectorAll('tr[data-endpoint] .pill')).map(e => getComputedStyle(e).backgroundColor)`)
	if len(states) != 4 || states[0] == "rgba(0, 0, 0, 0)" {
		t.Errorf("state pills %q: the page's style did not apply", states)
	}

	// The route box names where a real request for the key goes.
	key := f.keyOn(hostileID)
	b.do("routing a key", chromedp.SetValue(chromedp.ID("route-key"), key),
		chromedp.Click(chromedp.CSS(`#route-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("route-target")))
	shown := eval[string](b, `document.getElementById('route-target').textContent`)
	if got := f.send(key); shown != got || got != hostileID {
		t.Fatalf("route box says %q for %q; the request went to %q; want %q", shown, key, got, hostileID)
	}
	fallback := eval[string](b, `document.querySelector('#route-fallback b').textContent`)

	// A wrong token is refused in the dialog and changes nothing.
	b.do("opening the drain dialog", chromedp.Click(rowButton(hostileID, "drain")),
		chromedp.WaitVisible(chromedp.ID("confirm-token")),
		chromedp.SendKeys(chromedp.ID("confirm-token"), "wrong-token-0123456789"),
		chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitJS("the refusal", `document.getElementById('confirm-error').textContent.includes('refused')`)
	if got := f.send(key); got != hostileID {
		t.Fatalf("after a refused drain %q went to %q", key, got)
	}

	// The right token drains it: the key moves where the route box said it would.
	eval[string](b, `document.getElementById('confirm-token').value = ''`)
	b.do("draining from the page", chromedp.SendKeys(chromedp.ID("confirm-token"), testToken),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitNotVisible(chromedp.ID("confirm")))
	b.waitJS("the drained row", fmt.Sprintf(`Array.from(document.querySelectorAll('tr[data-endpoint]')).some(r => r.dataset.endpoint === %s && r.dataset.state === 'drained')`, jsString(hostileID)))
	got := f.send(key)
	if got == hostileID || got != fallback {
		t.Errorf("after the drain %q went to %q; the route box had said %q", key, got, fallback)
	}
	b.waitJS("the route box's new answer", `document.getElementById('route-target').textContent !== `+jsString(hostileID))
	if shown := eval[string](b, `document.getElementById('route-target').textContent`); shown != got {
		t.Errorf("after the drain the route box says %q, the request went to %q", shown, got)
	}
	if stored := eval[string](b, `(sessionStorage.getItem('ringside.admin_token') || '') + document.cookie`); stored != "" {
		t.Errorf("the token was stored without being asked to (sessionStorage and cookies: %q)", stored)
	}

	// The refresh keeps the page current without a reload: a change made elsewhere shows.
	eval[bool](b, `window.notReloaded = true`)
	f.must(200, nil, "POST", "/v1/upstreams/cart/endpoints/cart-1/eject?for=10m", testToken, nil)
	b.waitJS("the ejected row", `document.querySelector('tr[data-endpoint="cart-1"]').dataset.state === 'ejected'`)
	if !eval[bool](b, `window.notReloaded === true`) {
		t.Error("the page reloaded to refresh")
	}

	// The one error expected is the browser's note of the refused drain's 401.
	var unexpected []string
	refused := 0
	for _, e := range b.pageErrors() {
		if strings.HasPrefix(e, "log (network): ") && strings.Contains(e, "status of 401") && strings.HasSuffix(e, "/drain") {
			refused++
			continue
		}
		unexpected = append(unexpected, e)
	}
	if len(unexpected) > 0 || refused != 1 {
		t.Errorf("the page reported errors (and %d refused drains, want 1):\n%s", refused, strings.Join(unexpected, "\n"))
	}
}

// TestStatusPageScreenshot saves a picture of the page, with -screenshot, in a typical state:
// traffic flowing, one endpoint drained, one ejected, a key routed around them.
func TestStatusPageScreenshot(t *testing.T) {
	if *screenshot == "" {
		t.Skip("no -screenshot file")
	}
	b := startBrowser(t, *screenshotWidth, 900)
	f := newFixture(t, fixtureOptions{backends: 5, token: true})
	traffic := func(n int) {
		for i := range n {
			f.send(fmt.Sprintf("user-%d", i))
		}
	}
	traffic(300)
	b.do("loading the page", chromedp.Navigate(f.admin+"/"), chromedp.WaitVisible(chromedp.CSS(`tr[data-endpoint]`)))
	key := f.keyOn("cart-2")
	f.must(200, nil, "POST", "/v1/upstreams/cart/endpoints/cart-2/drain", testToken, nil)
	f.must(200, nil, "POST", "/v1/upstreams/cart/endpoints/cart-4/eject?for=5m", testToken, nil)
	time.Sleep(time.Second) // a second reading of the counters, for the rates
	traffic(400)
	b.do("routing a key", chromedp.SetValue(chromedp.ID("route-key"), key),
		chromedp.Click(chromedp.CSS(`#route-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("route-target")))
	b.waitJS("the refreshed rates", `!document.querySelector('.stats dd').textContent.includes('–')`)
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
