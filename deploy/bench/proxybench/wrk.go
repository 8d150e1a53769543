package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// usersScript is the wrk Lua script of every run. It builds one request per user in init (so
// the hot loop only returns a prebuilt string; calling wrk.format per request would cost wrk
// more CPU than some proxies spend), walks the users in turn from a per-thread offset, and
// prints a machine-readable summary line in done, which is the only way to get p99.9 out of
// wrk. Arguments after "--": users, method, body bytes.
const usersScript = `
local reqs = {}
local n, i = 0, 0
local nthreads = 0

setup = function(thread)
  thread:set("offset", nthreads * 7919)
  nthreads = nthreads + 1
end

init = function(args)
  local users = tonumber(args[1]) or 10000
  local method = args[2] or "GET"
  local size = tonumber(args[3]) or 0
  local body = nil
  if size > 0 then body = string.rep("x", size) end
  for u = 1, users do
    reqs[u] = wrk.format(method, "/", {["X-User-ID"] = "user-" .. u}, body)
  end
  n = users
  i = (offset or 0) % n
end

request = function()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "PROXYBENCH requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50=%d p90=%d p99=%d p999=%d max=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`

// wrkResult is one wrk run. Latencies are in microseconds.
type wrkResult struct {
	Requests   int64
	DurationUS int64
	RPS        float64
	P50, P75   float64
	P90, P99   float64
	P999, Max  float64
	Connect    int64 // socket errors
	Read       int64
	Write      int64
	Timeout    int64
	Status     int64         // responses with status ≥ 400 ("Non-2xx or 3xx responses")
	CPU        time.Duration // wrk's own user+system time (set by runWrk, not parsed)
	fromScript bool          // the PROXYBENCH line was seen
}

// Errors is every failed exchange: socket errors plus error statuses.
func (r wrkResult) Errors() int64 { return r.Connect + r.Read + r.Write + r.Timeout + r.Status }

// parseWrk reads wrk's text output (with --latency) and, when present, the PROXYBENCH line of
// usersScript, whose exact integer values win over the rounded text.
func parseWrk(out string) (wrkResult, error) {
	var r, s wrkResult // r from the text, s from the script line
	sawText := false
	inDist := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "PROXYBENCH":
			if err := s.parseScriptLine(f[1:]); err != nil {
				return r, err
			}
		case line == "Latency Distribution":
			inDist = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			switch f[0] {
			case "50%":
				r.P50 = d
			case "75%":
				r.P75 = d
			case "90%":
				r.P90 = d
			case "99%":
				r.P99 = d
			}
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			inDist = false
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk requests %q: %w", f[0], err)
			}
			r.Requests = n
			sawText = true
		case strings.HasPrefix(line, "Socket errors:"):
			// Socket errors: connect 0, read 12, write 0, timeout 3
			kv := strings.Fields(strings.ReplaceAll(strings.TrimPrefix(line, "Socket errors:"), ",", " "))
			for j := 0; j+1 < len(kv); j += 2 {
				n, err := strconv.ParseInt(kv[j+1], 10, 64)
				if err != nil {
					return r, fmt.Errorf("wrk socket errors %q: %w", line, err)
				}
				switch kv[j] {
				case "connect":
					r.Connect = n
				case "read":
					r.Read = n
				case "write":
					r.Write = n
				case "timeout":
					r.Timeout = n
				}
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk non-2xx %q: %w", line, err)
			}
			r.Status = n
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk requests/sec %q: %w", f[1], err)
			}
			r.RPS = v
		}
	}
	if !s.fromScript {
		if !sawText {
			return r, fmt.Errorf("wrk output has no request count:\n%s", abbreviateLines(out, 20))
		}
		return r, nil
	}
	// The script's integers are exact; keep the text's p75, which the script does not print.
	s.P75 = r.P75
	s.RPS = r.RPS
	if s.DurationUS > 0 {
		s.RPS = float64(s.Requests) / (float64(s.DurationUS) / 1e6)
	}
	return s, nil
}

func (r *wrkResult) parseScriptLine(kvs []string) error {
	r.fromScript = true
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("PROXYBENCH field %q: want key=value", kv)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("PROXYBENCH %s: %w", k, err)
		}
		switch k {
		case "requests":
			r.Requests = n
		case "duration_us":
			r.DurationUS = n
		case "connect":
			r.Connect = n
		case "read":
			r.Read = n
		case "write":
			r.Write = n
		case "status":
			r.Status = n
		case "timeout":
			r.Timeout = n
		case "p50":
			r.P50 = float64(n)
		case "p90":
			r.P90 = float64(n)
		case "p99":
			r.P99 = float64(n)
		case "p999":
			r.P999 = float64(n)
		case "max":
			r.Max = float64(n)
		}
	}
	return nil
}

// parseWrkDuration parses wrk's latency format: "812.00us", "1.96ms", "2.01s", "1.50m",
// "1.00h". The result is in microseconds.
func parseWrkDuration(s string) (float64, error) {
	units := []struct {
		suffix string
		us     float64
	}{{"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}, {"h", 3600e6}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk duration %q: %w", s, err)
			}
			return v * u.us, nil
		}
	}
	return 0, fmt.Errorf("wrk duration %q: unknown unit", s)
}

func abbreviateLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "\n")
}

// wrkJob is one invocation of wrk.
type wrkJob struct {
	URL      string
	Threads  int
	Conns    int
	Duration time.Duration
	Users    int
	Method   string
	BodySize int
}

// runWrk runs wrk with usersScript. wrk stops itself after Duration; the context bounds it
// anyway, in case wrk hangs on a proxy that stops answering.
func runWrk(ctx context.Context, scriptPath string, j wrkJob) (wrkResult, string, error) {
	threads := max(1, min(j.Threads, j.Conns))
	secs := max(1, int(j.Duration.Round(time.Second)/time.Second))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	method := j.Method
	if method == "" {
		method = "GET"
	}
	args := []string{
		"-t", strconv.Itoa(threads), "-c", strconv.Itoa(j.Conns), "-d", strconv.Itoa(secs) + "s",
		"--latency", "--timeout", "10s", "-s", scriptPath, j.URL,
		"--", strconv.Itoa(j.Users), method, strconv.Itoa(j.BodySize),
	}
	cmd := exec.CommandContext(ctx, "wrk", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, string(out), fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, abbreviateLines(string(out), 20))
	}
	r, err := parseWrk(string(out))
	r.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, string(out), err
}

// writeScript writes usersScript into dir and returns its path.
func writeScript(dir string) (string, error) {
	p := dir + "/users.lua"
	return p, os.WriteFile(p, []byte(usersScript), 0o644)
}
