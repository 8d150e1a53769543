package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// wsEcho is a WebSocket endpoint that echoes every message.
func wsEcho() http.Handler {
	return websocket.Handler(func(c *websocket.Conn) {
		for {
			var msg string
			if err := websocket.Message.Receive(c, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(c, msg); err != nil {
				return
			}
		}
	})
}

func dialWS(t testing.TB, addr string) *websocket.Conn {
	t.Helper()
	cfg, err := websocket.NewConfig("ws://"+addr+"/ws", "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dialer = nil
	c, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("websocket dial through the proxy: %v", err)
	}
	return c
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebSocketEcho(t *testing.T) {
	b := startHTTPBackend(t, "a", wsEcho())
	s := newStack(t, stackOpts{metrics: true}, b)
	c := dialWS(t, s.addr)
	for i := range 20 {
		msg := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*1000))
		if err := websocket.Message.Send(c, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := websocket.Message.Receive(c, &got); err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Fatalf("echo %d: got %d bytes, want %d", i, len(got), len(msg))
		}
	}
	if n := s.h.Active(); n != 1 {
		t.Errorf("Active() = %d with one tunnel open", n)
	}
	c.Close()
	waitFor(t, "the tunnel to close", 5*time.Second, func() bool { return s.h.Active() == 0 && s.h.tunnels.Load() == 0 })
}

// An upgrade the endpoint refuses is an ordinary response, and takes no tunnel.
func TestUpgradeRefusedByEndpoint(t *testing.T) {
	b := startHTTPBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no upgrade here", http.StatusUpgradeRequired)
	}))
	s := newStack(t, stackOpts{}, b)
	resp, body := rawExchange(t, s.addr, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(string(body), "no upgrade here") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if n := s.h.tunnels.Load(); n != 0 {
		t.Fatalf("%d tunnels reserved after a refused upgrade", n)
	}
}

func TestMaxTunnels(t *testing.T) {
	b := startHTTPBackend(t, "a", wsEcho())
	s := newStack(t, stackOpts{cfg: Config{MaxTunnels: 1}}, b)
	c := dialWS(t, s.addr)
	defer c.Close()
	resp, _ := rawExchange(t, s.addr, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://a\r\n\r\n")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second upgrade: %d, want 503", resp.StatusCode)
	}
}

// Drain waits for open tunnels and streams, then breaks them off when its context ends.
func TestDrainBreaksOffTunnelsAndStreams(t *testing.T) {
	if testEngine == "loop" {
		t.Skip("an event loop's streams are LoopServer.Shutdown's, not Drain's: TestLoopShutdown")
	}
	release := make(chan struct{})
	sse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux := http.NewServeMux()
	mux.Handle("/ws", wsEcho())
	mux.Handle("/events", sse)
	b := startHTTPBackend(t, "a", mux)
	defer close(release)
	s := newStack(t, stackOpts{}, b)

	c := dialWS(t, s.addr)
	defer c.Close()
	client, closeIdle := newHTTPClient()
	defer closeIdle()
	resp, err := client.Get("http://" + s.addr + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitFor(t, "a stream and a tunnel", 5*time.Second, func() bool { return s.h.Active() == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.h.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Drain took %v after its deadline", d)
	}
	if n := s.h.Active(); n != 0 {
		t.Fatalf("%d exchanges left after Drain broke them off", n)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the event stream ended cleanly; want it broken off")
	}
	var msg string
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := websocket.Message.Receive(c, &msg); err == nil {
		t.Error("the tunnel still delivers after Drain")
	}
	// New upgrades are refused while draining.
	up, _ := rawExchange(t, s.addr, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if up.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade while draining: %d, want 503", up.StatusCode)
	}
}
