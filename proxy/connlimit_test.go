package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Past ServerConfig.MaxConns both engines answer the same 503 and close; a connection that
// closes makes room for the next. The goroutine engine answered fasthttp's own wording, and
// its cap counted only the connections fasthttp served (not the upgraded ones).
func TestMaxConnsAnswersTheSame503OnBothEngines(t *testing.T) {
	b := startBackend(t, "a", okHandler("ok"))
	for _, loop := range loopEngines() {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			s := newStack(t, stackOpts{loop: loop, scfg: ServerConfig{MaxConns: 2}}, b)
			var open [2]func()
			for i := range open {
				c, br := rvDial(t, s.addr)
				fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
				if _, body, err := rvReadResponse(br, "GET"); err != nil || body != "ok" {
					t.Fatalf("connection %d of 2: %q %v", i, body, err)
				}
				open[i] = func() { c.Close() }
			}
			over, _ := rvDial(t, s.addr)
			got, err := io.ReadAll(over) // answered and closed without a request
			if err != nil || string(got) != string(tooManyConns) {
				t.Fatalf("third connection got %q (%v), want %q", got, err, tooManyConns)
			}
			if st := s.connStats(); st.Open != 2 || st.Refused != 1 || st.Max != 2 {
				t.Fatalf("stats %+v, want 2 open, 1 refused, max 2", st)
			}
			open[0]()
			deadline := time.Now().Add(2 * time.Second)
			for s.connStats().Open != 1 {
				if time.Now().After(deadline) {
					t.Fatalf("a closed connection is still counted: %+v", s.connStats())
				}
				time.Sleep(10 * time.Millisecond)
			}
			c, br := rvDial(t, s.addr)
			fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if _, body, err := rvReadResponse(br, "GET"); err != nil || body != "ok" {
				t.Fatalf("a connection after one closed: %q %v", body, err)
			}
		})
	}
}

func TestMaxConnsForSizesToFileDescriptorsAndMemory(t *testing.T) {
	tests := []struct {
		name          string
		nofile, bytes uint64
		want          int
	}{
		{"nothing known: the largest", 0, 0, maxDefaultMaxConns},
		{"descriptors: half of what the reserve leaves", 20000, 0, (20000 - fdReserve) / 2},
		{"memory: half of it at a busy connection's cost", 0, 1 << 30, (1 << 30) / 2 / busyConnBytes},
		{"the lower of the two", 1 << 20, 128 << 20, (128 << 20) / 2 / busyConnBytes},
		{"never below the floor", 300, 1 << 20, minDefaultMaxConns},
		{"a limit below the reserve", 100, 0, minDefaultMaxConns},
		{"never above fasthttp's", 1 << 30, 1 << 50, maxDefaultMaxConns},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := maxConnsFor(tt.nofile, tt.bytes); got != tt.want {
				t.Errorf("maxConnsFor(%d, %d) = %d, want %d", tt.nofile, tt.bytes, got, tt.want)
			}
		})
	}
}

// Under TLS (quiet), a connection over the cap is closed without a byte: a plaintext 503
// would reach a client that expects a TLS handshake.
func TestListenerOverTheCapUnderTLSClosesWithoutAnAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, ServerConfig{MaxConns: 1}, true)
	accepted := make(chan net.Conn, 2)
	done := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				done <- err
				return
			}
			accepted <- c
		}
	}()
	first, _ := rvDial(t, l.Addr().String())
	defer first.Close()
	held := <-accepted
	second, _ := rvDial(t, l.Addr().String())
	if got, err := io.ReadAll(second); err != nil || len(got) != 0 {
		t.Errorf("over the cap: read %q (%v), want the connection closed without a byte", got, err)
	}
	if st := l.Stats(); st.Open != 1 || st.Refused != 1 {
		t.Errorf("stats %+v, want 1 open and 1 refused", st)
	}
	_ = held.Close()
	_ = l.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if st := l.Stats(); st.Open != 0 {
		t.Errorf("%d still counted open after their Close", st.Open)
	}
}

// TestAcceptEpisodeEndsOnlyAfterAQuietPeriod: under steady pressure at the descriptor limit,
// an accept that gets through between failures does not end the episode: one warning for it,
// the pause keeps growing, and the recovery is logged once the failures have stopped for
// acceptQuiet.
func TestAcceptEpisodeEndsOnlyAfterAQuietPeriod(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	g := newConnGate(10, zap.New(core))
	now := time.Unix(1000, 0)
	var pauses []time.Duration
	for i := range 5 {
		pauses = append(pauses, g.failed(syscall.EMFILE, now, "l"))
		now = now.Add(10 * time.Millisecond)
		g.accepted(now, "l") // one descriptor freed, one connection through
		now = now.Add(time.Duration(i) * time.Millisecond)
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d log lines during one episode, want the one warning: %v", n, logs.All())
	}
	if pauses[4] <= pauses[0] {
		t.Fatalf("pauses %v: the backoff restarted within the episode", pauses)
	}
	g.accepted(now.Add(acceptQuiet), "l")
	if n := logs.FilterMessage("accepting again after a lack of resources").Len(); n != 1 {
		t.Fatalf("recovery logged %d times after a quiet period, want 1", n)
	}
}
