package hashring

import "github.com/cespare/xxhash/v2"

// Hash returns the 64-bit hash of a request key: xxhash64 (XXH64, seed 0).
// Compute it once per request and pass it to Lookup, Walk or LookupBounded.
// Both tables use it for node points too, so ringside instances that share
// a member set agree on every key.
func Hash(key []byte) uint64 { return xxhash.Sum64(key) }

// HashString is Hash for a string key; it does not allocate.
func HashString(key string) uint64 { return xxhash.Sum64String(key) }

// golden is SplitMix64's increment, 2^64/φ.
const golden = 0x9e3779b97f4a7c15

// splitmix64 returns the SplitMix64 output for state x+golden: a bijection
// of x that spreads every bit, used to derive further probes from one key
// hash. splitmix64(x+k×golden) for k = 0, 1, 2, … is the SplitMix64 stream
// seeded with x.
func splitmix64(x uint64) uint64 {
	x += golden
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
