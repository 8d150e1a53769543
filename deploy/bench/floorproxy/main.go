// Command floorproxy is a measuring aid, not a proxy: the least a sticky HTTP/1.1 proxy can do
// in Go, written two ways, to price the I/O model apart from everything else.
//
//	floorproxy -model epoll      one thread, one epoll set, non-blocking raw system calls
//	floorproxy -model goroutine  a goroutine per client connection on Go's netpoller
//
// Both read a request head, hash X-User-ID onto one of the backends (FNV-1a, modulo), write
// the head to a pooled keep-alive connection with one added header, and copy back a response
// that must carry a Content-Length. No validation, no timeouts, no bodies, no retries: fit
// only for wrk against the harness's nginx backends on loopback. Run each in place of ringside
// with the same wrk load and compare CPU per request (utime + stime from /proc) with nginx's:
// the difference between the two models is what a goroutine per connection costs.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

var (
	userHeader = []byte("\r\nx-user-id:")
	clHeader   = []byte("\r\ncontent-length:")
	added      = "X-Forwarded-For: 127.0.0.1\r\n\r\n"
)

func main() {
	model := flag.String("model", "epoll", "epoll or goroutine")
	listen := flag.String("listen", "127.0.0.1:20003", "address to listen on")
	backendList := flag.String("backends", "127.0.0.1:20000,127.0.0.1:20001,127.0.0.1:20002", "backend addresses, comma-separated")
	flag.Parse()
	backends := strings.Split(*backendList, ",")
	var err error
	switch *model {
	case "epoll":
		err = runEpoll(*listen, backends)
	case "goroutine":
		err = runGoroutines(*listen, backends)
	default:
		err = fmt.Errorf("-model %q: want epoll or goroutine", *model)
	}
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

// pick returns the backend index of a request head.
func pick(head []byte, n int) int {
	var key []byte
	if i := indexFold(head, userHeader); i >= 0 {
		v := head[i+len(userHeader):]
		if j := bytes.IndexByte(v, '\r'); j >= 0 {
			key = bytes.TrimSpace(v[:j])
		}
	}
	h := uint64(14695981039346656037)
	for _, c := range key {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return int(h % uint64(n))
}

// contentLength returns the Content-Length of a response head, or -1.
func contentLength(head []byte) int {
	i := indexFold(head, clHeader)
	if i < 0 {
		return -1
	}
	v := head[i+len(clHeader):]
	j := bytes.IndexByte(v, '\r')
	if j < 0 {
		return -1
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(v[:j])))
	if err != nil {
		return -1
	}
	return n
}

// indexFold finds sub (lower case) in s, ignoring the case of s.
func indexFold(s, sub []byte) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		match := true
		for j := range sub {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// The goroutine model.

func runGoroutines(listen string, backends []string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	pools := make([]connPool, len(backends))
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serveConn(c, backends, pools)
	}
}

type connPool struct {
	mu   sync.Mutex
	idle []net.Conn
}

func serveConn(c net.Conn, backends []string, pools []connPool) {
	defer c.Close()
	in, resp, out := make([]byte, 4096), make([]byte, 4096), make([]byte, 0, 4096)
	n := 0
	for {
		m, err := c.Read(in[n:])
		if err != nil {
			return
		}
		n += m
		end := bytes.Index(in[:n], []byte("\r\n\r\n"))
		if end < 0 {
			continue
		}
		bi := pick(in[:end+2], len(backends))
		p := &pools[bi]
		p.mu.Lock()
		var b net.Conn
		if k := len(p.idle); k > 0 {
			b, p.idle = p.idle[k-1], p.idle[:k-1]
		}
		p.mu.Unlock()
		if b == nil {
			if b, err = net.Dial("tcp", backends[bi]); err != nil {
				return
			}
		}
		out = append(append(out[:0], in[:end+2]...), added...)
		n = copy(in, in[end+4:n])
		if _, err := b.Write(out); err != nil {
			b.Close()
			return
		}
		remain := -1
		for remain != 0 {
			r, err := b.Read(resp)
			if err != nil {
				b.Close()
				return
			}
			data := resp[:r]
			if remain < 0 {
				he := bytes.Index(data, []byte("\r\n\r\n"))
				if he < 0 {
					b.Close()
					return // a head split over reads: out of scope
				}
				remain = contentLength(data[:he+2]) - (r - he - 4)
			} else {
				remain -= r
			}
			if _, err := c.Write(data); err != nil {
				b.Close()
				return
			}
		}
		p.mu.Lock()
		p.idle = append(p.idle, b)
		p.mu.Unlock()
	}
}

// The epoll model.

type epConn struct {
	fd      int
	backend int // -1 for a client connection
	buf     []byte
	n       int
	peer    *epConn
	remain  int // a backend's response bytes still to come; -1 before its head
}

func runEpoll(listen string, backends []string) error {
	runtime.LockOSThread()
	ap, err := netip.ParseAddrPort(listen)
	if err != nil {
		return err
	}
	addrs := make([]netip.AddrPort, len(backends))
	for i, b := range backends {
		if addrs[i], err = netip.ParseAddrPort(b); err != nil {
			return err
		}
	}
	ep, err := syscall.EpollCreate1(0)
	if err != nil {
		return err
	}
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return err
	}
	_ = syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(lfd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return err
	}
	if err := syscall.Listen(lfd, 1024); err != nil {
		return err
	}
	add := func(fd int) {
		_ = syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | 1<<31, Fd: int32(fd)})
	}
	add(lfd)
	conns := map[int]*epConn{}
	pools := make([][]*epConn, len(backends))
	out := make([]byte, 0, 4096)
	closeConn := func(c *epConn) {
		_ = syscall.Close(c.fd)
		delete(conns, c.fd)
	}
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(ep, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == lfd {
				for {
					cfd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK)
					if err != nil {
						break
					}
					_ = syscall.SetsockoptInt(cfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
					conns[cfd] = &epConn{fd: cfd, backend: -1, buf: make([]byte, 4096)}
					add(cfd)
				}
				continue
			}
			c := conns[fd]
			if c == nil {
				continue
			}
			if c.backend < 0 {
				out = clientReadable(c, conns, pools, addrs, add, closeConn, out)
			} else {
				backendReadable(c, pools, closeConn)
			}
		}
	}
}

func clientReadable(c *epConn, conns map[int]*epConn, pools [][]*epConn, addrs []netip.AddrPort,
	add func(int), closeConn func(*epConn), out []byte) []byte {
	for c.n < len(c.buf) {
		n, errno := rawRead(c.fd, c.buf[c.n:])
		if errno == syscall.EAGAIN {
			break
		}
		if errno != 0 || n == 0 {
			closeConn(c)
			return out
		}
		c.n += n
	}
	end := bytes.Index(c.buf[:c.n], []byte("\r\n\r\n"))
	if end < 0 {
		return out
	}
	bi := pick(c.buf[:end+2], len(addrs))
	var b *epConn
	if k := len(pools[bi]); k > 0 {
		b, pools[bi] = pools[bi][k-1], pools[bi][:k-1]
	} else {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			closeConn(c)
			return out
		}
		a := addrs[bi]
		if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}); err != nil {
			_ = syscall.Close(fd)
			closeConn(c)
			return out
		}
		_ = syscall.SetNonblock(fd, true)
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		b = &epConn{fd: fd, backend: bi, buf: make([]byte, 4096)}
		conns[fd] = b
		add(fd)
	}
	out = append(append(out[:0], c.buf[:end+2]...), added...)
	c.n = copy(c.buf, c.buf[end+4:c.n])
	b.peer, b.remain = c, -1
	if n, errno := rawWrite(b.fd, out); errno != 0 || n != len(out) {
		closeConn(b)
		closeConn(c)
	}
	return out
}

func backendReadable(b *epConn, pools [][]*epConn, closeConn func(*epConn)) {
	for b.peer != nil {
		n, errno := rawRead(b.fd, b.buf)
		if errno == syscall.EAGAIN {
			return
		}
		if errno != 0 || n == 0 {
			closeConn(b)
			return
		}
		data := b.buf[:n]
		if b.remain < 0 {
			he := bytes.Index(data, []byte("\r\n\r\n"))
			if he < 0 {
				closeConn(b)
				return // a head split over reads: out of scope
			}
			b.remain = contentLength(data[:he+2]) - (n - he - 4)
		} else {
			b.remain -= n
		}
		if w, errno := rawWrite(b.peer.fd, data); errno != 0 || w != n {
			closeConn(b)
			return
		}
		if b.remain == 0 {
			b.peer = nil
			pools[b.backend] = append(pools[b.backend], b)
		}
	}
}

func rawRead(fd int, p []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(r), e
}

func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(r), e
}
