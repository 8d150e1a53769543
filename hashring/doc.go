// Package hashring maps request keys to upstream nodes with consistent
// hashing, so that a key sticks to one node and only about 1/N of the keys
// move when one of N nodes comes or goes.
//
// Two tables implement the same [Table] interface:
//
//   - [Ring] is a consistent-hash ring: every node owns Weight × V points
//     (V virtual nodes per weight unit, 160 by default, see
//     [WithVirtualNodes]) placed by xxhash of the node ID and the replica
//     index. A key is hashed to two probe positions and belongs to the owner
//     of the point nearest to either probe (see [Ring] for why). Adding or
//     removing one node moves exactly that node's keys and never a key
//     between two other nodes; [Ring.Add] and [Ring.Remove] derive the new
//     ring copy-on-write.
//   - [Maglev] is the lookup table of Eisenbud et al., "Maglev: A Fast and
//     Reliable Software Network Load Balancer" (NSDI 2016): a prime-sized
//     table filled by the nodes' permutations, weights by turn frequency.
//     It balances better and looks up faster; in exchange a membership change
//     moves a few keys between surviving nodes too.
//
// Both tables are immutable once built and depend only on the member set,
// never on the order in which nodes were listed or added. All their methods
// are safe for concurrent use without locks and none of the lookup methods
// allocates, so a proxy publishes a table behind an atomic pointer and reads
// it on the request path.
//
// # Usage on the request path
//
// Hash the key once with [HashString] or [Hash]. [Table.Lookup] gives the
// key's home node. When the home node may be unusable (ejected by outlier
// detection, over its load cap), walk the key's preference order with
// [Table.Walk] and take the first usable node; a retry continues the same
// [Walker]. Because the preference order of a key depends only on the member
// set, skipping an ejected node moves only that node's keys, spread over the
// other nodes, and they come back when it recovers. Never rebuild a table to
// eject a node: a rebuild is a membership change.
//
// [LookupBounded] implements consistent hashing with bounded loads
// (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded
// Loads", SODA 2018): the first node in the key's preference order whose
// in-flight load is below [BoundedCap].
package hashring
