package sidecar

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSnapshotAgeIsStalenessWhileFailing(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newDiscoveryMetrics(reg)
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	age := func(svc string) string {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != "ringside_discovery_snapshot_age_seconds" {
				continue
			}
			for _, mt := range f.GetMetric() {
				if mt.GetLabel()[0].GetValue() == svc {
					return strconv.FormatFloat(mt.GetGauge().GetValue(), 'f', -1, 64)
				}
			}
		}
		return "absent"
	}
	m.Synced("cart", now.Add(-4*time.Minute)) // a blocking query that returned 4 minutes ago
	if got := age("cart"); got != "0" {
		t.Errorf("healthy watch: age %s, want 0", got)
	}
	m.Failed("cart", errors.New("connection refused"))
	now = now.Add(10 * time.Second)
	if got := age("cart"); got != "250" {
		t.Errorf("failing: age %s, want 250 (since the last answer)", got)
	}
	m.Synced("cart", now)
	if got := age("cart"); got != "0" {
		t.Errorf("recovered: age %s, want 0", got)
	}
	m.watching([]string{"search"})
	if got := age("cart"); got != "absent" {
		t.Errorf("unwatched service still reported: %s", got)
	}
}
