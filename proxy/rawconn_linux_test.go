//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// rawPair returns a connected pair on loopback: the accepted side wrapped by WrapListener,
// the dialled side wrapped by wrapConn, as the sidecar and the transport wrap them.
func rawPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := WrapListener(ln)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client = wrapConn(d)
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	for _, c := range []net.Conn{server, client} {
		if _, ok := c.(*rawConn); !ok {
			t.Fatalf("%T: want *rawConn", c)
		}
	}
	return server, client
}

func TestRawConnRoundTrip(t *testing.T) {
	server, client := rawPair(t)
	if n, err := client.Write([]byte("ping")); n != 4 || err != nil {
		t.Fatalf("write = %d, %v", n, err)
	}
	buf := make([]byte, 16)
	n, err := io.ReadAtLeast(server, buf, 4)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read = %q, %v", buf[:n], err)
	}
	if n, err := server.Read(nil); n != 0 || err != nil {
		t.Errorf("zero-length read = %d, %v; want 0, nil", n, err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("read after peer close = %d, %v; want 0, io.EOF", n, err)
	}
}

// A write larger than the socket buffers takes several raw writes with waits for
// writability between them (EAGAIN), and must still deliver every byte in order.
func TestRawConnLargeWrite(t *testing.T) {
	server, client := rawPair(t)
	want := make([]byte, 16<<20)
	if _, err := rand.Read(want); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the sender fill the buffers and wait
		b, _ := io.ReadAll(server)
		got <- b
	}()
	n, err := client.Write(want)
	if n != len(want) || err != nil {
		t.Fatalf("write = %d, %v; want %d, nil", n, err, len(want))
	}
	_ = client.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("received %d bytes, not the %d sent (or not in order)", len(b), len(want))
	}
}

func TestRawConnDeadline(t *testing.T) {
	server, _ := rawPair(t)
	if err := server.SetReadDeadline(time.Now().Add(30 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := server.Read(make([]byte, 8))
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("read returned after %v", took)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v (%T); want a net.Error that is a timeout and os.ErrDeadlineExceeded", err, err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Errorf("error %v: want a *net.OpError with Op read", err)
	}
}

// Close from another goroutine wakes a parked read with net.ErrClosed, as on a plain conn.
func TestRawConnCloseWakesRead(t *testing.T) {
	server, _ := rawPair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 8))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = server.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed conn: %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still parked 5s after Close")
	}
	if _, err := server.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write on a closed conn: %v; want net.ErrClosed", err)
	}
}

func TestRawConnWriteToResetPeer(t *testing.T) {
	server, client := rawPair(t)
	// SO_LINGER 0 makes the close send a reset.
	_ = client.(*rawConn).SetLinger(0)
	_ = client.Close()
	time.Sleep(20 * time.Millisecond)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = server.Write(make([]byte, 1024))
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("write to a reset peer: %v; want a *net.OpError with Op write", err)
	}
}

func TestWrapConnKeepsOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := wrapConn(a); got != a {
		t.Errorf("wrapConn(pipe) = %T; want the pipe itself", got)
	}
}

func BenchmarkConnReadWrite(b *testing.B) {
	for _, tt := range []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{
		{"net", func(c net.Conn) net.Conn { return c }},
		{"raw", wrapConn},
	} {
		b.Run(tt.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = io.Copy(c, c) // echo
				_ = c.Close()
			}()
			d, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			c := tt.wrap(d)
			defer c.Close()
			msg, buf := make([]byte, 128), make([]byte, 128)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// net.Conn allows concurrent callers: two writers and two readers at once must neither race
// (go test -race) nor lose or mix bytes within one call.
func TestRawConnConcurrentCallers(t *testing.T) {
	server, client := rawPair(t)
	const per, size = 200, 64
	done := make(chan struct{})
	for w := byte(0); w < 2; w++ {
		go func() {
			msg := bytes.Repeat([]byte{'a' + w}, size)
			for i := 0; i < per; i++ {
				if _, err := client.Write(msg); err != nil {
					t.Error(err)
					break
				}
			}
			done <- struct{}{}
		}()
	}
	counts := make(chan [2]int, 2)
	for r := 0; r < 2; r++ {
		go func() {
			var c [2]int
			buf := make([]byte, 512)
			for {
				n, err := server.Read(buf)
				for _, b := range buf[:n] {
					c[b-'a']++
				}
				if err != nil {
					counts <- c
					return
				}
			}
		}()
	}
	<-done
	<-done
	_ = client.Close()
	a, b := <-counts, <-counts
	if got := [2]int{a[0] + b[0], a[1] + b[1]}; got != [2]int{per * size, per * size} {
		t.Fatalf("bytes received per writer = %v; want %d each", got, per*size)
	}
}

// TestRawConnReadFromAllocatesNothing: a large copy that bufio.Writer hands to its writer's
// ReadFrom (as fasthttp's server does with a streamed response body) goes through a pooled
// buffer, not the embedded TCPConn's io.Copy fallback with a new 32 KiB buffer each time.
func TestRawConnReadFromAllocatesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := wrapConn(d)
	body := bytes.Repeat([]byte("x"), 64<<10)
	var src bytes.Reader
	bw := bufio.NewWriterSize(c, 4096)
	var r io.Reader = struct{ io.Reader }{&src} // no WriterTo: the copy is ReadFrom's
	allocs := testing.AllocsPerRun(20, func() {
		src.Reset(body)
		if _, err := bw.ReadFrom(r); err != nil {
			t.Fatal(err)
		}
	})
	c.Close()
	<-drained
	if allocs > 0.5 {
		t.Fatalf("%.1f allocations per 64 KiB copy, want none", allocs)
	}
}
