package main

import (
	"fmt"
	"hash/crc32"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
	"github.com/dgryski/go-jump"
	"github.com/golang/groupcache/consistenthash"
	stathat "github.com/stathat/consistent"

	"github.com/ringside-proxy/ringside/hashring"
)

// vnodes is the number of points per node given to every ring library, so
// that they are compared at equal memory and equal effort: ringside's
// default.
const vnodes = hashring.DefaultVirtualNodes

// table is a built table of one library: lookup returns the node ID of a
// key, given both as bytes and as a string over the same memory so that
// each library gets the type it takes at no conversion cost.
type table interface {
	lookup(b []byte, s string) string
}

// library builds tables.
type library struct {
	name  string
	kind  string // how a key finds its node
	note  string
	build func(ids []string) (table, error)
}

func libraries() []library {
	return []library{
		{name: "ringside Ring", kind: "ring", note: "160 points/node, two probes, nearest point", build: buildRingside},
		{name: "ringside Maglev", kind: "lookup table", note: "M = 100,003 at 1,000 nodes, 65,537 at 100", build: buildMaglev},
		{name: "groupcache consistenthash", kind: "ring", note: "160 replicas, its default CRC-32", build: buildGroupcache(nil)},
		{name: "groupcache consistenthash + xxhash", kind: "ring", note: "160 replicas, 32 bits of xxhash", build: buildGroupcache(func(b []byte) uint32 { return uint32(xxhash.Sum64(b)) })},
		{name: "buraksezer/consistent v0.10.0", kind: "ring → partition table", note: "7,919 partitions, 160 replicas, load 1.25, xxhash", build: buildBuraksezer},
		{name: "stathat/consistent v1.0.0", kind: "ring", note: "160 replicas, CRC-32", build: buildStathat},
		{name: "dgryski/go-jump", kind: "jump hash", note: "jump hash of xxhash(key); no build, nodes only appended", build: buildJump},
	}
}

type ringsideRing struct{ r *hashring.Ring }

func (t ringsideRing) lookup(b []byte, _ string) string {
	return t.r.Node(t.r.LookupBytes(b)).ID
}

func nodesOf(ids []string) []hashring.Node {
	nodes := make([]hashring.Node, len(ids))
	for i, id := range ids {
		nodes[i] = hashring.Node{ID: id, Weight: 1}
	}
	return nodes
}

func buildRingside(ids []string) (table, error) {
	r, err := hashring.NewRing(nodesOf(ids))
	return ringsideRing{r}, err
}

type ringsideMaglev struct{ m *hashring.Maglev }

func (t ringsideMaglev) lookup(b []byte, _ string) string {
	return t.m.Node(t.m.LookupBytes(b)).ID
}

func buildMaglev(ids []string) (table, error) {
	m, err := hashring.NewMaglev(nodesOf(ids))
	return ringsideMaglev{m}, err
}

type groupcacheTable struct{ m *consistenthash.Map }

func (t groupcacheTable) lookup(_ []byte, s string) string { return t.m.Get(s) }

func buildGroupcache(h consistenthash.Hash) func([]string) (table, error) {
	if h == nil {
		h = crc32.ChecksumIEEE
	}
	return func(ids []string) (table, error) {
		m := consistenthash.New(vnodes, h)
		m.Add(ids...)
		return groupcacheTable{m}, nil
	}
}

type member string

func (m member) String() string { return string(m) }

type xxhasher struct{}

func (xxhasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

type buraksezerTable struct{ c *consistent.Consistent }

func (t buraksezerTable) lookup(b []byte, _ string) string {
	return t.c.LocateKey(b).String()
}

func buildBuraksezer(ids []string) (t table, err error) {
	members := make([]consistent.Member, len(ids))
	for i, id := range ids {
		members[i] = member(id)
	}
	defer func() { // New panics when partitions do not fit the load bound
		if p := recover(); p != nil {
			err = fmt.Errorf("buraksezer/consistent: %v", p)
		}
	}()
	c := consistent.New(members, consistent.Config{
		Hasher:            xxhasher{},
		PartitionCount:    7919,
		ReplicationFactor: vnodes,
		Load:              1.25,
	})
	return buraksezerTable{c}, nil
}

type stathatTable struct{ c *stathat.Consistent }

func (t stathatTable) lookup(_ []byte, s string) string {
	id, _ := t.c.Get(s)
	return id
}

func buildStathat(ids []string) (table, error) {
	c := stathat.New()
	c.NumberOfReplicas = vnodes
	c.Set(ids)
	return stathatTable{c}, nil
}

type jumpTable struct{ ids []string }

func (t jumpTable) lookup(b []byte, _ string) string {
	return t.ids[jump.Hash(xxhash.Sum64(b), len(t.ids))]
}

func buildJump(ids []string) (table, error) {
	return jumpTable{ids: append([]string(nil), ids...)}, nil
}
