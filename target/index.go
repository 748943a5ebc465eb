package target

import "sort"

// Index finds the k-th address of a set without walking the addresses before
// it: prefix sums over the ranges, a table indexed by the high bits of k that
// narrows the search to a few ranges, and a binary search among those.
type Index struct {
	lo    []uint32 // first address of each range
	cum   []uint64 // cum[i] = addresses before range i; cum[len(lo)] = size
	lut   []uint32 // lut[b] = range holding position b<<shift; one extra entry at the end
	shift uint
	size  uint64
}

// NewIndex indexes the addresses of s. Later changes to s do not affect it.
func NewIndex(s *Set) *Index {
	rs := s.Ranges()
	x := &Index{lo: make([]uint32, len(rs)), cum: make([]uint64, len(rs)+1)}
	for i, r := range rs {
		x.lo[i] = r.Lo
		x.cum[i+1] = x.cum[i] + r.Size()
	}
	x.size = x.cum[len(rs)]
	if len(rs) == 0 {
		return x
	}
	// About two buckets per range keeps the search inside a bucket short even
	// when range sizes vary wildly; the table is capped at 1M entries (4 MiB).
	buckets := 1
	for buckets < 2*len(rs) && buckets < 1<<20 {
		buckets <<= 1
	}
	for x.shift = 0; (x.size-1)>>x.shift >= uint64(buckets); x.shift++ {
	}
	n := int((x.size-1)>>x.shift) + 1
	x.lut = make([]uint32, n+1)
	i := 0
	for b := 0; b < n; b++ {
		k := uint64(b) << x.shift
		for x.cum[i+1] <= k {
			i++
		}
		x.lut[b] = uint32(i)
	}
	x.lut[n] = uint32(len(rs) - 1)
	return x
}

// Size is the number of addresses indexed.
func (x *Index) Size() uint64 { return x.size }

// At returns the k-th address (0-based) in ascending order; k must be below Size.
func (x *Index) At(k uint64) uint32 {
	b := k >> x.shift
	i, j := int(x.lut[b]), int(x.lut[b+1])
	// the range holding k is in [i, j]: find the last one whose cum <= k
	for i < j {
		m := int(uint(i+j+1) >> 1)
		if x.cum[m] <= k {
			i = m
		} else {
			j = m - 1
		}
	}
	return x.lo[i] + uint32(k-x.cum[i])
}

// Rank returns the position of address a, and false when a is not indexed.
func (x *Index) Rank(a uint32) (uint64, bool) {
	i := sort.Search(len(x.lo), func(i int) bool { return x.lo[i] > a }) - 1
	if i < 0 {
		return 0, false
	}
	off := uint64(a - x.lo[i])
	if off >= x.cum[i+1]-x.cum[i] {
		return 0, false
	}
	return x.cum[i] + off, true
}
