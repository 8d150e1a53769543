package main

import (
	"image/color"
	"slices"
	"strings"
	"testing"
)

func TestParseFlagsEngines(t *testing.T) {
	tests := []struct {
		args []string
		want []string // nil: an error
	}{
		{nil, []string{engineGoroutines, engineEventLoop}},
		{[]string{"-engines", "event_loop"}, []string{engineEventLoop}},
		{[]string{"-engines", " event_loop , goroutines,event_loop"}, []string{engineEventLoop, engineGoroutines}},
		{[]string{"-engines", "goroutines"}, []string{engineGoroutines}},
		{[]string{"-engines", "threads"}, nil},
		{[]string{"-engines", ","}, nil},
	}
	for _, tt := range tests {
		c, err := parseFlags(tt.args)
		switch {
		case tt.want == nil && err == nil:
			t.Errorf("%q: want an error, got engines %q", tt.args, c.engines)
		case tt.want != nil && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.want != nil && !slices.Equal(c.engines, tt.want):
			t.Errorf("%q: engines %q, want %q", tt.args, c.engines, tt.want)
		}
	}
}

func TestRingsideConfEngine(t *testing.T) {
	plain := ringsideConf("/d", "127.0.0.1:1", "127.0.0.1:2", proxySpec{Name: "ringside", Kind: kindRingside})
	if strings.Contains(plain, "engine:") {
		t.Errorf("the default engine should write no engine section:\n%s", plain)
	}
	loop := ringsideConf("/d", "127.0.0.1:1", "127.0.0.1:2", proxySpec{Name: ringsideName(engineEventLoop), Kind: kindRingside, Engine: engineEventLoop})
	if !strings.HasSuffix(loop, "\nengine:\n  kind: event_loop\n  loops: 1\n") {
		t.Errorf("event_loop config does not end with its engine section:\n%s", loop)
	}
	if !strings.HasPrefix(loop, plain) {
		t.Errorf("event_loop config should be the plain one plus the engine section:\n%s", loop)
	}
	four := ringsideConf("/d", "127.0.0.1:1", "127.0.0.1:2", proxySpec{Kind: kindRingside, Engine: engineEventLoop, Loops: 4})
	if !strings.Contains(four, "  loops: 4\n") {
		t.Errorf("loops 4 missing:\n%s", four)
	}
}

func TestSpecsPerEngine(t *testing.T) {
	names := func(ss []proxySpec) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Name)
		}
		return out
	}
	h := &harness{cfg: config{engines: []string{engineGoroutines, engineEventLoop}, gomaxprocs1: true}, peers: []string{kindNginx, kindHAProxy}}
	if got, want := names(h.mainSpecs()), []string{"ringside", "ringside GOMAXPROCS=1", "ringside event_loop", "nginx", "haproxy", "direct"}; !slices.Equal(got, want) {
		t.Errorf("mainSpecs = %q, want %q", got, want)
	}
	if got, want := names(h.peerSpecs(false)), []string{"ringside", "ringside event_loop", "nginx", "haproxy"}; !slices.Equal(got, want) {
		t.Errorf("peerSpecs = %q, want %q", got, want)
	}
	for _, s := range h.ringsideSpecs() {
		if s.Kind != kindRingside || (s.Name == "ringside") != (s.Engine == "") {
			t.Errorf("spec %+v: want kind ringside and an engine only for the event loop", s)
		}
	}
	h.cfg.engines = []string{engineEventLoop}
	if got, want := names(h.mainSpecs()), []string{"ringside event_loop", "nginx", "haproxy", "direct"}; !slices.Equal(got, want) {
		t.Errorf("event_loop only: mainSpecs = %q, want %q (GOMAXPROCS=1 is a goroutines variant)", got, want)
	}
	if got := (proxySpec{Kind: kindRingside, Engine: engineEventLoop}).tag(); got != "ringside-event_loop" {
		t.Errorf("tag = %q", got)
	}
}

func TestObserveBase(t *testing.T) {
	ss := []summary{
		{Proxy: "ringside", Kind: kindRingside, Conns: 64, Endpoints: 3, Runs: 1, CPU: 30},
		{Proxy: "ringside" + observeSuffix, Kind: kindRingside, Conns: 64, Endpoints: 3, Runs: 1, CPU: 33},
		{Proxy: "ringside event_loop", Kind: kindRingside, Engine: engineEventLoop, Conns: 64, Endpoints: 3, Runs: 1, CPU: 20},
		{Proxy: "ringside event_loop" + observeSuffix, Kind: kindRingside, Engine: engineEventLoop, Conns: 64, Endpoints: 3, Runs: 1, CPU: 22},
	}
	base := observeBase(ss)
	for i, want := range []string{"ringside", "ringside", "ringside event_loop", "ringside event_loop"} {
		b := base(ss[i])
		if b == nil || b.Proxy != want {
			t.Errorf("base of %q = %+v, want %q", ss[i].Proxy, b, want)
		}
	}
	md := detailTable(ss, base, "plain")
	if !strings.Contains(md, "| **ringside event_loop"+observeSuffix+"** |") || !strings.Contains(md, "| 1.10× |") {
		t.Errorf("observe table:\n%s", md)
	}
}

func TestMainTableEventLoopRatios(t *testing.T) {
	ss := []summary{
		{Proxy: "ringside", Kind: kindRingside, Runs: 3, RPS: 30000, CPU: 30},
		{Proxy: "ringside event_loop", Kind: kindRingside, Engine: engineEventLoop, Runs: 3, RPS: 36800, CPU: 18},
		{Proxy: "nginx", Kind: kindNginx, Runs: 3, RPS: 32000, CPU: 20},
		{Proxy: "haproxy", Kind: kindHAProxy, Runs: 3, RPS: 30000, CPU: 24},
	}
	lines := strings.Split(strings.TrimSpace(mainTable(ss)), "\n")
	row := lines[3]
	if !strings.HasPrefix(row, "| **ringside event_loop** | ") {
		t.Fatalf("row 2 = %q", row)
	}
	for _, want := range []string{"| 1.15× |", "| 1.23× |", "| 0.90× |", "| 0.75× |"} {
		if !strings.Contains(row, want) {
			t.Errorf("event_loop row lacks %q: %s", want, row)
		}
	}
}

func TestBarColor(t *testing.T) {
	same := func(a, b color.RGBA) bool { return a == b }
	if !same(barColor(chartBar{Kind: kindRingside}), kindColors[kindRingside]) ||
		!same(barColor(chartBar{Kind: kindRingside, Engine: engineEventLoop}), colRingsideLoop) ||
		!same(barColor(chartBar{Kind: "unknown"}), kindColors[kindDirect]) {
		t.Error("barColor: ringside orange, its event loops darker, unknown kinds grey")
	}
}
