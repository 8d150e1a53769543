package proxy

import (
	"sync"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name        string
		cfg         BudgetConfig
		requests    int
		wantRetries int
	}{
		{"minimum only", BudgetConfig{Ratio: 0, MinPerSecond: 1, Window: 10 * time.Second}, 0, 10},
		{"ratio only", BudgetConfig{Ratio: 0.2, MinPerSecond: 0, Window: 10 * time.Second}, 100, 20},
		{"both", BudgetConfig{Ratio: 0.5, MinPerSecond: 0.5, Window: 4 * time.Second}, 10, 7},
		{"none", BudgetConfig{Window: 10 * time.Second}, 1000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(tt.cfg)
			for range tt.requests {
				b.request(t0)
			}
			got := 0
			for range 10 * (tt.wantRetries + 1) {
				if b.tryRetry(t0.Add(500 * time.Millisecond)) {
					got++
				}
			}
			if got != tt.wantRetries {
				t.Fatalf("%d retries allowed, want %d", got, tt.wantRetries)
			}
		})
	}
}

// The window slides: requests and retries older than it no longer count.
func TestBudgetWindowSlides(t *testing.T) {
	b := newBudget(BudgetConfig{Ratio: 1, MinPerSecond: 0, Window: 3 * time.Second})
	t0 := time.Unix(1_700_000_000, 0)
	b.request(t0)
	if !b.tryRetry(t0) || b.tryRetry(t0) {
		t.Fatal("one request should allow exactly one retry")
	}
	t1 := t0.Add(2 * time.Second)
	if b.tryRetry(t1) {
		t.Fatal("the spent retry is still in the window")
	}
	b.request(t1)
	if !b.tryRetry(t1) {
		t.Fatal("a new request in the window allows a retry")
	}
	t2 := t0.Add(10 * time.Second)
	if b.tryRetry(t2) {
		t.Fatal("an empty window allows no retry without a minimum")
	}
	b.request(t2)
	if !b.tryRetry(t2) {
		t.Fatal("old retries still count after the window passed")
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := newBudget(BudgetConfig{Ratio: 0.1, MinPerSecond: 0, Window: 10 * time.Second})
	now := time.Unix(1_700_000_000, 0)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				b.request(now)
			}
		}()
	}
	wg.Wait()
	got := 0
	for range 1000 {
		if b.tryRetry(now) {
			got++
		}
	}
	if got != 400 {
		t.Fatalf("%d retries for 4000 requests at 10%%, want 400", got)
	}
}
