package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		give string
		want procStat
	}{
		{
			name: "plain",
			give: "22915 (cat) R 22913 22913 10142 0 -1 4194304 97 0 0 0 7 3 0 0 20 0 1 0 252992 3133440 358 18446744073709551615",
			want: procStat{PID: 22915, Comm: "cat", PPID: 22913, UTime: 7, STime: 3},
		},
		{
			name: "comm with spaces and parentheses",
			give: "77 (nginx: worker (x) ) S 76 76 76 0 -1 4194560 1500 0 0 0 12345 678 0 0 20 0 1 0 100 5000000 900",
			want: procStat{PID: 77, Comm: "nginx: worker (x) ", PPID: 76, UTime: 12345, STime: 678},
		},
		{
			name: "large tick counts",
			give: "1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 18446744073709551610 5 0 0 20 0 1 0 1 1 1",
			want: procStat{PID: 1, Comm: "init", PPID: 0, UTime: 18446744073709551610, STime: 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.give)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("parseStat = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatErrors(t *testing.T) {
	for _, give := range []string{
		"",
		"12 cat R 1",
		"12 (cat) R 1 2 3",                        // too few fields
		"x (cat) R 1 1 1 0 -1 0 0 0 0 0 1 1",      // bad pid
		"12 (cat) R p 1 1 0 -1 0 0 0 0 0 1 1",     // bad ppid
		"12 (cat) R 1 1 1 0 -1 0 0 0 0 0 -1 1",    // negative utime
		"12 (cat) R 1 1 1 0 -1 0 0 0 0 0 1 1.5",   // fractional stime
		"12 )cat( R 1 1 1 0 -1 0 0 0 0 0 1 1 1 1", // ')' before '('
	} {
		if st, err := parseStat(give); err == nil {
			t.Errorf("parseStat(%q) = %+v, want an error", give, st)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add("22915 (cat) R 22913 22913 10142 0 -1 4194304 97 0 0 0 7 3 0 0 20")
	f.Add("77 (a) b) S 76 76 76 0 -1 4194560 1500 0 0 0 12345 678")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := parseStat(s)
		if err == nil && st.PID < 0 && s[0] != '-' {
			t.Errorf("negative pid from %q", s)
		}
	})
}

func TestParseStatSelf(t *testing.T) {
	st, err := readStat("/proc", os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if st.PID != os.Getpid() || st.PPID != os.Getppid() {
		t.Errorf("self = %+v, want pid %d ppid %d", st, os.Getpid(), os.Getppid())
	}
}

func TestDescendants(t *testing.T) {
	stats := []procStat{
		{PID: 1, PPID: 0},
		{PID: 10, PPID: 1, UTime: 1},    // master
		{PID: 11, PPID: 10, UTime: 2},   // worker
		{PID: 12, PPID: 10, UTime: 3},   // worker
		{PID: 13, PPID: 12, UTime: 4},   // grandchild
		{PID: 20, PPID: 1, UTime: 100},  // unrelated
		{PID: 21, PPID: 20, UTime: 100}, // unrelated child
	}
	var pids []int
	for _, s := range descendants(stats, 10) {
		pids = append(pids, s.PID)
	}
	slices.Sort(pids)
	if want := []int{10, 11, 12, 13}; !slices.Equal(pids, want) {
		t.Errorf("descendants(10) = %v, want %v", pids, want)
	}
	if got := descendants(stats, 99); got != nil {
		t.Errorf("descendants of a missing pid = %v, want nil", got)
	}
}

// TestReadTreeCPU builds a fake /proc with a master and a worker.
func TestReadTreeCPU(t *testing.T) {
	root := t.TempDir()
	write := func(pid int, stat, status string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(100, "100 (nginx) S 1 100 100 0 -1 0 0 0 0 0 5 2 0 0 20 0 1 0\n", "Name:\tnginx\nVmHWM:\t    2000 kB\nVmRSS:\t 1500 kB\n")
	write(101, "101 (nginx) S 100 100 100 0 -1 0 0 0 0 0 300 150 0 0 20 0 1 0\n", "Name:\tnginx\nVmHWM:\t    9000 kB\n")
	write(200, "200 (other) S 1 200 200 0 -1 0 0 0 0 0 999 999 0 0 20 0 1 0\n", "VmHWM:\t 1 kB\n")
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil { // non-numeric: skipped
		t.Fatal(err)
	}
	tc, err := readTreeCPU(root, 100)
	if err != nil {
		t.Fatal(err)
	}
	if tc.Ticks != 457 {
		t.Errorf("ticks = %d, want 457", tc.Ticks)
	}
	if tc.UTicks != 305 {
		t.Errorf("user ticks = %d, want 305", tc.UTicks)
	}
	if got := ticksToMicros(tc.Ticks); got != 4.57e6 {
		t.Errorf("µs = %v, want 4.57e6", got)
	}
	rss, err := peakRSS(root, tc.PIDs)
	if err != nil {
		t.Fatal(err)
	}
	if rss != 11000 {
		t.Errorf("peak RSS = %d KiB, want 11000", rss)
	}
	if _, err := readTreeCPU(root, 555); err == nil {
		t.Error("readTreeCPU of a missing process: want an error")
	}
}

func TestParseVmHWM(t *testing.T) {
	tests := []struct {
		give    string
		want    int64
		wantErr bool
	}{
		{give: "Name:\tcat\nVmPeak:\t    3776 kB\nVmHWM:\t    2156 kB\nVmRSS:\t    2156 kB\n", want: 2156},
		{give: "Name:\tkthreadd\nState:\tS\n", wantErr: true}, // kernel threads have no Vm lines
		{give: "VmHWM:\t 12 MB\n", wantErr: true},
		{give: "VmHWM:\t x kB\n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseVmHWM([]byte(tt.give))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseVmHWM(%q) = %d, %v; want %d, error %v", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseProcStatCPU(t *testing.T) {
	got, err := parseProcStatCPU([]byte("cpu  369594 0 79169 42300 4460 0 2880 6294 7 8\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	// busy = user+nice+system+irq+softirq+steal; total adds idle and iowait; guest columns
	// are already inside user and nice.
	want := cpuTotals{Busy: 369594 + 79169 + 2880 + 6294, Total: 369594 + 79169 + 42300 + 4460 + 2880 + 6294}
	if got != want {
		t.Errorf("parseProcStatCPU = %+v, want %+v", got, want)
	}
	if _, err := parseProcStatCPU([]byte("intr 1 2 3\n")); err == nil {
		t.Error("want an error for a file not starting with the cpu line")
	}
}
