package hashkey_test

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/ringside-proxy/ringside/proxy/hashkey"
)

func Example() {
	specs, err := hashkey.ParseSpecs([]string{"header:X-User-ID", "cookie:session", "client_ip"})
	if err != nil {
		panic(err)
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	e, err := hashkey.New(specs, trusted)
	if err != nil {
		panic(err)
	}

	var req fasthttp.Request
	req.SetRequestURI("http://shop/cart")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 4000}, nil)

	key, src, _ := e.Key(&ctx, nil)
	fmt.Println(src, string(key))
	fmt.Println(hashkey.ClientIP(&ctx, trusted))

	req.Header.Set("X-User-ID", "alice")
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 4000}, nil)
	key, src, _ = e.Key(&ctx, nil)
	fmt.Println(src, string(key))
	// Output:
	// client_ip 203.0.113.7
	// 203.0.113.7
	// header alice
}
