package enrich

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// Address ranges are kept as sorted, non-overlapping intervals searched with
// a binary search: IPv4 as uint32, IPv6 as a 128-bit integer. Both the ASN
// tables and the overrides use them.

// u128 is an IPv6 address as a 128-bit unsigned integer.
type u128 struct{ hi, lo uint64 }

func u128Of(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (a u128) addr() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return netip.AddrFrom16(b)
}

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func (a u128) succ() u128 {
	if a.lo == ^uint64(0) {
		return u128{a.hi + 1, 0}
	}
	return u128{a.hi, a.lo + 1}
}

func (a u128) pred() u128 {
	if a.lo == 0 {
		return u128{a.hi - 1, ^uint64(0)}
	}
	return u128{a.hi, a.lo - 1}
}

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// b4 is an IPv4 address as an integer.
type b4 uint32

func (a b4) less(b b4) bool { return a < b }
func (a b4) succ() b4       { return a + 1 }
func (a b4) pred() b4       { return a - 1 }
func (a b4) cmp(b b4) int   { return cmp.Compare(a, b) }

func b4Of(a netip.Addr) b4 { return b4(binary.BigEndian.Uint32(a.AsSlice())) }

func (a b4) addr() netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}

type bound[K any] interface {
	comparable
	less(K) bool
	succ() K
	pred() K
	cmp(K) int
}

// span is the inclusive range [lo, hi] carrying val.
type span[K bound[K]] struct {
	lo, hi K
	val    uint64
}

// flatten turns ranges that may overlap into sorted, non-overlapping ones.
// Where ranges overlap, the one that comes later in start order wins (for
// equal starts, the later one in rows); the parts of an enclosing range on
// either side of a nested one survive. Adjacent results with the same value
// are merged. rows is sorted in place.
func flatten[K bound[K]](rows []span[K]) []span[K] {
	if !slices.IsSortedFunc(rows, func(a, b span[K]) int { return a.lo.cmp(b.lo) }) {
		slices.SortStableFunc(rows, func(a, b span[K]) int { return a.lo.cmp(b.lo) })
	}
	out := make([]span[K], 0, len(rows))
	emit := func(lo, hi K, val uint64) {
		if hi.less(lo) {
			return
		}
		if n := len(out); n > 0 && out[n-1].val == val && out[n-1].hi.succ() == lo && out[n-1].hi.less(lo) {
			out[n-1].hi = hi
			return
		}
		out = append(out, span[K]{lo, hi, val})
	}
	// stack holds the ranges still open at the current position, each
	// nested in the one below it (strictly smaller hi); an entry's lo is the
	// first position it still has to account for.
	var stack []span[K]
	pop := func() {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		emit(t.lo, t.hi, t.val)
		if n := len(stack); n > 0 {
			stack[n-1].lo = t.hi.succ() // below.hi > t.hi: no overflow
		}
	}
	for _, r := range rows {
		if r.hi.less(r.lo) {
			continue
		}
		for len(stack) > 0 && stack[len(stack)-1].hi.less(r.lo) {
			pop()
		}
		if n := len(stack); n > 0 {
			t := &stack[n-1]
			if t.lo.less(r.lo) {
				emit(t.lo, r.lo.pred(), t.val)
			}
			t.lo = r.lo
			// Open ranges that end inside r are covered by r from here on.
			for len(stack) > 0 && !r.hi.less(stack[len(stack)-1].hi) {
				stack = stack[:len(stack)-1]
			}
		}
		stack = append(stack, r)
	}
	for len(stack) > 0 {
		pop()
	}
	return out
}

// table4 is a flattened IPv4 interval table, one array per column so the
// binary search touches only starts. Large tables also get an index by the
// top 16 bits of the address, which narrows the search to one /16: a lookup
// in the 412k-row ASN table then costs one or two cache misses instead of
// a dozen.
type table4 struct {
	start, end []uint32
	val        []uint64
	// by16[k] is the number of rows that start before k<<16 (k <= 65536);
	// nil for small tables.
	by16 []uint32
}

// index16Min is the size from which a table4 gets the /16 index (256 KiB).
const index16Min = 4096

func newTable4(rows []span[b4]) table4 {
	flat := flatten(rows)
	t := table4{start: make([]uint32, len(flat)), end: make([]uint32, len(flat)), val: make([]uint64, len(flat))}
	for i, s := range flat {
		t.start[i], t.end[i], t.val[i] = uint32(s.lo), uint32(s.hi), s.val
	}
	if len(flat) >= index16Min {
		t.by16 = make([]uint32, 1<<16+1)
		i := 0
		for k := range t.by16 {
			for i < len(t.start) && uint64(t.start[i]) < uint64(k)<<16 {
				i++
			}
			t.by16[k] = uint32(i)
		}
	}
	return t
}

func (t *table4) find(x uint32) (uint64, bool) {
	lo, hi := 0, len(t.start)
	if t.by16 != nil {
		// Rows before by16[k] start before x's /16; rows from by16[k+1]
		// start after it.
		k := x >> 16
		lo, hi = int(t.by16[k]), int(t.by16[k+1])
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.start[m] <= x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 || x > t.end[lo-1] {
		return 0, false
	}
	return t.val[lo-1], true
}

// table6 is a flattened IPv6 interval table.
type table6 struct {
	start, end []u128
	val        []uint64
}

func newTable6(rows []span[u128]) table6 {
	flat := flatten(rows)
	t := table6{make([]u128, len(flat)), make([]u128, len(flat)), make([]uint64, len(flat))}
	for i, s := range flat {
		t.start[i], t.end[i], t.val[i] = s.lo, s.hi, s.val
	}
	return t
}

func (t *table6) find(x u128) (uint64, bool) {
	lo, hi := 0, len(t.start)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s := t.start[m]; s.hi < x.hi || s.hi == x.hi && s.lo <= x.lo {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 || t.end[lo-1].less(x) {
		return 0, false
	}
	return t.val[lo-1], true
}

func (t *table4) len() int { return len(t.start) }
func (t *table6) len() int { return len(t.start) }
