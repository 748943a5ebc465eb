// Package target describes what a scan may touch: sets of IPv4 addresses,
// the parsers for targets, ports and exclusion files, the IANA special-purpose
// ranges that are excluded by default, and the stateless pseudorandom order
// (a cyclic group) in which the allowed (address x port) space is visited,
// split into shards.
//
// Exclusion happens here, where targets are generated: a scan never sees an
// address that the Space does not contain.
package target

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// Range is an inclusive range of IPv4 addresses as integers.
type Range struct{ Lo, Hi uint32 }

// Size is the number of addresses in r.
func (r Range) Size() uint64 { return uint64(r.Hi) - uint64(r.Lo) + 1 }

func (r Range) String() string {
	lo, hi := AddrFrom(r.Lo), AddrFrom(r.Hi)
	if r.Lo == r.Hi {
		return lo.String()
	}
	if p, ok := r.prefix(); ok {
		return p.String()
	}
	return lo.String() + "-" + hi.String()
}

// prefix reports whether r is exactly one CIDR block.
func (r Range) prefix() (netip.Prefix, bool) {
	size := r.Size()
	if size&(size-1) != 0 || uint64(r.Lo)&(size-1) != 0 {
		return netip.Prefix{}, false
	}
	bits := 32
	for s := size; s > 1; s >>= 1 {
		bits--
	}
	return netip.PrefixFrom(AddrFrom(r.Lo), bits), true
}

// RangeOf returns the addresses of an IPv4 prefix.
func RangeOf(p netip.Prefix) Range {
	p = p.Masked()
	lo := AddrTo(p.Addr())
	hostBits := 32 - p.Bits()
	hi := lo | uint32(uint64(1)<<hostBits-1)
	return Range{lo, hi}
}

// AddrTo converts an IPv4 address to an integer (big-endian order).
func AddrTo(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// AddrFrom converts an integer to an IPv4 address.
func AddrFrom(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Set is a set of IPv4 addresses kept as sorted, disjoint, non-adjacent
// ranges. The zero value is the empty set. Methods that change the set keep
// that form, so two equal sets have equal Ranges.
type Set struct {
	r []Range
}

// NewSet returns the union of the given ranges.
func NewSet(rs ...Range) *Set {
	s := &Set{}
	s.AddRanges(rs)
	return s
}

// Ranges returns the ranges of s in ascending order. The slice must not be changed.
func (s *Set) Ranges() []Range { return s.r }

// Clone returns an independent copy of s.
func (s *Set) Clone() *Set { return &Set{r: slices.Clone(s.r)} }

// Size is the number of addresses in s.
func (s *Set) Size() uint64 {
	var n uint64
	for _, r := range s.r {
		n += r.Size()
	}
	return n
}

// Empty reports whether s has no address.
func (s *Set) Empty() bool { return len(s.r) == 0 }

// Add adds one range.
func (s *Set) Add(r Range) { s.AddRanges([]Range{r}) }

// AddPrefix adds an IPv4 prefix.
func (s *Set) AddPrefix(p netip.Prefix) { s.Add(RangeOf(p)) }

// AddSet adds every address of o.
func (s *Set) AddSet(o *Set) { s.AddRanges(o.r) }

// AddRanges adds many ranges at once (one sort, one merge).
func (s *Set) AddRanges(rs []Range) {
	if len(rs) == 0 {
		return
	}
	all := make([]Range, 0, len(s.r)+len(rs))
	all = append(all, s.r...)
	for _, r := range rs {
		if r.Lo > r.Hi {
			r.Lo, r.Hi = r.Hi, r.Lo
		}
		all = append(all, r)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Lo < all[j].Lo })
	out := all[:0]
	for _, r := range all {
		if n := len(out); n > 0 && (r.Lo <= out[n-1].Hi || out[n-1].Hi != ^uint32(0) && r.Lo == out[n-1].Hi+1) {
			if r.Hi > out[n-1].Hi {
				out[n-1].Hi = r.Hi
			}
			continue
		}
		out = append(out, r)
	}
	s.r = slices.Clip(out)
}

// Remove removes every address of o from s.
func (s *Set) Remove(o *Set) {
	if len(s.r) == 0 || len(o.r) == 0 {
		return
	}
	var out []Range
	j := 0
	for _, r := range s.r {
		lo := uint64(r.Lo)
		hi := uint64(r.Hi)
		for j < len(o.r) && uint64(o.r[j].Hi) < lo {
			j++
		}
		for k := j; k < len(o.r) && uint64(o.r[k].Lo) <= hi; k++ {
			x := o.r[k]
			if uint64(x.Lo) > lo {
				out = append(out, Range{uint32(lo), x.Lo - 1})
			}
			lo = uint64(x.Hi) + 1
			if lo > hi {
				break
			}
		}
		if lo <= hi {
			out = append(out, Range{uint32(lo), uint32(hi)})
		}
	}
	s.r = out
}

// Intersect returns the addresses that are in both s and o.
func (s *Set) Intersect(o *Set) *Set {
	var out []Range
	i, j := 0, 0
	for i < len(s.r) && j < len(o.r) {
		a, b := s.r[i], o.r[j]
		lo, hi := max(a.Lo, b.Lo), min(a.Hi, b.Hi)
		if lo <= hi {
			out = append(out, Range{lo, hi})
		}
		if a.Hi < b.Hi {
			i++
		} else {
			j++
		}
	}
	return &Set{r: out}
}

// Contains reports whether a is in s.
func (s *Set) Contains(a uint32) bool {
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].Hi >= a })
	return i < len(s.r) && s.r[i].Lo <= a
}

// ContainsAddr reports whether the IPv4 address a is in s.
func (s *Set) ContainsAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.Is4() && s.Contains(AddrTo(a))
}

// Prefixes returns s as the shortest list of CIDR blocks.
func (s *Set) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range s.r {
		lo := uint64(r.Lo)
		for lo <= uint64(r.Hi) {
			// largest aligned block starting at lo that fits in the range
			size := uint64(1)
			for size < 1<<32 && lo&(size*2-1) == 0 && lo+size*2-1 <= uint64(r.Hi) {
				size *= 2
			}
			p, _ := Range{uint32(lo), uint32(lo + size - 1)}.prefix()
			out = append(out, p)
			lo += size
		}
	}
	return out
}

// String lists the ranges of s, CIDR blocks where a range is one.
func (s *Set) String() string {
	parts := make([]string, len(s.r))
	for i, r := range s.r {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}
