package proxy

import (
	"sync/atomic"
	"time"
)

// budget is a retry budget over a sliding window of one-second buckets: a retry is allowed
// while the retries of the window stay below minPerSecond·window + ratio·requests. Counting a
// request is one atomic add; deciding a retry reads every bucket, which only failing requests
// do. Safe for concurrent use; lock-free.
//
// A bucket is recycled by the first caller that sees it carries an old second; a count racing
// with the recycling may be lost, which only makes the budget a little more or less generous
// for that second.
type budget struct {
	ratio   float64
	allowed float64 // minPerSecond × window seconds
	buckets []budgetBucket
}

type budgetBucket struct {
	sec      atomic.Int64 // the Unix second the counts belong to
	requests atomic.Int64
	retries  atomic.Int64
	_        [40]byte // one bucket per cache line: every request writes one
}

func newBudget(c BudgetConfig) *budget {
	n := int(c.Window / time.Second)
	return &budget{ratio: c.Ratio, allowed: c.MinPerSecond * float64(n), buckets: make([]budgetBucket, n)}
}

// bucket returns the bucket of second sec, recycled if it held an older second.
func (b *budget) bucket(sec int64) *budgetBucket {
	bk := &b.buckets[uint64(sec)%uint64(len(b.buckets))]
	if old := bk.sec.Load(); old != sec && bk.sec.CompareAndSwap(old, sec) {
		bk.requests.Store(0)
		bk.retries.Store(0)
	}
	return bk
}

// request counts one request at now.
func (b *budget) request(now time.Time) {
	b.bucket(now.Unix()).requests.Add(1)
}

// tryRetry reports whether a retry at now fits the budget, and counts it if it does.
func (b *budget) tryRetry(now time.Time) bool {
	sec := now.Unix()
	var requests, retries int64
	for i := range b.buckets {
		bk := &b.buckets[i]
		if s := bk.sec.Load(); s <= sec && s > sec-int64(len(b.buckets)) {
			requests += bk.requests.Load()
			retries += bk.retries.Load()
		}
	}
	if float64(retries) >= b.allowed+b.ratio*float64(requests) {
		return false
	}
	b.bucket(sec).retries.Add(1)
	return true
}
