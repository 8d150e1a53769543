// Package discovery defines what ringside knows about the instances of a service and how
// registries deliver it.
//
// A Source (Consul, etcd, or a file) watches one or more services and delivers, for each, a
// complete immutable Snapshot every time the set of instances changes — never a delta. The
// proxy builds its routing state from each snapshot off the request path and swaps it in
// atomically. A Registrar puts the local app into the registry and takes it out again.
//
// The sub-packages consul, etcd and file implement Source and Registrar; this package holds
// the types they share and the small pieces every source needs: Dedup (drop a snapshot equal
// to the last one), Pacer (hand snapshots on paced: removals held while a registry back from
// an outage refills, bursts coalesced, equal snapshots dropped), Backoff, Retries and Sleep
// (retry pacing, short while the registry is unreachable), LogLimiter (log a repeating
// registry error once, then with a count), and Observer (how a source reports its health to
// metrics).
package discovery
