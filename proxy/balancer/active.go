package balancer

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Active health checks: Run starts one scheduler goroutine and a pool of
// ActiveConfig.Concurrency probe goroutines. The scheduler keeps a due time per handle, hands
// due handles to the pool (waiting when the whole pool is busy), and follows Update through
// Upstream.changed; a probe is an HTTP GET of ActiveConfig.Path on a Transport of its own,
// HTTPS when ActiveConfig.TLS is set.
// Verdicts are stored in the handle, so they survive snapshot swaps.
//
// A handle's next probe is due Interval ± 10% after its last probe ended, not after it began:
// one handle is never probed twice at once, even by a probe that takes its whole Timeout (which
// may be Interval), so its counters have a single writer.

// probeBodyLimit bounds how much of a probe's response body is read (to reuse the connection).
const probeBodyLimit = 64 << 10

// runActive runs the active checks until ctx ends and joins its goroutines.
func (u *Upstream) runActive(ctx context.Context) {
	ac := u.cfg.Active
	tr := &http.Transport{
		Proxy:                 nil, // probes go straight to the endpoint
		DialContext:           (&net.Dialer{Timeout: ac.Timeout, KeepAlive: -1}).DialContext,
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       2 * ac.Interval,
		ResponseHeaderTimeout: ac.Timeout,
		DisableCompression:    true,
	}
	scheme := "http://"
	if ac.TLS != nil {
		// HTTP/1.1, as the endpoints' traffic: a custom TLS configuration turns off the
		// Transport's HTTP/2 unless asked for.
		tr.TLSClientConfig, tr.TLSHandshakeTimeout, scheme = ac.TLS.Clone(), ac.Timeout, "https://"
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	jobs := make(chan *Endpoint)
	finished := make(chan *Endpoint) // each probe's handle, when the probe is over
	var wg sync.WaitGroup
	for range ac.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range jobs {
				u.probe(ctx, client, scheme, e)
				select {
				case finished <- e:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	defer wg.Wait()
	defer close(jobs)

	// due holds when each handle's next probe is due; the zero time while a probe of it runs.
	due := make(map[*Endpoint]time.Time)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var seen *state
	for {
		if s := u.state.Load(); s != seen {
			seen = s
			syncDue(due, s, time.Now(), ac.Interval/10)
		}
		now := time.Now()
		next := now.Add(ac.Interval)
		for e, at := range due {
			switch {
			case at.IsZero(): // being probed
				continue
			case at.After(now):
				next = earliest(next, at)
				continue
			}
			due[e] = time.Time{}
		dispatch:
			for {
				select {
				case jobs <- e:
					break dispatch
				case f := <-finished: // the pool is busy; take what it is done with
					next = earliest(next, reschedule(due, f, ac.Interval))
				case <-ctx.Done():
					return
				}
			}
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-u.changed:
		case f := <-finished:
			reschedule(due, f, ac.Interval)
		case <-timer.C:
		}
	}
}

// reschedule makes e's next probe due one jittered interval from now, when its probe is over,
// and returns that time; the zero time if e has left the upstream meanwhile.
func reschedule(due map[*Endpoint]time.Time, e *Endpoint, interval time.Duration) time.Time {
	if _, ok := due[e]; !ok {
		return time.Time{}
	}
	at := time.Now().Add(jitter(interval))
	due[e] = at
	return at
}

// earliest returns the earlier of a and b, ignoring a zero b.
func earliest(a, b time.Time) time.Time {
	if !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// syncDue makes due hold exactly the handles of s: a new handle is due within spread of now;
// the others keep their time, or their zero time while a probe of theirs runs.
func syncDue(due map[*Endpoint]time.Time, s *state, now time.Time, spread time.Duration) {
	if s == nil {
		return
	}
	live := make(map[*Endpoint]bool, len(s.all))
	for _, e := range s.all {
		live[e] = true
		if _, ok := due[e]; !ok {
			due[e] = now.Add(time.Duration(rand.Int64N(int64(spread) + 1)))
		}
	}
	for e := range due {
		if !live[e] {
			delete(due, e)
		}
	}
}

// jitter returns d ± 10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// probe checks e once, over scheme ("http://" or "https://"), and records the verdict.
func (u *Upstream) probe(ctx context.Context, client *http.Client, scheme string, e *Endpoint) {
	ac := &u.cfg.Active
	err := u.get(ctx, client, scheme+e.Address+ac.Path)
	if ctx.Err() != nil {
		return // shutting down: no verdict
	}
	if err == nil {
		e.probeFail.Store(0)
		if e.probeOK.Add(1) >= int32(ac.HealthyThreshold) && e.status.Load()&statusActiveDown != 0 {
			if old := e.setFlags(0, statusActiveDown); old&statusActiveDown != 0 {
				u.startWarming(e, u.nowNanos())
				u.log.Info("endpoint passed active checks", zap.String("upstream", u.name),
					zap.String("endpoint", e.ID))
				u.change(Change{Kind: ChangeActiveUp, Endpoint: e.ID})
				u.notify()
			}
		}
		return
	}
	e.probeOK.Store(0)
	if e.probeFail.Add(1) >= int32(ac.UnhealthyThreshold) && e.status.Load()&statusActiveDown == 0 {
		if old := e.setFlags(statusActiveDown, 0); old&statusActiveDown == 0 {
			e.warmStart.Store(0)
			u.log.Warn("endpoint failed active checks", zap.String("upstream", u.name),
				zap.String("endpoint", e.ID), zap.String("reason", err.Error()))
			u.change(Change{Kind: ChangeActiveDown, Endpoint: e.ID, Reason: err.Error()})
			u.notify()
		}
	}
}

// errStatus is a probe's response with a status outside the expected range.
type errStatus int

func (s errStatus) Error() string { return "status " + strconv.Itoa(int(s)) }

// get sends one probe to url: nil if it answered with an expected status in time.
func (u *Upstream) get(ctx context.Context, client *http.Client, url string) error {
	ac := &u.cfg.Active
	ctx, cancel := context.WithTimeout(ctx, ac.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe request: %w", err)
	}
	if ac.Host != "" {
		req.Host = ac.Host
	}
	req.Header.Set("User-Agent", "ringside-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, probeBodyLimit))
	if resp.StatusCode < ac.ExpectStatus[0] || resp.StatusCode > ac.ExpectStatus[1] {
		return errStatus(resp.StatusCode)
	}
	return nil
}
