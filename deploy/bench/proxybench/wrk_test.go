package main

import (
	"testing"
)

const wrkTextOnly = `Running 10s test @ http://127.0.0.1:9001/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.01ms  345.21us   9.34ms   85.43%
    Req/Sec    31.92k     1.23k   34.12k    70.00%
  Latency Distribution
     50%  812.00us
     75%    2.14ms
     90%    2.36ms
     99%    1.10s
  317650 requests in 10.00s, 45.44MB read
  Socket errors: connect 1, read 12, write 2, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:  31752.01
Transfer/sec:      4.54MB
`

const wrkWithScript = wrkTextOnly + "PROXYBENCH requests=317651 duration_us=10000500 bytes=47646500 connect=0 read=11 write=0 status=4 timeout=3 p50=811 p90=2359 p99=1100123 p999=1500000 max=1600000\n"

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name string
		give string
		want wrkResult
	}{
		{
			name: "text only",
			give: wrkTextOnly,
			want: wrkResult{Requests: 317650, RPS: 31752.01, P50: 812, P75: 2140, P90: 2360, P99: 1.1e6,
				Connect: 1, Read: 12, Write: 2, Timeout: 3, Status: 5},
		},
		{
			name: "the script's exact figures win",
			give: wrkWithScript,
			want: wrkResult{Requests: 317651, DurationUS: 10000500, RPS: 317651 / 10.0005, P50: 811, P75: 2140, P90: 2359,
				P99: 1100123, P999: 1.5e6, Max: 1.6e6, Read: 11, Timeout: 3, Status: 4, fromScript: true},
		},
		{
			name: "no errors",
			give: "  Latency Distribution\n     50%    1.00ms\n     75%    2.00ms\n     90%    3.00ms\n     99%    4.00ms\n  10 requests in 1.00s, 1.00KB read\nRequests/sec:     10.00\n",
			want: wrkResult{Requests: 10, RPS: 10, P50: 1000, P75: 2000, P90: 3000, P99: 4000},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWrk(tt.give)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("parseWrk =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseWrkErrorsSum(t *testing.T) {
	r, err := parseWrk(wrkTextOnly)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Errors(); got != 1+12+2+3+5 {
		t.Errorf("Errors() = %d, want 23", got)
	}
}

func TestParseWrkBad(t *testing.T) {
	for _, give := range []string{
		"",
		"unable to connect to 127.0.0.1:9001 Connection refused\n",
		"  Latency Distribution\n     50%    1.00parsecs\n  10 requests in 1.00s, 1KB read\n",
		"  x requests in 1.00s, 1KB read\n",
		"PROXYBENCH requests=abc\n",
		"PROXYBENCH requests\n",
		"  10 requests in 1.00s, 1KB read\n  Socket errors: connect x, read 0, write 0, timeout 0\n",
		"  10 requests in 1.00s, 1KB read\n  Non-2xx or 3xx responses: many\n",
	} {
		if r, err := parseWrk(give); err == nil {
			t.Errorf("parseWrk(%q) = %+v, want an error", give, r)
		}
	}
}

func FuzzParseWrk(f *testing.F) {
	f.Add(wrkTextOnly)
	f.Add(wrkWithScript)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseWrk(s)
		if err == nil && r.Requests < 0 && !r.fromScript {
			t.Errorf("negative requests from text %q", s)
		}
	})
}

func TestParseWrkDuration(t *testing.T) {
	tests := []struct {
		give string
		want float64
	}{
		{"812.00us", 812}, {"1.96ms", 1960}, {"2.01s", 2.01e6}, {"1.50m", 90e6}, {"1.00h", 3600e6},
	}
	for _, tt := range tests {
		got, err := parseWrkDuration(tt.give)
		if err != nil || got < tt.want-1e-6 || got > tt.want+1e-6 {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", tt.give, got, err, tt.want)
		}
	}
	for _, give := range []string{"", "12", "1.0ns", "msms", "-"} {
		if _, err := parseWrkDuration(give); err == nil {
			t.Errorf("parseWrkDuration(%q): want an error", give)
		}
	}
}

func TestParseStraceSummary(t *testing.T) {
	out := `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 45.12    0.123456          12     10000           write
 20.00    0.050000           5     30000       300 read
  1.00    0.001000           1        10           epoll_wait
------ ----------- ----------- --------- --------- ----------------
100.00    0.273456                 40010       300 total
`
	got, err := parseStraceSummary(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []syscallCount{{"read", 30000, 300}, {"write", 10000, 0}, {"epoll_wait", 10, 0}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	r := syscallResult{Requests: 10000, Counts: got}
	if pr := r.perRequest(); pr != 4.001 {
		t.Errorf("perRequest = %v, want 4.001", pr)
	}
	for _, bad := range []string{"", "strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted\n",
		"% time seconds usecs/call calls errors syscall\n 1.0 0.1 1 x write\n"} {
		if _, err := parseStraceSummary(bad); err == nil {
			t.Errorf("parseStraceSummary(%q): want an error", bad)
		}
	}
}
