package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// reuse drives clients straight at a second_response backend, each reusing its own
// connection after a think time of 0–30 ms, and returns the wrong answers not excused as
// crossed, the crossed ones, and how many connections a clean-reuse check threw away. With
// checkClean each client does what a correct proxy does before reusing a pooled connection:
// it looks whether anything arrived while it sat idle, and if so closes it.
func reuse(t *testing.T, checkClean bool) (wrong, crossedN, dropped int) {
	t.Helper()
	cr := newCrossings(testCrossWindow)
	b, err := startBackend(faultSecondResp, cr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var mu sync.Mutex
	var wrongIDs []string
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			c := &client{addr: b.addr(), deadline: 2 * time.Second}
			defer c.close()
			for seq := range 80 {
				time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
				if checkClean && c.conn != nil && !clean(c) {
					c.close()
					mu.Lock()
					dropped++
					mu.Unlock()
				}
				id := fmt.Sprintf("rid-c-%d-%d", w, seq)
				o := c.do(request{id: id, method: "GET", target: "/fault?len=20", wantStatus: 200, wantLen: 20})
				// Extra bytes read with the answer are the reuser seeing them: it drops the
				// connection (do closes it). Here only another request's answer is wrong.
				if o.label == outWrong && o.reason == wrongExtraBytes {
					mu.Lock()
					dropped++
					mu.Unlock()
				} else if o.label == outWrong {
					mu.Lock()
					wrongIDs = append(wrongIDs, id)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(50 * time.Millisecond) // the backend has read every request
	for _, id := range wrongIDs {
		if cr.crossed(id) {
			crossedN++
		} else {
			wrong++
			if checkClean {
				t.Logf("checking reuser, wrong answer to %s: %s", id, cr.explain(id))
			}
		}
	}
	return wrong, crossedN, dropped
}

// testCrossWindow is the crossing window of the tests: wide, so that a reuser descheduled
// between its check of a pooled connection and its write, on a loaded test machine (six
// builds on two cores), does not fail them.
const testCrossWindow = 25 * time.Millisecond

// The crossing rule must hold a reuser that checks its connections to zero wrong answers,
// and still catch one that does not.
func TestCrossingRuleExcusesOnlyWhatACleanReuserCannotSee(t *testing.T) {
	wrong, crossedN, dropped := reuse(t, true)
	if wrong != 0 {
		t.Errorf("checking reuser: %d wrong answers (%d crossed), want 0", wrong, crossedN)
	}
	if dropped == 0 {
		t.Error("checking reuser: no connection held extra bytes: the backend sent none")
	}
	wrong, crossedN, _ = reuse(t, false)
	if wrong == 0 {
		t.Errorf("unchecked reuser: no wrong answers (%d crossed), want some", crossedN)
	}
	t.Logf("checking reuser dropped %d dirty connections; unchecked reuser: %d wrong, %d crossed", dropped, wrong, crossedN)
}

// clean is the check a proxy makes before it reuses a pooled connection: nothing buffered,
// nothing arrived (a non-blocking peek, as ringside's own check).
func clean(c *client) bool {
	if c.br.Buffered() > 0 {
		return false
	}
	rc, err := c.conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return false
	}
	idle := false
	_ = rc.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = err == syscall.EAGAIN
	})
	return idle
}

// The backend dates a request by the kernel's receive stamp, not by when its goroutine got
// round to looking: a request that waited 60 ms in the socket is dated when it came.
func TestArrivalIsTheKernelReceiveTime(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("receive stamps are Linux's")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stampArrivals(ln.(*net.TCPListener))
	time.Sleep(100 * time.Millisecond) // the kernel's switch flips from a work queue
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sent := time.Now()
	if _, err := cli.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	at, err := arrival(srv)
	if err != nil {
		t.Fatal(err)
	}
	if d := at.Sub(sent); d < -time.Millisecond || d > 30*time.Millisecond {
		t.Errorf("arrival %v after the write, want within 30 ms (the kernel's stamp), not the 60 ms later look", d)
	}
	b := make([]byte, 16)
	if n, _ := io.ReadFull(srv, b); n != 16 {
		t.Errorf("arrival consumed bytes: read %d of 16 after it", n)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr bool
	}{
		{nil, false},
		{[]string{"-engines", "event_loop", "-faults", "reset_mid_body,second_response", "-duration", "1m"}, false},
		{[]string{"-engines", "threads"}, true},
		{[]string{"-faults", "slow_backend"}, true},
		{[]string{"-faults", ","}, true},
		{[]string{"-cross-window", "-1ms"}, true},
		{[]string{"-concurrency", "0"}, true},
		{[]string{"-new-timeouts", "yes"}, true},
		{[]string{"extra"}, true},
	}
	for _, tt := range tests {
		_, _, err := parseFlags(tt.args)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: error %v, want an error: %v", tt.args, err, tt.wantErr)
		}
	}
}
