package hashring

import (
	"fmt"
	"slices"
)

// Add returns a new ring with node n added; r is unchanged and stays valid
// for readers that still hold it. The result is identical to NewRing over
// the new member set, with the same options. Only n's keys move: to n.
//
// Add costs one pass over the points (a merge), not a rebuild. It returns
// an error wrapping [ErrBadWeight], [ErrDuplicateID] or [ErrTooLarge].
func (r *Ring) Add(n Node) (*Ring, error) {
	if n.Weight < 1 {
		return nil, fmt.Errorf("node %q weight %d: %w", n.ID, n.Weight, ErrBadWeight)
	}
	k, found := searchID(r.nodes, n.ID)
	if found {
		return nil, fmt.Errorf("node %q: %w", n.ID, ErrDuplicateID)
	}
	nodes := slices.Insert(slices.Clip(slices.Clone(r.nodes)), k, n)
	if _, err := checkRingSize(nodes, r.vnodes); err != nil {
		return nil, err
	}
	added, _ := appendPoints(make([]uint64, 0, n.Weight*r.vnodes), nil, n, r.vnodes, k)
	slices.Sort(added)

	// Merge, renumbering the owners at or after k. Renumbering keeps their
	// relative order, so the old points stay sorted.
	old := r.points
	padded := make([]uint64, len(old)+len(added)+padding)
	points := padded[1 : len(padded)-padding+1]
	i, j := 0, 0
	for o := range points {
		var p uint64
		if i < len(old) {
			p = old[i] + uint64(b2u(int(old[i]&ownerMask) >= k))
		}
		if i < len(old) && (j == len(added) || p < added[j]) {
			i++
		} else {
			p = added[j]
			j++
		}
		points[o] = p
	}
	return r.derive(nodes, padded), nil
}

// Remove returns a new ring without the node with the given ID; r is
// unchanged. The result is identical to NewRing over the new member set.
// Only that node's keys move, each to the next node of its preference order.
//
// Remove costs one pass over the points. It returns an error wrapping
// [ErrNotFound], or [ErrNoNodes] when id is the last node.
func (r *Ring) Remove(id string) (*Ring, error) {
	k, found := searchID(r.nodes, id)
	if !found {
		return nil, fmt.Errorf("node %q: %w", id, ErrNotFound)
	}
	if len(r.nodes) == 1 {
		return nil, fmt.Errorf("remove node %q: %w", id, ErrNoNodes)
	}
	nodes := slices.Delete(slices.Clone(r.nodes), k, k+1)
	padded := make([]uint64, 1, len(r.points)-r.nodes[k].Weight*r.vnodes+padding)
	for _, p := range r.points {
		o := int(p & ownerMask)
		if o == k {
			continue
		}
		padded = append(padded, p-uint64(b2u(o > k)))
	}
	return r.derive(nodes, append(padded, make([]uint64, padding-1)...)), nil
}

// derive returns a ring over nodes and their sorted points, padded (the
// copies not yet set), with r's options.
func (r *Ring) derive(nodes []Node, padded []uint64) *Ring {
	pad(padded)
	points := padded[1 : len(padded)-padding+1]
	index, shift := buildIndex(points)
	return &Ring{
		nodes:       slices.Clip(nodes),
		padded:      padded,
		points:      points,
		index:       index,
		shift:       shift,
		vnodes:      r.vnodes,
		totalWeight: sumWeights(nodes),
	}
}
