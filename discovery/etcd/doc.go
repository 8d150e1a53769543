// Package etcd discovers service instances in etcd (Source) and registers the local app there
// (Registrar).
//
// # Key layout
//
// Each instance is one key, <prefix>/<service>/<endpoint-id>, whose value is a JSON object.
// The prefix defaults to /ringside/services (Config.Prefix):
//
//	/ringside/services/cart/cart-7d9f  {"address": "10.0.0.5", "port": 8080}
//	/ringside/services/cart/cart-x2kq  {"address": "10.0.0.6", "port": 8080, "weight": 2,
//	                                    "tags": ["v2"], "meta": {"version": "2.4.1"},
//	                                    "health": "warning", "zone": "eu-west-1b"}
//
// The fields:
//
//	address  required  IP address or host name, without a port
//	port     required  1..65535
//	weight   optional  ring weight, 1..10000 (MaxWeight); absent or 0 means 1
//	tags     optional  list of strings
//	meta     optional  object of string values
//	health   optional  "passing" (the default), "warning" or "critical"
//	zone     optional  zone or datacenter
//
// Unknown fields are ignored. The endpoint id is the last key segment and identifies the
// instance across updates. A key that does not fit — bad JSON, a missing or bad address, a
// port out of range, an unknown health word, an empty id, an extra path segment such as
// /ringside/services/cart/a/b — is skipped with one log line per key version and one
// Observer.Malformed; the rest of the service is unaffected.
//
// By hand, with etcdctl:
//
//	etcdctl put /ringside/services/cart/cart-7d9f '{"address":"10.0.0.5","port":8080,"weight":2}'
//	etcdctl get --prefix /ringside/services/cart/
//	etcdctl del /ringside/services/cart/cart-7d9f
//
// and, as the Registrar does it, under a lease so that the entry goes away by itself when the
// instance stops renewing it:
//
//	etcdctl lease grant 10                  # lease 694d8b1f2a3c4e5f granted with TTL(10s)
//	etcdctl put --lease=694d8b1f2a3c4e5f /ringside/services/cart/cart-7d9f \
//	    '{"address":"10.0.0.5","port":8080}'
//	etcdctl lease keep-alive 694d8b1f2a3c4e5f
//
// # Source
//
// Source.Watch lists each service (Get of <prefix>/<service>/ with WithPrefix), publishes a
// complete snapshot, then watches from the list's revision under clientv3.WithRequireLeader
// (not the next one: etcd answers no progress request of a watch that starts beyond its
// current revision) and publishes a complete snapshot after each watch response — all events
// of one response in one snapshot. Snapshots go through a discovery.Pacer per service: a
// write that changes nothing (the same value put again) delivers nothing, bursts are
// coalesced (Config.Pacing.Coalesce), and after a list that follows a broken watch, removals
// are held for Config.Pacing.Settle, since etcd may be refilling (restored from a backup,
// instances registering again one by one).
//
// The watch is given up, and the service listed again, whenever it cannot be trusted to have
// delivered every change: the revision was compacted, the watch channel closed, etcd canceled
// the watch or lost its leader, or the watch stayed silent for two Config.ProgressInterval.
// Silence means etcd is unreachable (clientv3 would otherwise reconnect and resume quietly,
// for ever) or came back with less history, restored from an older backup (the resumed watch
// then starts beyond etcd's revision, where etcd says nothing at all). Listing again, rather
// than resuming, is what keeps the snapshot equal to what etcd holds; etcd's own naming
// resolver stays silent after a compaction instead. Failures are retried with backoff (at
// most Backoff.Unreachable, 1s, apart while etcd cannot be reached), reported to Observer.Failed and logged once per 30s per service; meanwhile the last
// snapshot stays in force. Every answer from etcd, progress notifications included, is an
// Observer.Synced, so the time since the last one bounds how stale a snapshot may be.
//
// # Registrar
//
// Registrar.Run writes the entry under a lease of Registration.TTL (default 10s) and keeps the
// lease alive. A process that dies stops renewing it, and etcd deletes the entry one TTL later.
// If the lease is lost while the process lives (etcd unreachable for longer than the TTL, or
// the lease revoked by someone else), Run grants a new lease and writes the entry again.
// Deregister revokes the lease, which deletes the entry at once.
//
// etcd has no health checks. When the registration has an HTTP check, Run probes it every
// Check.Interval and writes the result as the entry's health (2xx passing, 429 warning, else
// critical) and the weight for that health (Weights.Warning while warning). Without a check,
// the entry says passing for as long as the process keeps its lease. Check.DeregisterAfter is
// ignored.
package etcd
