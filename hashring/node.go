package hashring

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Node is one member of a table: an opaque, unique ID (an endpoint ID such as
// "10.0.0.7:8080") and a weight. A node of weight w receives about w/Σw of the
// keys. Weight must be at least 1.
type Node struct {
	ID     string
	Weight int
}

// Errors returned by the constructors and by [Ring.Add] and [Ring.Remove].
// They are wrapped with the offending node ID or value; test with errors.Is.
var (
	// ErrNoNodes: a table needs at least one node.
	ErrNoNodes = errors.New("hashring: no nodes")
	// ErrDuplicateID: two nodes share an ID, or Add was given an ID that is
	// already a member.
	ErrDuplicateID = errors.New("hashring: duplicate node ID")
	// ErrBadWeight: a node's weight is below 1.
	ErrBadWeight = errors.New("hashring: node weight below 1")
	// ErrNotFound: Remove was given an ID that is not a member.
	ErrNotFound = errors.New("hashring: node not found")
	// ErrTooLarge: the table would exceed a size limit (see [MaxRingNodes],
	// [MaxRingPoints] and [MaxTableSize]).
	ErrTooLarge = errors.New("hashring: table too large")
	// ErrBadOption: an option's value is out of range.
	ErrBadOption = errors.New("hashring: bad option")
)

// sortedNodes validates nodes and returns a sorted copy (by ID), so that a
// table never aliases its caller's slice and depends only on the member set.
func sortedNodes(nodes []Node) ([]Node, error) {
	if len(nodes) == 0 {
		return nil, ErrNoNodes
	}
	out := slices.Clone(nodes)
	for _, n := range out {
		if n.Weight < 1 {
			return nil, fmt.Errorf("node %q weight %d: %w", n.ID, n.Weight, ErrBadWeight)
		}
	}
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	for i := 1; i < len(out); i++ {
		if out[i].ID == out[i-1].ID {
			return nil, fmt.Errorf("node %q: %w", out[i].ID, ErrDuplicateID)
		}
	}
	return out, nil
}

// searchID returns the position of id in nodes (sorted by ID) and whether it
// is there; when it is not, the position is where it would be inserted.
func searchID(nodes []Node, id string) (int, bool) {
	return slices.BinarySearchFunc(nodes, id, func(n Node, id string) int {
		return strings.Compare(n.ID, id)
	})
}

// sumWeights returns Σ weight of nodes, saturating instead of overflowing.
func sumWeights(nodes []Node) int {
	const maxInt = int(^uint(0) >> 1)
	total := 0
	for _, n := range nodes {
		if total > maxInt-n.Weight {
			return maxInt
		}
		total += n.Weight
	}
	return total
}
