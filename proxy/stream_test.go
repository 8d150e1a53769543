package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// heapWatch samples the heap in use while it runs and reports the peak above the start.
type heapWatch struct {
	base, peak atomic.Uint64
	stop       chan struct{}
	done       sync.WaitGroup
}

func watchHeap() *heapWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w := &heapWatch{stop: make(chan struct{})}
	w.base.Store(ms.HeapInuse)
	w.peak.Store(ms.HeapInuse)
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > w.peak.Load() {
					w.peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	return w
}

// growth stops the watch and returns the peak heap growth in bytes.
func (w *heapWatch) growth() uint64 {
	close(w.stop)
	w.done.Wait()
	return w.peak.Load() - w.base.Load()
}

func newHTTPClient() (*http.Client, func()) {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, tr.CloseIdleConnections
}

const (
	bigBody       = 100 << 20
	maxHeapGrowth = 24 << 20 // a quarter of the body: buffering it whole cannot pass
)

func TestUpload100MBStreamsWithFlatMemory(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			b := startHTTPBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, err := io.Copy(io.Discard, r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				fmt.Fprint(w, n, " ", r.TransferEncoding)
			}))
			s := newStack(t, stackOpts{}, b)
			client, closeIdle := newHTTPClient()
			defer closeIdle()

			watch := watchHeap()
			req, err := http.NewRequest(http.MethodPut, "http://"+s.addr+"/upload", io.LimitReader(zeros{}, bigBody))
			if err != nil {
				t.Fatal(err)
			}
			if !chunked {
				req.ContentLength = bigBody
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			growth := watch.growth()
			want := strconv.Itoa(bigBody)
			if chunked {
				want += " [chunked]"
			} else {
				want += " []"
			}
			if resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("status %d, endpoint says %q, want %q", resp.StatusCode, body, want)
			}
			t.Logf("heap growth during a %d MiB upload: %.1f MiB", bigBody>>20, float64(growth)/(1<<20))
			if growth > maxHeapGrowth {
				t.Fatalf("heap grew %d MiB during the upload: the body was buffered", growth>>20)
			}
		})
	}
}

func TestDownload100MBStreamsWithFlatMemory(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			b := startHTTPBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !chunked {
					w.Header().Set("Content-Length", strconv.Itoa(bigBody))
				}
				_, _ = io.Copy(w, io.LimitReader(zeros{}, bigBody))
			}))
			s := newStack(t, stackOpts{}, b)
			client, closeIdle := newHTTPClient()
			defer closeIdle()

			watch := watchHeap()
			resp, err := client.Get("http://" + s.addr + "/download")
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			growth := watch.growth()
			if err != nil || n != bigBody || resp.StatusCode != 200 {
				t.Fatalf("status %d, read %d bytes, %v", resp.StatusCode, n, err)
			}
			t.Logf("heap growth during a %d MiB download: %.1f MiB", bigBody>>20, float64(growth)/(1<<20))
			if growth > maxHeapGrowth {
				t.Fatalf("heap grew %d MiB during the download: the body was buffered", growth>>20)
			}
		})
	}
}

// Server-sent events must reach the client one by one, as the endpoint sends them: the
// endpoint sends the next event only after the client has read the previous one.
func TestServerSentEventsArriveIncrementally(t *testing.T) {
	const events = 5
	next := make(chan struct{})
	b := startHTTPBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for i := range events {
			select {
			case <-next:
			case <-time.After(5 * time.Second):
				return // the client never read the previous event
			}
			fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
		}
	}))
	s := newStack(t, stackOpts{}, b)
	client, closeIdle := newHTTPClient()
	defer closeIdle()
	resp, err := client.Get("http://" + s.addr + "/events")
	if err != nil {
		t.Fatal(err) // the header must come before the first event
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	for i := range events {
		next <- struct{}{}
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if want := fmt.Sprintf("data: event %d\n", i); line != want {
			t.Fatalf("got %q, want %q", line, want)
		}
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after the events: %q, %v", rest, err)
	}
}

func TestExpectContinue(t *testing.T) {
	b := startHTTPBackend(t, "a", echoHandler())
	s := newStack(t, stackOpts{}, b)
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("before the body: %q, %v; want 100 Continue", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the empty line
		t.Fatal(err)
	}
	fmt.Fprint(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	e := decodeEcho(t, body)
	if resp.StatusCode != 200 || e.Body != 5 || e.Header.Get("Expect") != "" {
		t.Fatalf("status %d, endpoint got %d bytes and Expect %q", resp.StatusCode, e.Body, e.Header.Get("Expect"))
	}
}

func TestChunkedRequestAndResponse(t *testing.T) {
	b := startHTTPBackend(t, "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.(http.Flusher).Flush() // no Content-Length: the response is chunked
		fmt.Fprintf(w, "%s|%v", body, r.TransferEncoding)
	}))
	s := newStack(t, stackOpts{}, b)
	resp, body := rawExchange(t, s.addr, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: 1\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != "abcdefg|[chunked]" || len(resp.TransferEncoding) == 0 {
		t.Fatalf("status %d body %q te %v", resp.StatusCode, body, resp.TransferEncoding)
	}
}

// A client that stops sending its body mid-way gets 408 once StreamIdleTimeout passes. (The
// first 8 KiB are read by fasthttp itself before the handler runs, under ReadHeaderTimeout.)
func TestStalledUploadTimesOut(t *testing.T) {
	b := startHTTPBackend(t, "a", echoHandler())
	s := newStack(t, stackOpts{cfg: Config{StreamIdleTimeout: 300 * time.Millisecond}}, b)
	start := time.Now()
	out := rawRoundTrip(t, s.addr, "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"+
		strings.Repeat("x", 20<<10), 5*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.1 408") {
		t.Fatalf("got %q, want 408", firstLine(out))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("408 after %v, want about StreamIdleTimeout", d)
	}
}
