package target

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// The Blocklist must agree with Set.Contains everywhere: at random
// addresses, at every range's edges, and at the /16 boundaries its bitmaps
// are built on.
func TestBlocklistAgainstSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for iter := 0; iter < 300; iter++ {
		s := &Set{}
		n := rng.IntN(indexFrom) // a plain binary search
		if iter%2 == 1 {
			n = 2*indexFrom + rng.IntN(300) // the per-block index
		}
		for i := 0; i < n; i++ {
			lo := rng.Uint32()
			var size uint32
			switch rng.IntN(4) {
			case 0:
				size = uint32(rng.IntN(4)) // a few addresses
			case 1:
				size = uint32(rng.IntN(1 << 16)) // within or across a /16
			case 2:
				size = uint32(rng.IntN(1 << 20)) // several /16s
			default:
				lo &^= 0xffff // a /16-aligned run of whole blocks
				size = uint32(1+rng.IntN(3))<<16 - 1
			}
			hi := lo + size
			if hi < lo {
				hi = ^uint32(0)
			}
			s.Add(Range{lo, hi})
		}
		b := NewBlocklist(s)
		if b.Ranges() != len(s.Ranges()) || b.Size() != s.Size() {
			t.Fatalf("Ranges/Size = %d/%d, want %d/%d", b.Ranges(), b.Size(), len(s.Ranges()), s.Size())
		}
		check := func(a uint32) {
			if got, want := b.Contains(a), s.Contains(a); got != want {
				t.Fatalf("Contains(%s) = %v, want %v (set %v)", AddrFrom(a), got, want, s)
			}
		}
		for _, r := range s.Ranges() {
			for _, a := range []uint32{r.Lo - 1, r.Lo, r.Lo + 1, r.Hi - 1, r.Hi, r.Hi + 1, r.Lo&^0xffff - 1, r.Lo &^ 0xffff, r.Hi | 0xffff, r.Hi | 0xffff + 1} {
				check(a)
			}
		}
		for i := 0; i < 2000; i++ {
			check(rng.Uint32())
		}
	}
}

func TestBlocklistEdges(t *testing.T) {
	var nilList *Blocklist
	if nilList.Contains(0) || nilList.Ranges() != 0 || nilList.Size() != 0 {
		t.Fatal("a nil Blocklist must exclude nothing")
	}
	empty := NewBlocklist(&Set{})
	for _, a := range []uint32{0, 1, 0xffffffff} {
		if empty.Contains(a) {
			t.Fatalf("empty list contains %d", a)
		}
	}
	all := NewBlocklist(NewSet(Range{0, ^uint32(0)}))
	for _, a := range []uint32{0, 0x7fffffff, 0xffffffff} {
		if !all.Contains(a) {
			t.Fatalf("the whole space does not contain %d", a)
		}
	}
	if all.Size() != 1<<32 {
		t.Fatalf("Size of everything = %d", all.Size())
	}
}

// BenchmarkBlocklistMiss is the common case on the send path: an address
// in a /16 that no excluded range touches (one bitmap test).
func BenchmarkBlocklistMiss(b *testing.B) {
	bl := NewBlocklist(NewSet(RangeOf(mustPrefix("198.19.0.0/17")), RangeOf(mustPrefix("203.0.113.0/24"))))
	benchContains(b, bl, 0x0a000000)
}

// BenchmarkBlocklistTouched searches 100,000 ranges (the most a list may
// hold) for addresses in /16s that excluded ranges touch.
func BenchmarkBlocklistTouched(b *testing.B) {
	s := &Set{}
	var rs []Range
	for i := uint32(0); i < 100_000; i++ {
		lo := 0x0a000000 + i*64 // 16 of every 64 addresses excluded
		rs = append(rs, Range{lo, lo + 15})
	}
	s.AddRanges(rs)
	benchContains(b, NewBlocklist(s), 0x0a000000)
}

func benchContains(b *testing.B, bl *Blocklist, base uint32) {
	var hits int
	a := base
	for b.Loop() {
		if bl.Contains(a) {
			hits++
		}
		a = a*1664525 + 1013904223 // spread over the space like the cycle does
		a = base | a&0x005fffff
	}
	_ = hits
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
