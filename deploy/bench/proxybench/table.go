package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// summary is the median over the rounds of one contender in one configuration.
type summary struct {
	Proxy     string
	Kind      string
	Engine    string // ringside's engine when not the default
	Conns     int
	Endpoints int
	BodySize  int
	Runs      int // successful runs
	Failed    int // runs with an error
	Requests  int64

	RPS, RPSMin, RPSMax float64
	CPU, CPUMin, CPUMax float64 // proxy CPU µs per request
	UserCPU             float64 // the user-space share of CPU
	BackendCPU          float64
	WrkCPU              float64
	P50, P99, P999      float64
	RSSKiB              float64
	Errors              int64 // summed over the rounds
	Busy, Load1         float64
	Scrapes             int
	FirstErr            string
}

// median of xs (the mean of the middle two when even); NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratio is a/b, NaN when either is missing or b is zero.
func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// summarize groups results by (proxy, connections, endpoints, body size), in order of first
// appearance, and takes medians over the runs without an error. A run that failed still
// counts in Failed and its errors in Errors, so a broken contender shows as broken.
func summarize(rs []runResult) []summary {
	type key struct {
		proxy                  string
		conns, endpoints, body int
	}
	var order []key
	groups := map[key][]runResult{}
	for _, r := range rs {
		k := key{r.Proxy, r.Conns, r.Endpoints, r.BodySize}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([]summary, 0, len(order))
	for _, k := range order {
		g := groups[k]
		s := summary{Proxy: k.proxy, Kind: g[0].Kind, Engine: g[0].Engine, Conns: k.conns, Endpoints: k.endpoints, BodySize: k.body}
		var rps, cpu, ucpu, bcpu, wcpu, p50, p99, p999, rss, busy, load []float64
		for _, r := range g {
			s.Errors += r.Errors
			if r.Err != "" || r.Requests == 0 {
				s.Failed++
				if s.FirstErr == "" {
					s.FirstErr = r.Err
					if s.FirstErr == "" {
						s.FirstErr = "no request completed"
					}
				}
				continue
			}
			s.Runs++
			s.Requests += r.Requests
			s.Scrapes += r.Scrapes
			rps = append(rps, r.RPS)
			cpu = append(cpu, r.ProxyCPU)
			ucpu = append(ucpu, r.ProxyUser)
			bcpu = append(bcpu, r.BackendCPU)
			wcpu = append(wcpu, r.WrkCPU)
			p50 = append(p50, r.P50)
			p99 = append(p99, r.P99)
			p999 = append(p999, r.P999)
			rss = append(rss, float64(r.RSSKiB))
			busy = append(busy, r.Busy)
			load = append(load, r.Load1)
		}
		s.RPS, s.RPSMin, s.RPSMax = median(rps), minOf(rps), maxOf(rps)
		s.CPU, s.CPUMin, s.CPUMax = median(cpu), minOf(cpu), maxOf(cpu)
		s.UserCPU, s.BackendCPU, s.WrkCPU = median(ucpu), median(bcpu), median(wcpu)
		s.P50, s.P99, s.P999 = median(p50), median(p99), median(p999)
		s.RSSKiB, s.Busy, s.Load1 = median(rss), median(busy), median(load)
		out = append(out, s)
	}
	return out
}

func minOf(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return slices.Min(xs)
}

func maxOf(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return slices.Max(xs)
}

// find returns the summary of kind (not a variant: its name equals the kind), or nil.
func find(ss []summary, name string) *summary {
	for i := range ss {
		if ss[i].Proxy == name {
			return &ss[i]
		}
	}
	return nil
}

// Formatting. Missing values print as "—".

func fnum(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmt.Sprintf("%.*f", decimals, v)
}

// fint prints a rounded number with thin thousands separators: 31,752.
func fint(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fratio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v)
}

// fdur prints microseconds as µs below 1 ms, else ms.
func fdur(us float64) string {
	switch {
	case math.IsNaN(us):
		return "—"
	case us < 1000:
		return fmt.Sprintf("%.0f µs", us)
	case us < 100000:
		return fmt.Sprintf("%.2f ms", us/1000)
	default:
		return fmt.Sprintf("%.0f ms", us/1000)
	}
}

func fmib(kib float64) string {
	if math.IsNaN(kib) || kib == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", kib/1024)
}

// mdTable renders a markdown table.
func mdTable(header []string, rows [][]string) string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// mainTable is the headline table: medians, with ratios to nginx and HAProxy for requests/s
// and CPU per request. CPU is the proxy's own; direct has no proxy, so its CPU column is the
// backend's alone (shown in the backend column).
func mainTable(ss []summary) string {
	ngx, hap := find(ss, kindNginx), find(ss, kindHAProxy)
	ref := func(s *summary, f func(*summary) float64) float64 {
		if s == nil || s.Runs == 0 {
			return math.NaN()
		}
		return f(s)
	}
	rpsOf := func(s *summary) float64 { return s.RPS }
	cpuOf := func(s *summary) float64 { return s.CPU }
	header := []string{"proxy", "req/s (min–max)", "req/s ÷ nginx", "req/s ÷ HAProxy",
		"proxy CPU µs/req (min–max)", "CPU ÷ nginx", "CPU ÷ HAProxy",
		"p50", "p99", "p99.9", "peak RSS", "errors", "backend CPU µs/req", "runs"}
	var rows [][]string
	for i := range ss {
		s := &ss[i]
		cpu := fmt.Sprintf("%s (%s–%s)", fnum(s.CPU, 1), fnum(s.CPUMin, 1), fnum(s.CPUMax, 1))
		cpuN, cpuH := fratio(ratio(s.CPU, ref(ngx, cpuOf))), fratio(ratio(s.CPU, ref(hap, cpuOf)))
		if s.Kind == kindDirect {
			cpu, cpuN, cpuH = "— (no proxy)", "—", "—"
		}
		runs := fmt.Sprint(s.Runs)
		if s.Failed > 0 {
			runs += fmt.Sprintf(" (+%d failed)", s.Failed)
		}
		rows = append(rows, []string{
			"**" + s.Proxy + "**",
			fmt.Sprintf("%s (%s–%s)", fint(s.RPS), fint(s.RPSMin), fint(s.RPSMax)),
			fratio(ratio(s.RPS, ref(ngx, rpsOf))), fratio(ratio(s.RPS, ref(hap, rpsOf))),
			cpu, cpuN, cpuH,
			fdur(s.P50), fdur(s.P99), fdur(s.P999), fmib(s.RSSKiB), fmt.Sprint(s.Errors),
			fnum(s.BackendCPU, 1), runs,
		})
	}
	return mdTable(header, rows)
}

// detailTable is the table of a secondary suite: one row per summary, with the columns that
// tell its story, plus a ratio column against the row named by base (same proxy, other
// configuration) when base is non-nil.
func detailTable(ss []summary, base func(s summary) *summary, baseLabel string) string {
	header := []string{"proxy", "conns", "endpoints", "body", "req/s", "proxy CPU µs/req", "p50", "p99", "p99.9", "peak RSS", "errors", "backend CPU µs/req"}
	if base != nil {
		header = append(header, "CPU ÷ "+baseLabel, "req/s ÷ "+baseLabel)
	}
	var rows [][]string
	for _, s := range ss {
		body := "—"
		if s.BodySize > 0 {
			body = fsize(s.BodySize)
		}
		cpu := fnum(s.CPU, 1)
		if s.Kind == kindDirect {
			cpu = "— (no proxy)"
		}
		errs := fmt.Sprint(s.Errors)
		if s.Failed > 0 {
			errs += fmt.Sprintf(" (%d run(s) failed: %s)", s.Failed, oneLine(s.FirstErr, 80))
		}
		row := []string{"**" + s.Proxy + "**", fmt.Sprint(s.Conns), fint(float64(s.Endpoints)), body, fint(s.RPS), cpu,
			fdur(s.P50), fdur(s.P99), fdur(s.P999), fmib(s.RSSKiB), errs, fnum(s.BackendCPU, 1)}
		if base != nil {
			if b := base(s); b != nil && b.Runs > 0 {
				row = append(row, fratio(ratio(s.CPU, b.CPU)), fratio(ratio(s.RPS, b.RPS)))
			} else {
				row = append(row, "—", "—")
			}
		}
		rows = append(rows, row)
	}
	return mdTable(header, rows)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ReplaceAll(s, "|", "/")
}
