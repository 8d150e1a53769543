package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/proxy"
	"github.com/ringside-proxy/ringside/proxy/balancer"
)

func Example() {
	// An instance of the "cart" service.
	cart := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "cart of %s, via %s", r.Header.Get("X-User-ID"), r.Header.Get("X-Forwarded-Proto"))
	}))
	defer cart.Close()

	// The upstream: a transport, a balancer wired to it, a handler, a server.
	tr, err := proxy.NewTransport("cart", proxy.TransportConfig{IdleConnTimeout: 100 * time.Millisecond}, nil)
	if err != nil {
		panic(err)
	}
	up, err := balancer.New("cart", balancer.Config{}, tr.BalancerOptions(balancer.Options{}))
	if err != nil {
		panic(err)
	}
	h, err := proxy.New(proxy.Config{Keys: []string{"header:X-User-ID", "client_ip"}}, up, proxy.Options{})
	if err != nil {
		panic(err)
	}
	srv, err := proxy.NewServer(h.ServeFastHTTP, proxy.ServerConfig{})
	if err != nil {
		panic(err)
	}
	srv.MaxIdleWorkerDuration = 100 * time.Millisecond // only so that the example ends tidily
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()

	// What discovery delivers.
	up.Update(discovery.NewSnapshot("cart", 1, []discovery.Endpoint{
		{ID: "cart-1", Address: cart.Listener.Addr().String(), Weight: 1},
	}, time.Now()))

	client := &http.Client{Transport: &http.Transport{}}
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/cart", nil)
	req.Header.Set("X-User-ID", "alice")
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	// Shutdown: the server and the handler's drain, with one deadline.
	client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.ShutdownWithContext(ctx)
	_ = h.Drain(ctx)
	<-done
	up.Update(discovery.NewSnapshot("cart", 2, nil, time.Now())) // closes the pools
	// Output: 200 cart of alice, via http
}
