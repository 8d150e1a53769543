package etcd

import (
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ringside-proxy/ringside/discovery"
)

// serviceState is the full state of one service as the source last read it from etcd: every
// usable endpoint by id, and every malformed key. The source publishes a complete snapshot of
// it after each list and after each watch response, never a delta.
//
// It is not safe for concurrent use: the service's watch goroutine owns it.
type serviceState struct {
	service string
	prefix  string // servicePrefix(prefix, service)

	// endpoints are sorted by ID with unique IDs, as in a Snapshot, so that publishing shares
	// them: no map walk, no sort, no copy. The slice is never changed once made (reset and
	// apply make a new one), and the Tags and Meta of each endpoint were freshly decoded and
	// are never modified.
	endpoints []discovery.Endpoint
	// malformed maps each malformed key to the ModRevision of the version that was reported,
	// so a bad entry is logged once per version, not again on every list.
	malformed map[string]int64
	// onMalformed is called once per malformed key version.
	onMalformed func(key string, err error)
}

func newServiceState(prefix, service string, onMalformed func(key string, err error)) *serviceState {
	return &serviceState{
		service:     service,
		prefix:      servicePrefix(prefix, service),
		malformed:   make(map[string]int64),
		onMalformed: onMalformed,
	}
}

// reset replaces the state with the result of a list. Whatever the state held before — from a
// watch that may have missed events — is forgotten, except which malformed versions were
// already reported.
func (st *serviceState) reset(kvs []*mvccpb.KeyValue) {
	reported := st.malformed
	st.endpoints = make([]discovery.Endpoint, 0, len(kvs))
	st.malformed = make(map[string]int64)
	for _, kv := range kvs {
		_, ep, err := st.decode(kv)
		if err != nil {
			st.skip(kv, err, reported)
			continue
		}
		st.endpoints = append(st.endpoints, ep)
	}
	// etcd lists in key order, which is ID order under one prefix; sort only if that ever
	// stops being true. IDs are unique because keys are.
	if !slices.IsSortedFunc(st.endpoints, byID) {
		slices.SortFunc(st.endpoints, byID)
	}
}

// apply applies the events of one watch response, in order: it works out the last state of
// each id the events touch, then rebuilds the endpoints in one merge pass. Changing the
// sorted slice event by event would move its tail once per event, O(N²) for a response that
// removes a whole fleet (leases of many instances expiring together).
func (st *serviceState) apply(events []*clientv3.Event) {
	changed := make(map[string]*discovery.Endpoint, len(events)) // id → last value; nil: gone
	for _, ev := range events {
		switch ev.Type {
		case clientv3.EventTypePut:
			id, ep, err := st.decode(ev.Kv)
			if err != nil {
				// A value that cannot be used removes the endpoint of that id, if any: the
				// snapshot follows what etcd holds now, so that a list and a watch always
				// agree, rather than keeping an older, good value that etcd no longer has.
				if id != "" {
					changed[id] = nil
				}
				st.skip(ev.Kv, err, st.malformed)
				continue
			}
			delete(st.malformed, string(ev.Kv.Key))
			changed[id] = &ep
		case clientv3.EventTypeDelete:
			key := string(ev.Kv.Key)
			delete(st.malformed, key)
			if id, err := endpointID(st.prefix, key); err == nil {
				changed[id] = nil
			}
		}
	}
	st.merge(changed)
}

// merge replaces the endpoints with changed applied (nil removes an id), in one pass over the
// old ones plus a sort of the ids that are new. It makes a new slice: snapshots share the old.
func (st *serviceState) merge(changed map[string]*discovery.Endpoint) {
	var added []discovery.Endpoint
	for id, ep := range changed {
		if _, found := st.find(id); ep != nil && !found {
			added = append(added, *ep)
		}
	}
	slices.SortFunc(added, byID)
	out := make([]discovery.Endpoint, 0, len(st.endpoints)+len(added))
	for _, e := range st.endpoints {
		for len(added) > 0 && added[0].ID < e.ID {
			out = append(out, added[0])
			added = added[1:]
		}
		if ep, ok := changed[e.ID]; ok {
			if ep != nil {
				out = append(out, *ep)
			}
			continue
		}
		out = append(out, e)
	}
	st.endpoints = append(out, added...)
}

// decode returns the endpoint a key holds. On error, id is still set when the key itself was
// fine (only the value is bad).
func (st *serviceState) decode(kv *mvccpb.KeyValue) (id string, ep discovery.Endpoint, err error) {
	id, err = endpointID(st.prefix, string(kv.Key))
	if err != nil {
		return "", discovery.Endpoint{}, err
	}
	ep, err = decodeEntry(id, kv.Value)
	return id, ep, err
}

// skip records a malformed key, and reports it unless this version was reported already.
func (st *serviceState) skip(kv *mvccpb.KeyValue, err error, reported map[string]int64) {
	key := string(kv.Key)
	if rev, ok := reported[key]; !ok || rev != kv.ModRevision {
		st.onMalformed(key, err)
	}
	st.malformed[key] = kv.ModRevision
}

func (st *serviceState) find(id string) (int, bool) {
	return slices.BinarySearchFunc(st.endpoints, id, func(e discovery.Endpoint, id string) int {
		return strings.Compare(e.ID, id)
	})
}

// snapshot returns a snapshot of the state. It shares the endpoint slice: the state never
// changes it in place (reset and apply make a new one), and the endpoints are immutable.
func (st *serviceState) snapshot(revision int64, received time.Time) *discovery.Snapshot {
	return &discovery.Snapshot{
		Service:   st.service,
		Endpoints: st.endpoints[:len(st.endpoints):len(st.endpoints)],
		Revision:  uint64(max(revision, 0)),
		Received:  received,
	}
}

func byID(a, b discovery.Endpoint) int { return strings.Compare(a.ID, b.ID) }
