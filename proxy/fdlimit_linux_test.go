//go:build linux

package proxy

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// At the file-descriptor limit, a connection waits in the listener's queue and accept fails
// with EMFILE each time it is called. The event loop (a level-triggered listener) called it
// again at once, for ever: one core spent on nothing. fasthttp's Serve returned the error, so
// the goroutine engine stopped accepting for good. Both must pause, count the failures, log
// the episode once, keep serving the connections they have, and accept the waiting connection
// once a descriptor is free. Run in a child process: the lowered limit is process-wide.
func TestAcceptAtFileDescriptorLimitPausesAndRecovers(t *testing.T) {
	b := startBackend(t, "a", okHandler("ok"))
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			rvChild(t, func(t *testing.T) { acceptAtFDLimit(t, b, loop) })
		})
	}
}

func acceptAtFDLimit(t *testing.T, b *testBackend, loop bool) {
	core, logs := observer.New(zapcore.InfoLevel)
	s := newStack(t, stackOpts{loop: loop, scfg: ServerConfig{Logger: zap.New(core)}}, b)
	open, br := rvDial(t, s.addr)
	get := func(what string) {
		t.Helper()
		fmt.Fprint(open, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, body, err := rvReadResponse(br, "GET"); err != nil || resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%s: %v %q %v", what, resp, body, err)
		}
	}
	get("before the limit") // the endpoint connection is pooled from now on

	// Lower the limit to what is open plus a few, take every descriptor left but one, and
	// dial with that one the connection that will wait.
	filler := exhaustFDs(t)
	if len(filler) == 0 {
		t.Fatal("no descriptor left to dial with")
	}
	filler[len(filler)-1].Close()
	filler = filler[:len(filler)-1]
	waiting, wbr := rvDial(t, s.addr)

	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	const window = time.Second
	start := time.Now()
	for time.Since(start) < window {
		get("an open connection, at the limit")
		time.Sleep(100 * time.Millisecond)
	}
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	st := s.connStats()
	// Pauses of 5ms doubling up to 1s: 9 failures in the first second. A loop that spins
	// fails accept hundreds of thousands of times a second.
	if st.AcceptFailures == 0 || st.AcceptFailures > 20 {
		t.Errorf("accept failed %d times in %v at the limit, want 1 to 20 (paused, not spinning)", st.AcceptFailures, window)
	}
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	if cpu > window/2 {
		t.Errorf("the process used %v of CPU in %v at the limit, want less than half (spinning?)", cpu, window)
	}

	for _, f := range filler {
		f.Close()
	}
	fmt.Fprint(waiting, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	_ = waiting.SetReadDeadline(time.Now().Add(3 * time.Second))
	if resp, body, err := rvReadResponse(wbr, "GET"); err != nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("the connection that waited at the limit, once descriptors are free: %v %q %v", resp, body, err)
	}
	get("after the limit")
	// The episode ends with the first accept after acceptQuiet without a failure.
	time.Sleep(acceptQuiet + 100*time.Millisecond)
	later, lbr := rvDial(t, s.addr)
	fmt.Fprint(later, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _, err := rvReadResponse(lbr, "GET"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a new connection after the episode: %v %v", resp, err)
	}
	if n := logs.FilterMessageSnippet("pausing accepts").Len(); n != 1 {
		t.Errorf("%d warnings for one episode at the limit, want 1", n)
	}
	if n := logs.FilterMessageSnippet("accepting again").Len(); n != 1 {
		t.Errorf("%d notices of the end of the episode, want 1", n)
	}
}

// highestFD returns the highest file descriptor open in the process.
func highestFD(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	high := 0
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			high = max(high, n)
		}
	}
	return high
}

// TestHandoverAtFileDescriptorLimitAnswers: at the file-descriptor limit, a request the event
// loop would hand to the goroutine engine (here a POST) cannot be handed over (the duplicate
// descriptor fails); its client gets an answer (503), not a connection closed without a word.
func TestHandoverAtFileDescriptorLimitAnswers(t *testing.T) {
	b := startBackend(t, "a", okHandler("ok"))
	for _, loop := range loopEngines() {
		t.Run(engineName(loop), func(t *testing.T) {
			rvChild(t, func(t *testing.T) {
				s := newStack(t, stackOpts{loop: loop}, b)
				open, br := rvDial(t, s.addr)
				fmt.Fprint(open, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
				if resp, _, err := rvReadResponse(br, "GET"); err != nil || resp.StatusCode != 200 {
					t.Fatalf("before the limit: %v %v", resp, err)
				}
				filler := exhaustFDs(t)
				defer func() {
					for _, f := range filler {
						f.Close()
					}
				}()
				_ = open.SetReadDeadline(time.Now().Add(3 * time.Second))
				fmt.Fprint(open, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
				resp, _, err := rvReadResponse(br, "POST")
				if err != nil {
					t.Fatalf("POST at the fd limit on an open connection: no answer: %v", err)
				}
				if resp.StatusCode != 200 && resp.StatusCode != 503 {
					t.Fatalf("POST at the fd limit: %d, want the endpoint's 200 or the proxy's 503", resp.StatusCode)
				}
			})
		})
	}
}

// exhaustFDs lowers the file-descriptor limit to what is open plus a few, until the test ends,
// and takes every descriptor left: the caller closes the files it returns to free them.
func exhaustFDs(t *testing.T) []*os.File {
	t.Helper()
	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	lim := saved
	lim.Cur = uint64(highestFD(t)) + 8
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved) })
	var filler []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return filler
		}
		filler = append(filler, f)
	}
}
