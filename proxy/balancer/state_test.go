package balancer

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ringside-proxy/ringside/discovery"
)

// Update relies on the discovery.Snapshot contract (sorted by ID, unique IDs) rather than
// sorting again, and refuses a hand-built snapshot that breaks it.
func TestUpdateRefusesUnsortedSnapshot(t *testing.T) {
	tests := []struct {
		name string
		give []discovery.Endpoint
	}{
		{"unsorted", []discovery.Endpoint{ep("b"), ep("a")}},
		{"duplicate ID", []discovery.Endpoint{ep("a"), ep("b"), ep("b")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.ErrorLevel)
			u, err := New("svc", Config{Kind: RoundRobin}, Options{Logger: zap.New(core)})
			if err != nil {
				t.Fatal(err)
			}
			good := snap(ep("x"))
			u.Update(good)
			u.Update(&discovery.Snapshot{Service: "svc", Endpoints: tt.give, Revision: 7, Received: time.Now()})
			if u.Snapshot() != good || len(u.Endpoints()) != 1 {
				t.Errorf("snapshot applied: %d endpoints, want the previous one", len(u.Endpoints()))
			}
			if logs.FilterMessage("snapshot rejected, keeping the previous endpoints").Len() != 1 {
				t.Errorf("refusal not logged")
			}
		})
	}
}
