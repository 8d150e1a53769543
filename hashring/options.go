package hashring

import "fmt"

// DefaultVirtualNodes is the number of ring points per weight unit when
// [WithVirtualNodes] is not given.
const DefaultVirtualNodes = 160

// Option configures [NewRing] or [NewMaglev]. An option that does not apply to
// a table (the table size for a ring, the virtual nodes for Maglev) is
// ignored by it.
type Option func(*options)

type options struct {
	vnodes    int    // ring points per weight unit
	tableSize uint64 // maglev table size; 0 = default
}

func buildOptions(opts []Option) options {
	o := options{vnodes: DefaultVirtualNodes}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// WithVirtualNodes sets the number of ring points per weight unit (default
// [DefaultVirtualNodes]): a node of weight w gets w×n points. It is a fixed
// number, never scaled with the number of nodes, so that adding a node does
// not move the points of the others. More points balance better and cost
// 8 bytes each. n must be at least 1 ([ErrBadOption]).
func WithVirtualNodes(n int) Option {
	return func(o *options) { o.vnodes = n }
}

// WithTableSize sets the Maglev lookup table size. It must be a prime no
// smaller than the number of nodes and no larger than [MaxTableSize]
// ([ErrBadOption]). The default is the smallest prime >= max(65537, 100×N),
// which keeps each node's share within about 1% of its weight.
func WithTableSize(m uint64) Option {
	return func(o *options) { o.tableSize = m }
}

func (o options) checkRing() error {
	if o.vnodes < 1 {
		return fmt.Errorf("virtual nodes %d: %w", o.vnodes, ErrBadOption)
	}
	return nil
}
