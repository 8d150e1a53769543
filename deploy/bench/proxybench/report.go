package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func (h *harness) suiteResults(suite string) []runResult {
	var out []runResult
	for _, r := range h.results {
		if r.Suite == suite {
			out = append(out, r)
		}
	}
	return out
}

// writeOutputs writes RESULTS.md, chart.png, runs.csv and runs.json into -out.
func (h *harness) writeOutputs() error {
	main := summarize(h.suiteResults("main"))
	chart := filepath.Join(h.cfg.out, "chart.png")
	if len(main) > 0 {
		if err := writeChart(chart, h.chartData(main)); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
	}
	if err := writeRunsCSV(filepath.Join(h.cfg.out, "runs.csv"), h.results); err != nil {
		return err
	}
	js, err := json.MarshalIndent(h.results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.cfg.out, "runs.json"), js, 0o644); err != nil {
		return err
	}
	md := h.renderReport(main)
	p := filepath.Join(h.cfg.out, "RESULTS.md")
	if err := os.WriteFile(p, []byte(md), 0o644); err != nil {
		return err
	}
	h.logf("wrote %s, %s, runs.csv, runs.json in %s", filepath.Base(p), filepath.Base(chart), time.Since(h.started).Round(time.Second))
	return nil
}

func (h *harness) chartData(main []summary) chartData {
	var mainLoads []float64
	for _, r := range h.suiteResults("main") {
		mainLoads = append(mainLoads, r.Load1)
	}
	d := chartData{
		Title: fmt.Sprintf("PROXYBENCH: MEDIANS OF %s, %d CONNECTIONS, %s USERS, LOOPBACK", plural(h.cfg.rounds, "ROUND"), h.cfg.conns, fint(float64(h.cfg.users))),
		Subtitle: []string{
			fmt.Sprintf("%s · NPROC %d · %s · LINUX %s", h.machine.Date, h.machine.CPUs, h.machine.CPUModel, h.machine.Kernel),
			fmt.Sprintf("LOAD AVERAGE AT THE START OF THESE RUNS: MEDIAN %s · RINGSIDE %s · %s", fnum(median(mainLoads), 2), h.machine.Commit, h.machine.Go),
		},
	}
	for _, s := range main {
		cpu := s.CPU
		if s.Kind == kindDirect {
			cpu = math.NaN()
		}
		d.Bars = append(d.Bars, chartBar{Label: s.Proxy, Kind: s.Kind, Engine: s.Engine, CPU: cpu, RPS: s.RPS})
	}
	return d
}

func writeRunsCSV(path string, rs []runResult) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"suite", "round", "proxy", "backend", "conns", "endpoints", "body_size", "start",
		"requests", "rps", "p50_us", "p99_us", "p999_us", "errors", "proxy_cpu_us_per_req",
		"backend_cpu_us_per_req", "wrk_cpu_us_per_req", "rss_kib", "procs", "machine_busy_pct", "load1", "scrapes", "error"})
	for _, r := range rs {
		_ = w.Write([]string{r.Suite, fmt.Sprint(r.Round), r.Proxy, r.Backend, fmt.Sprint(r.Conns), fmt.Sprint(r.Endpoints),
			fmt.Sprint(r.BodySize), r.Start.UTC().Format(time.RFC3339), fmt.Sprint(r.Requests), fnum(r.RPS, 1),
			fnum(r.P50, 0), fnum(r.P99, 0), fnum(r.P999, 0), fmt.Sprint(r.Errors), fnum(r.ProxyCPU, 2),
			fnum(r.BackendCPU, 2), fnum(r.WrkCPU, 2), fmt.Sprint(r.RSSKiB), fmt.Sprint(r.Procs), fnum(r.Busy, 1),
			fnum(r.Load1, 2), fmt.Sprint(r.Scrapes), r.Err})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// renderReport is RESULTS.md.
func (h *harness) renderReport(main []summary) string {
	var b strings.Builder
	c := h.cfg
	m := h.machine
	fmt.Fprintf(&b, "# proxybench: ringside beside nginx, HAProxy and Caddy\n\n")
	fmt.Fprintf(&b, "Measured %s on `nproc` = %d × %s, Linux %s, %s; ringside at commit `%s`.\n", m.Date, m.CPUs, m.CPUModel, m.Kernel, m.Go, m.Commit)
	var loads []float64
	for _, r := range h.results {
		if r.Load1 >= 0 {
			loads = append(loads, r.Load1)
		}
	}
	fmt.Fprintf(&b, "Load average (1 min): %.2f before the benchmark, %.2f at the end; at the start of the measured runs median %s (%s–%s), "+
		"which counts the benchmark's own processes (wrk, the proxy and the backend: about 3 when busy) still decaying from the run before.",
		h.loadStart, h.loadEnd, fnum(median(loads), 2), fnum(minOf(loads), 2), fnum(maxOf(loads), 2))
	if h.loadStart >= 1.5 {
		b.WriteString(" **The machine was not idle** (other work was running beside the benchmark): absolute figures are lower and noisier than on a quiet machine; ratios between proxies measured in the same rounds hold up better. The *machine busy* column below shows how much of both CPUs was in use during each run.")
	}
	b.WriteString("\n\nCommand: `cd deploy/bench && go run ./proxybench " + strings.Join(h.args, " ") + "`  \n")
	var vs []string
	for _, k := range []string{"nginx", "haproxy", "caddy", "wrk"} {
		if v, ok := m.Versions[k]; ok {
			vs = append(vs, fmt.Sprintf("%s: `%s`", k, v))
		}
	}
	b.WriteString("Versions: " + strings.Join(vs, "; ") + ".\n\n")

	b.WriteString("## How it was measured\n\n")
	fmt.Fprintf(&b, "- Everything on 127.0.0.1. Load: `wrk -t%d -c%d -d%s --latency` with a Lua script that prebuilds one request per user "+
		"(%s distinct `X-User-ID` values) and walks them in turn; %s of unmeasured warm-up precedes each measurement.\n",
		c.threads, c.conns, c.duration, fint(float64(c.users)), c.warmup)
	fmt.Fprintf(&b, "- Backends: one %s server (for nginx: one worker process) listening on 3 ports (3 endpoints), answering every request with a 3-byte body after "+
		"discarding the request body; it is shared by all contenders and started once. See *Backends* below for why this one.\n", h.backend.kind)
	b.WriteString("- Contenders, configured for the same job (consistent hash of `X-User-ID`, keep-alive on both sides, no access log):\n" +
		"  - **ringside**: `go build ./cmd/ringside`, `discovery.kind: file`, one upstream with `hash_key: [header:X-User-ID]`, " +
		"`balancer: ring_hash`, defaults otherwise (retries and passive outlier detection on, active health checks off as for the peers), GOMAXPROCS unset (= 2), " +
		"its default engine (`engine.kind: goroutines`: a goroutine per connection); " +
		"**ringside GOMAXPROCS=1** is the same binary limited to one thread running Go code.\n" +
		eventLoopContender(c) +
		"  - **nginx**: `worker_processes 1`, `upstream { hash $http_x_user_id consistent; keepalive 256; }` (keepalive 2 per server with 5,000 servers), `proxy_http_version 1.1`, " +
		"`proxy_set_header Connection \"\"`, `proxy_request_buffering off` (stream bodies like ringside), `keepalive_requests 1000000`, `access_log off`.\n" +
		"  - **HAProxy**: `nbthread 1`, `maxconn 4000`, `mode http`, `option http-keep-alive` (default `http-reuse safe`), " +
		"`balance hdr(X-User-ID)` + `hash-type consistent`, no logging.\n" +
		"  - **Caddy**: `reverse_proxy { lb_policy header X-User-ID }`, `admin off`, `auto_https off`, no `log` directive, GOMAXPROCS unset.\n" +
		"  - **direct**: wrk straight at the first backend port: the ceiling of this machine with no proxy.\n")
	fmt.Fprintf(&b, "- %s; in each round every contender runs once, started fresh, in an order rotated from round to round "+
		"(interleaved, so that drift in the machine's load hits all of them alike). Tables show medians; min–max in brackets.\n", plural(c.rounds, "round"))
	b.WriteString("- **proxy CPU µs/req**: utime+stime of *all* the proxy's processes (an nginx master and its worker, for example) " +
		"from `/proc/PID/stat` just before and just after the measured run, divided by the requests wrk completed. " +
		"**peak RSS**: `VmHWM` from `/proc/PID/status`, summed over those processes. **errors**: wrk's socket errors " +
		"(connect, read, write, timeout) plus responses with status ≥ 400. **backend CPU µs/req**: the same measurement of the backend process.\n")
	b.WriteString("- On 2 cores wrk, the proxy and the backend share the CPUs, so requests/s mostly says who leaves the most CPU to the others; " +
		"CPU per request is the figure that carries over to a sidecar's real cost.\n\n")

	fmt.Fprintf(&b, "## Main comparison (%d connections, 3 endpoints)\n\n", c.conns)
	if len(main) == 0 {
		b.WriteString("Not run.\n\n")
	} else {
		b.WriteString(mainTable(main))
		b.WriteString("\n![CPU per request and requests/s](chart.png)\n\n")
		b.WriteString(conditionsTable(main))
		b.WriteString("\n")
	}

	sections := []struct {
		suite, title, intro string
		base                func([]summary) func(summary) *summary
		label               string
	}{
		{"sweep", "Concurrency sweep", fmt.Sprintf("Each contender at each connection count, %s per run, %s. Ratios against nginx at the same connection count.", c.sweepDuration, plural(c.extraRounds, "round")),
			func(ss []summary) func(summary) *summary {
				return func(s summary) *summary { return findWhere(ss, kindNginx, s.Conns, s.Endpoints, s.BodySize) }
			}, "nginx"},
		{"endpoints", fmt.Sprintf("%s endpoints", fint(float64(c.manyEndpoints))),
			fmt.Sprintf("One backend process listening on %s loopback ports: every endpoint is real and answers (no dead addresses that the hash never picks), and each is a distinct socket, "+
				"so each proxy keeps per-endpoint connection pools as it would for distinct hosts. With %s users each endpoint gets about %d users. "+
				"Each proxy runs in front of all of them and, as its baseline, in front of 3 ports of the same backend process. Ratios are against the same proxy with 3 endpoints.",
				fint(float64(c.manyEndpoints)), fint(float64(c.users)), max(1, c.users/max(1, c.manyEndpoints))),
			func(ss []summary) func(summary) *summary {
				return func(s summary) *summary { return findWhere(ss, s.Proxy, s.Conns, 3, s.BodySize) }
			}, "3 endpoints"},
		{"body", fmt.Sprintf("%s request body", fsize(c.bodySize)),
			fmt.Sprintf("`POST` with a %d-byte body, %d connections, %d users (each prebuilt request holds the body, so fewer users keep wrk's memory small). "+
				"The backend here is the Go one on 3 ports, which reads the whole body before it answers, as an upload handler does (nginx's `return 200` answers before reading the body, "+
				"and nginx as a streaming proxy then closes the client connection on nearly every request: a backend artefact, not a proxy cost). Ratios against nginx.%s", c.bodySize, c.bodyConns, c.bodyUsers, bodyEventLoopNote(c)),
			func(ss []summary) func(summary) *summary {
				return func(s summary) *summary { return findWhere(ss, kindNginx, s.Conns, s.Endpoints, s.BodySize) }
			}, "nginx"},
		{"observe", "Access log and metrics on",
			fmt.Sprintf("ringside as in the main table, alternated over %s with ringside writing an access log line for 1 request in 100 (`log.access_log: true`, `access_log_sample: 100`, JSON lines to a file) while `/metrics` is scraped every second%s. "+
				"Ratios against the same engine with both off (*plain*).", plural(c.rounds, "round"), observeEnginesNote(c)),
			observeBase, "plain"},
		{"backends", "Backends: nginx or Go net/http",
			"wrk straight at each backend (its CPU per request is what the backend costs) and " + h.ringsideSpecs()[0].Name + " in front of each. The cheaper backend leaves more of the 2 cores to the proxy under test, so it is the one used everywhere else.",
			nil, ""},
	}
	for _, s := range sections {
		ss := summarize(h.suiteResults(s.suite))
		if len(ss) == 0 {
			continue
		}
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", s.title, s.intro)
		var base func(summary) *summary
		if s.base != nil {
			base = s.base(ss)
		}
		b.WriteString(detailTable(ss, base, s.label))
		if s.suite == "observe" {
			for _, x := range ss {
				if x.Scrapes > 0 {
					fmt.Fprintf(&b, "\n**%s**: %d successful `/metrics` scrapes over %d run(s).\n", x.Proxy, x.Scrapes, x.Runs)
				}
			}
		}
		if s.suite == "backends" {
			b.WriteString("\n" + backendVerdict(ss) + "\n")
		}
		b.WriteString("\n")
	}

	if len(h.syscalls) > 0 {
		b.WriteString("## System calls per request\n\n`strace -c -f` attached to all of each proxy's processes during a short run at " +
			fmt.Sprintf("%d connections (strace slows a proxy down several times, so only the counts mean anything here, not the speed). ", c.conns) +
			"Counts include the few calls that accept and open connections, spread over the run.\n\n")
		b.WriteString(syscallTable(h.syscalls) + "\n")
	}
	for _, p := range h.profiles {
		b.WriteString(renderProfile(p, c, h.cfg.out))
	}
	if len(h.notes) > 0 {
		b.WriteString("## Notes: what was skipped or went wrong\n\n")
		for _, n := range h.notes {
			b.WriteString("- " + oneLine(n, 400) + "\n")
		}
		b.WriteString("\n")
	}
	var failed []string
	for _, r := range h.results {
		if r.Err != "" {
			failed = append(failed, fmt.Sprintf("- %s round %d, %s (c=%d, %d endpoints): %s", r.Suite, r.Round, r.Proxy, r.Conns, r.Endpoints, oneLine(r.Err, 300)))
		}
	}
	if len(failed) > 0 {
		b.WriteString("## Failed runs\n\n" + strings.Join(failed, "\n") + "\n\n")
	}
	b.WriteString("Every run, every round: [runs.csv](runs.csv), [runs.json](runs.json).\n")
	return b.String()
}

// observeBase, for the observe suite, finds the row of the same engine with the access log
// and scraping off: "ringside event_loop + access log …" → "ringside event_loop".
func observeBase(ss []summary) func(summary) *summary {
	return func(s summary) *summary {
		return findWhere(ss, strings.TrimSuffix(s.Proxy, observeSuffix), s.Conns, s.Endpoints, s.BodySize)
	}
}

// eventLoopContender is the line of the contenders list about ringside event_loop, when
// -engines has it.
func eventLoopContender(c config) string {
	if !slices.Contains(c.engines, engineEventLoop) {
		return ""
	}
	return "  - **" + ringsideName(engineEventLoop) + "**: the same binary and configuration with `engine: {kind: event_loop, loops: 1}`: " +
		"one epoll event loop (one OS thread) per listener owns its client and endpoint sockets and serves a request without a body itself, " +
		"as nginx's one worker and HAProxy's one thread do; a request it does not serve (a body, an upgrade, HTTP/1.0) is handed over, " +
		"with its connection, to the goroutine engine.\n"
}

// bodyEventLoopNote says what the body suite measures of the event loop engine.
func bodyEventLoopNote(c config) string {
	if !slices.Contains(c.engines, engineEventLoop) {
		return ""
	}
	return " **" + ringsideName(engineEventLoop) + "** hands a request with a body, and its connection, over to the goroutine engine, " +
		"so here it measures that hand-over and the goroutine path, not the event loop."
}

// observeEnginesNote names the engines of the observe suite when there is more than one.
func observeEnginesNote(c config) string {
	if len(c.engines) < 2 {
		return ""
	}
	var names []string
	for _, e := range c.engines {
		names = append(names, "**"+ringsideName(e)+"**")
	}
	return fmt.Sprintf("; for each engine (%s), all %d interleaved", strings.Join(names, ", "), 2*len(c.engines))
}

func findWhere(ss []summary, proxy string, conns, endpoints, body int) *summary {
	for i := range ss {
		s := &ss[i]
		if s.Proxy == proxy && s.Conns == conns && s.Endpoints == endpoints && s.BodySize == body {
			return s
		}
	}
	return nil
}

// conditionsTable shows how busy the machine was during each contender's runs.
func conditionsTable(ss []summary) string {
	var rows [][]string
	for _, s := range ss {
		user, kernel := "—", "—"
		if s.Kind != kindDirect {
			user, kernel = fnum(s.UserCPU, 1), fnum(s.CPU-s.UserCPU, 1)
		}
		rows = append(rows, []string{s.Proxy, user, kernel, fnum(s.Busy, 0) + " %", fnum(s.Load1, 2), fnum(s.WrkCPU, 1), fint(float64(s.Requests))})
	}
	return "Run conditions (medians): *user* and *kernel* split the proxy's CPU µs/req into utime and stime; *machine busy* is the share of both CPUs in use during the measured window, by everything on the machine.\n\n" +
		mdTable([]string{"proxy", "proxy user µs/req", "proxy kernel µs/req", "machine busy", "load average at start", "wrk CPU µs/req", "requests measured (all rounds)"}, rows)
}

// backendVerdict says which backend costs less per request, from the direct runs.
func backendVerdict(ss []summary) string {
	var ngx, gob *summary
	for i := range ss {
		if ss[i].Kind != kindDirect {
			continue
		}
		switch {
		case strings.HasSuffix(ss[i].Proxy, backendNginx+" backend"):
			ngx = &ss[i]
		case strings.HasSuffix(ss[i].Proxy, backendGo+" backend"):
			gob = &ss[i]
		}
	}
	if ngx == nil || gob == nil || ngx.Runs == 0 || gob.Runs == 0 {
		return ""
	}
	cheaper, dearer := ngx, gob
	if gob.BackendCPU < ngx.BackendCPU {
		cheaper, dearer = gob, ngx
	}
	return fmt.Sprintf("Backend CPU per request with wrk straight at it: nginx %.1f µs, Go net/http %.1f µs: **%s** costs %.2f× less.",
		ngx.BackendCPU, gob.BackendCPU, strings.TrimPrefix(strings.TrimSuffix(cheaper.Proxy, " backend"), "direct → "), dearer.BackendCPU/cheaper.BackendCPU)
}

func renderProfile(p *profileResult, c config, out string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Profile of %s under the main workload, %s\n\n", p.Proxy, p.Label)
	rel, err := filepath.Rel(out, p.Dir)
	if err != nil {
		rel = p.Dir
	}
	fmt.Fprintf(&b, "%s with `admin.pprof: true`, %d connections, %s users: a %d s CPU profile (`/debug/pprof/profile`) during the run "+
		"and `/debug/pprof/heap?gc=1` (allocation samples, current after a forced GC) before and after it (pprof `-base`). %s requests at %s req/s; **%.0f bytes and %.1f heap allocations per request** "+
		"(runtime.MemStats TotalAlloc and Mallocs differences ÷ requests), %d GCs. Files in [%s/](%s/).\n\n",
		p.Proxy, c.conns, fint(float64(c.users)), p.CPUSeconds, fint(float64(p.Requests)), fint(p.RPS), p.BytesPerReq, p.AllocsPerReq, p.GCs, rel, rel)
	block := func(title, text string, lines int) {
		if text == "" {
			return
		}
		fmt.Fprintf(&b, "%s\n\n```\n%s\n```\n\n", title, headLines(text, lines))
	}
	block("CPU, flat, whole process:", p.CPUTop, 32)
	block("CPU, cumulative, whole process:", p.CPUCum, 53)
	block("CPU, cumulative, frames of package proxy only (each sample charged to its innermost proxy frame):", p.CPUProxy, 24)
	block("Allocated bytes during the run, flat:", p.AllocTop, 20)
	block("Allocated objects during the run, flat:", p.AllocObjTop, 20)
	block("Allocated bytes, frames of package proxy only:", p.AllocProxy, 20)
	return b.String()
}

func headLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.ToUpper(word) == word {
		return fmt.Sprintf("%d %sS", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// fsize prints a byte count as B, KiB or MiB.
func fsize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}
