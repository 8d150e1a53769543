package etcd

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func kv(id, value string, modRev int64) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(entryKey(DefaultPrefix, "cart", id)), Value: []byte(value), ModRevision: modRev}
}

func putEvent(id, value string, modRev int64) *clientv3.Event {
	return &clientv3.Event{Type: clientv3.EventTypePut, Kv: kv(id, value, modRev)}
}

func deleteEvent(id string, modRev int64) *clientv3.Event {
	return &clientv3.Event{Type: clientv3.EventTypeDelete, Kv: kv(id, "", modRev)}
}

// The state keeps its endpoints as a sorted slice changed in place; checked here against a
// plain map over many random puts, bad puts and deletes, in single events and in batches.
func TestServiceStateMatchesAMapModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	st := newServiceState(DefaultPrefix, "cart", func(string, error) {})
	model := map[string]int{} // id → port
	rev := int64(0)
	for step := range 3000 {
		batch := make([]*clientv3.Event, 1+rng.IntN(3))
		for i := range batch {
			rev++
			id := fmt.Sprintf("e%02d", rng.IntN(40))
			switch r := rng.IntN(10); {
			case r < 5:
				port := 1 + rng.IntN(65535)
				batch[i] = putEvent(id, fmt.Sprintf(`{"address":"10.0.0.1","port":%d}`, port), rev)
				model[id] = port
			case r < 7:
				batch[i] = putEvent(id, `{"address":"10.0.0.1","port":0}`, rev) // malformed
				delete(model, id)
			default:
				batch[i] = deleteEvent(id, rev)
				delete(model, id)
			}
		}
		st.apply(batch)
		snap := st.snapshot(rev, time.Time{})
		want := slices.Sorted(maps.Keys(model))
		got := make([]string, len(snap.Endpoints))
		for i, e := range snap.Endpoints {
			got[i] = e.ID
			if e.Address != fmt.Sprintf("10.0.0.1:%d", model[e.ID]) {
				t.Fatalf("step %d: %s has address %s, want port %d", step, e.ID, e.Address, model[e.ID])
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: ids %v, want %v", step, got, want)
		}
	}
}

// A published snapshot is immutable: later changes to the state do not show through it.
func TestServiceStateSnapshotDoesNotAlias(t *testing.T) {
	st := newServiceState(DefaultPrefix, "cart", func(string, error) {})
	st.reset([]*mvccpb.KeyValue{
		kv("a", `{"address":"10.0.0.1","port":1}`, 1),
		kv("b", `{"address":"10.0.0.2","port":1}`, 2),
	})
	snap := st.snapshot(2, time.Time{})
	st.apply([]*clientv3.Event{
		putEvent("a", `{"address":"10.0.0.9","port":9}`, 3),
		putEvent("aa", `{"address":"10.0.0.3","port":1}`, 4),
		deleteEvent("b", 5),
	})
	if len(snap.Endpoints) != 2 || snap.Endpoints[0].Address != "10.0.0.1:1" || snap.Endpoints[1].ID != "b" {
		t.Fatalf("old snapshot changed under its reader: %+v", snap.Endpoints)
	}
}

// A malformed key is reported once per version: not again on a list that finds the same
// version, again when it is rewritten (still bad), and again after it was deleted and comes back.
func TestServiceStateReportsMalformedOncePerVersion(t *testing.T) {
	var reported []string
	st := newServiceState(DefaultPrefix, "cart", func(key string, _ error) { reported = append(reported, key) })
	bad := `{"port":1}`
	k := entryKey(DefaultPrefix, "cart", "x")

	st.reset([]*mvccpb.KeyValue{kv("x", bad, 5)})
	st.reset([]*mvccpb.KeyValue{kv("x", bad, 5)}) // list again, same version
	if len(reported) != 1 {
		t.Fatalf("reported %d times after two lists of one version, want 1", len(reported))
	}
	st.apply([]*clientv3.Event{putEvent("x", bad, 6)})
	if len(reported) != 2 {
		t.Fatalf("reported %d times after a new bad version, want 2", len(reported))
	}
	st.apply([]*clientv3.Event{deleteEvent("x", 7)})
	st.reset([]*mvccpb.KeyValue{kv("x", bad, 6)}) // e.g. a cluster restored from backup
	if len(reported) != 3 {
		t.Fatalf("reported %d times after delete and return, want 3", len(reported))
	}
	for _, r := range reported {
		if r != k {
			t.Fatalf("reported key %q, want %q", r, k)
		}
	}
}

// A list that etcd returns in key order needs no sort; one that somehow is not is sorted.
func TestServiceStateResetSortsByID(t *testing.T) {
	st := newServiceState(DefaultPrefix, "cart", func(string, error) {})
	st.reset([]*mvccpb.KeyValue{
		kv("c", `{"address":"10.0.0.3","port":1}`, 1),
		kv("a", `{"address":"10.0.0.1","port":1}`, 2),
		kv("b", `{"address":"10.0.0.2","port":1}`, 3),
	})
	snap := st.snapshot(3, time.Time{})
	var ids []string
	for _, e := range snap.Endpoints {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Fatalf("ids %v, want [a b c]", ids)
	}
}
