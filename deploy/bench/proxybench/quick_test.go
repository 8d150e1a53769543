package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuick runs the harness end to end in -quick mode: one round, 2 s per proxy, ringside
// (both engines: "ringside" and "ringside event_loop"), direct and whichever peers are
// installed. It takes about a minute and a half and needs wrk, so it runs only with RINGSIDE_BENCH=1.
func TestQuick(t *testing.T) {
	if os.Getenv("RINGSIDE_BENCH") != "1" {
		t.Skip("set RINGSIDE_BENCH=1 to run the benchmark harness (needs wrk; ~1.5 minutes)")
	}
	if m := missingPrograms("wrk"); len(m) > 0 {
		t.Skip("wrk is not installed")
	}
	out := t.TempDir()
	args := []string{"-quick", "-install=false", "-max-time", "5m", "-out", out}
	cfg, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	if err := run(ctx, cfg, args); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(filepath.Join(out, "runs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rs []runResult
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	served := map[string]int64{}
	for _, r := range rs {
		if r.Suite == "main" && r.Err == "" {
			served[r.Proxy] += r.Requests
		}
		if r.Suite == "main" && r.Kind != kindDirect && r.Err == "" && (r.ProxyCPU <= 0 || r.RSSKiB <= 0) {
			t.Errorf("%s: CPU %v µs/req, RSS %d KiB: want both > 0", r.Proxy, r.ProxyCPU, r.RSSKiB)
		}
	}
	for _, p := range []string{"ringside", "ringside event_loop", "direct"} {
		if served[p] == 0 {
			t.Errorf("no requests served by %s in the main suite: %+v", p, served)
		}
	}

	md, err := os.ReadFile(filepath.Join(out, "RESULTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{"| **ringside** | ", "| **ringside event_loop** | ", "| **direct** | "} {
		i := strings.Index(string(md), row)
		if i < 0 {
			t.Fatalf("RESULTS.md has no %q row:\n%s", row, md)
		}
		// The req/s cell, right after the name, is a non-zero number.
		cell := strings.TrimSpace(strings.SplitN(string(md)[i+len(row):], "|", 2)[0])
		if cell == "" || strings.HasPrefix(cell, "0 ") || strings.HasPrefix(cell, "—") {
			t.Errorf("%s req/s cell = %q", row, cell)
		}
	}

	pngBytes, err := os.ReadFile(filepath.Join(out, "chart.png"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(pngBytes)); err != nil {
		t.Errorf("chart.png: %v", err)
	}
}
