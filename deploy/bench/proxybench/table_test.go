package main

import (
	"math"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		give []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1, 10, 1000}, 10},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.give...)
		if got := median(tt.give); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.give, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.give[i] {
				t.Fatalf("median reordered its input: %v", tt.give)
			}
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) should be NaN")
	}
}

func TestRatio(t *testing.T) {
	if got := ratio(30, 20); got != 1.5 {
		t.Errorf("ratio(30, 20) = %v", got)
	}
	for _, c := range [][2]float64{{1, 0}, {math.NaN(), 1}, {1, math.NaN()}} {
		if got := ratio(c[0], c[1]); !math.IsNaN(got) {
			t.Errorf("ratio(%v, %v) = %v, want NaN", c[0], c[1], got)
		}
	}
}

func TestSummarize(t *testing.T) {
	rs := []runResult{
		{Proxy: "ringside", Kind: kindRingside, Conns: 64, Endpoints: 3, Round: 1, Requests: 100, RPS: 30000, ProxyCPU: 30, P99: 900, RSSKiB: 20000},
		{Proxy: "nginx", Kind: kindNginx, Conns: 64, Endpoints: 3, Round: 1, Requests: 100, RPS: 33000, ProxyCPU: 20, P99: 800, RSSKiB: 10000},
		{Proxy: "ringside", Kind: kindRingside, Conns: 64, Endpoints: 3, Round: 2, Requests: 100, RPS: 10000, ProxyCPU: 32, P99: 1000, RSSKiB: 21000, Errors: 2},
		{Proxy: "nginx", Kind: kindNginx, Conns: 64, Endpoints: 3, Round: 2, Requests: 100, RPS: 31000, ProxyCPU: 22, P99: 700, RSSKiB: 11000},
		{Proxy: "ringside", Kind: kindRingside, Conns: 64, Endpoints: 3, Round: 3, Requests: 100, RPS: 20000, ProxyCPU: 34, P99: 950, RSSKiB: 22000},
		// a failed run: counted, errors kept, but out of the medians
		{Proxy: "nginx", Kind: kindNginx, Conns: 64, Endpoints: 3, Round: 3, Err: "nginx exited", Errors: 7},
		// another configuration of the same proxy is another group
		{Proxy: "ringside", Kind: kindRingside, Conns: 64, Endpoints: 5000, Round: 1, Requests: 100, RPS: 5000, ProxyCPU: 60},
	}
	ss := summarize(rs)
	if len(ss) != 3 {
		t.Fatalf("got %d groups, want 3: %+v", len(ss), ss)
	}
	r, n, r5k := ss[0], ss[1], ss[2]
	if r.Proxy != "ringside" || n.Proxy != "nginx" || r5k.Endpoints != 5000 {
		t.Fatalf("group order: %q %q %d", r.Proxy, n.Proxy, r5k.Endpoints)
	}
	if r.RPS != 20000 || r.RPSMin != 10000 || r.RPSMax != 30000 || r.CPU != 32 || r.P99 != 950 || r.RSSKiB != 21000 {
		t.Errorf("ringside medians: %+v", r)
	}
	if r.Runs != 3 || r.Errors != 2 || r.Requests != 300 {
		t.Errorf("ringside runs %d errors %d requests %d", r.Runs, r.Errors, r.Requests)
	}
	if n.Runs != 2 || n.Failed != 1 || n.Errors != 7 || n.RPS != 32000 || n.CPU != 21 || n.FirstErr != "nginx exited" {
		t.Errorf("nginx: %+v", n)
	}
	if got := ratio(r.CPU, n.CPU); math.Abs(got-32.0/21) > 1e-9 {
		t.Errorf("CPU ratio = %v", got)
	}
}

func TestMainTable(t *testing.T) {
	ss := []summary{
		{Proxy: "ringside", Kind: kindRingside, Runs: 3, RPS: 30000, RPSMin: 29000, RPSMax: 31000, CPU: 30, CPUMin: 29, CPUMax: 31, P50: 1500, P99: 5000, P999: 120000, RSSKiB: 25 * 1024},
		{Proxy: "nginx", Kind: kindNginx, Runs: 3, RPS: 32000, CPU: 20},
		{Proxy: "haproxy", Kind: kindHAProxy, Runs: 3, RPS: 30000, CPU: 25},
		{Proxy: "direct", Kind: kindDirect, Runs: 3, RPS: 60000, Failed: 1},
	}
	md := mainTable(ss)
	lines := strings.Split(strings.TrimSpace(md), "\n")
	if len(lines) != 2+len(ss) {
		t.Fatalf("table has %d lines:\n%s", len(lines), md)
	}
	cells := func(line string) []string {
		f := strings.Split(strings.Trim(line, "|"), "|")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		return f
	}
	header := cells(lines[0])
	ringside := cells(lines[2])
	if len(ringside) != len(header) {
		t.Fatalf("row has %d cells, header %d", len(ringside), len(header))
	}
	want := map[string]string{
		"proxy":                      "**ringside**",
		"req/s (min–max)":            "30,000 (29,000–31,000)",
		"req/s ÷ nginx":              "0.94×",
		"req/s ÷ HAProxy":            "1.00×",
		"proxy CPU µs/req (min–max)": "30.0 (29.0–31.0)",
		"CPU ÷ nginx":                "1.50×",
		"CPU ÷ HAProxy":              "1.20×",
		"p50":                        "1.50 ms",
		"p99":                        "5.00 ms",
		"p99.9":                      "120 ms",
		"peak RSS":                   "25.0 MiB",
		"runs":                       "3",
	}
	for i, h := range header {
		if w, ok := want[h]; ok && ringside[i] != w {
			t.Errorf("ringside %q = %q, want %q", h, ringside[i], w)
		}
	}
	direct := cells(lines[5])
	for i, h := range header {
		switch h {
		case "proxy CPU µs/req (min–max)":
			if direct[i] != "— (no proxy)" {
				t.Errorf("direct CPU = %q", direct[i])
			}
		case "runs":
			if direct[i] != "3 (+1 failed)" {
				t.Errorf("direct runs = %q", direct[i])
			}
		}
	}
	// Without nginx in the table the ratio columns say so rather than divide by zero.
	if md := mainTable(ss[2:]); !strings.Contains(md, "| — |") {
		t.Errorf("missing nginx should print —:\n%s", md)
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{fint(0), "0"}, {fint(999), "999"}, {fint(1000), "1,000"}, {fint(31752.4), "31,752"}, {fint(-1234567), "-1,234,567"},
		{fint(math.NaN()), "—"},
		{fdur(812), "812 µs"}, {fdur(1960), "1.96 ms"}, {fdur(150000), "150 ms"}, {fdur(math.NaN()), "—"},
		{fratio(1.234), "1.23×"}, {fratio(math.Inf(1)), "—"},
		{fmib(2048), "2.0 MiB"}, {fmib(0), "—"},
		{oneLine("a |b\n  c", 80), "a /b c"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestRotate(t *testing.T) {
	specs := []proxySpec{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	names := func(ss []proxySpec) string {
		var b strings.Builder
		for _, s := range ss {
			b.WriteString(s.Name)
		}
		return b.String()
	}
	for round, want := range []string{"abc", "bca", "cab", "abc"} {
		if got := names(rotate(specs, round)); got != want {
			t.Errorf("rotate round %d = %s, want %s", round, got, want)
		}
	}
	if names(specs) != "abc" {
		t.Error("rotate changed its input")
	}
}

func TestParseMemStats(t *testing.T) {
	text := "heap profile: 1: 2 [3: 4] @ heap/1048576\n...\n# runtime.MemStats\n# Alloc = 123\n# TotalAlloc = 987654321\n# Sys = 1\n# Mallocs = 4567\n# Frees = 4000\n# NumGC = 12\n"
	got, err := parseMemStats(text)
	if err != nil {
		t.Fatal(err)
	}
	if got != (memStats{TotalAlloc: 987654321, Mallocs: 4567, NumGC: 12}) {
		t.Errorf("parseMemStats = %+v", got)
	}
	if _, err := parseMemStats("# Alloc = 1\n"); err == nil {
		t.Error("want an error when the counters are missing")
	}
}
