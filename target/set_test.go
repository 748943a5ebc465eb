package target

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// model is a brute-force set over a small universe, to check Set against.
type model [1024]bool

func (m *model) set(r Range, v bool) {
	for a := r.Lo; a <= r.Hi; a++ {
		m[a] = v
	}
}

func (m *model) equal(t *testing.T, s *Set, what string) {
	t.Helper()
	var got model
	prev := int64(-2)
	for _, r := range s.Ranges() {
		if int64(r.Lo) <= prev+1 {
			t.Fatalf("%s: ranges not sorted, disjoint and non-adjacent: %v", what, s)
		}
		got.set(r, true)
		prev = int64(r.Hi)
	}
	if got != *m {
		t.Fatalf("%s: set %v differs from model", what, s)
	}
}

func randRange(rng *rand.Rand) Range {
	a, b := uint32(rng.IntN(1024)), uint32(rng.IntN(1024))
	if a > b {
		a, b = b, a
	}
	if rng.IntN(2) == 0 { // mostly small ranges, so sets have many pieces
		b = min(a+uint32(rng.IntN(8)), 1023)
	}
	return Range{a, b}
}

func TestSetAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 300; iter++ {
		var m, mo model
		s, o := &Set{}, &Set{}
		for i := 0; i < rng.IntN(20); i++ {
			r := randRange(rng)
			s.Add(r)
			m.set(r, true)
		}
		for i := 0; i < rng.IntN(20); i++ {
			r := randRange(rng)
			o.Add(r)
			mo.set(r, true)
		}
		m.equal(t, s, "add")
		var inter model
		for a := range m {
			inter[a] = m[a] && mo[a]
		}
		inter.equal(t, s.Intersect(o), "intersect")
		for a := uint32(0); a < 1024; a++ {
			if s.Contains(a) != m[a] {
				t.Fatalf("Contains(%d) = %v, model %v", a, !m[a], m[a])
			}
		}
		var size uint64
		for _, v := range m {
			if v {
				size++
			}
		}
		if s.Size() != size {
			t.Fatalf("Size = %d, model %d", s.Size(), size)
		}
		s.Remove(o)
		for a := range m {
			m[a] = m[a] && !mo[a]
		}
		m.equal(t, s, "remove")
	}
}

func TestSetEdges(t *testing.T) {
	all := NewSet(Range{0, ^uint32(0)})
	if all.Size() != 1<<32 {
		t.Fatalf("whole space size %d", all.Size())
	}
	all.Add(Range{5, 10}) // must not wrap around at the top
	if len(all.Ranges()) != 1 {
		t.Fatalf("whole space split: %v", all)
	}
	all.Remove(NewSet(Range{^uint32(0), ^uint32(0)}, Range{0, 0}))
	if got := all.String(); got != "0.0.0.1-255.255.255.254" {
		t.Fatalf("got %s", got)
	}
	s := NewSet(Range{10, 20}, Range{21, 30}) // adjacent ranges merge
	if len(s.Ranges()) != 1 || s.Ranges()[0] != (Range{10, 30}) {
		t.Fatalf("adjacent ranges not merged: %v", s.Ranges())
	}
}

func TestPrefixes(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"10.0.0.0/8", []string{"10.0.0.0/8"}},
		{"10.0.0.1-10.0.0.6", []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}},
		{"0.0.0.0/0", []string{"0.0.0.0/0"}},
		{"255.255.255.255", []string{"255.255.255.255/32"}},
	}
	for _, tt := range tests {
		s, err := ParseTargetList([]string{tt.in}, "test")
		if err != nil {
			t.Fatal(err)
		}
		got := s.Prefixes()
		if len(got) != len(tt.want) {
			t.Fatalf("%s: got %v, want %v", tt.in, got, tt.want)
		}
		for i := range got {
			if got[i] != netip.MustParsePrefix(tt.want[i]) {
				t.Fatalf("%s: got %v, want %v", tt.in, got, tt.want)
			}
		}
	}
}

func TestIndexAgainstWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 200; iter++ {
		s := &Set{}
		for i := 0; i < 1+rng.IntN(40); i++ {
			s.Add(randRange(rng))
		}
		x := NewIndex(s)
		k := uint64(0)
		for _, r := range s.Ranges() {
			for a := r.Lo; a <= r.Hi; a++ {
				if got := x.At(k); got != a {
					t.Fatalf("At(%d) = %d, want %d (set %v)", k, got, a, s)
				}
				if rk, ok := x.Rank(a); !ok || rk != k {
					t.Fatalf("Rank(%d) = %d,%v, want %d", a, rk, ok, k)
				}
				k++
			}
		}
		if x.Size() != k {
			t.Fatalf("Size = %d, want %d", x.Size(), k)
		}
		for a := uint32(0); a < 1100; a++ {
			if _, ok := x.Rank(a); ok != s.Contains(a) {
				t.Fatalf("Rank(%d) ok=%v, Contains=%v", a, ok, s.Contains(a))
			}
		}
	}
}

func TestIndexManyRanges(t *testing.T) {
	// every other address of a /12: a million one-address ranges
	s := &Set{}
	var rs []Range
	for a := uint32(0x0a000000); a < 0x0a100000; a += 2 {
		rs = append(rs, Range{a, a})
	}
	s.AddRanges(rs)
	x := NewIndex(s)
	for _, k := range []uint64{0, 1, 12345, 1<<19 - 1} {
		if got, want := x.At(k), uint32(0x0a000000)+uint32(2*k); got != want {
			t.Fatalf("At(%d) = %x, want %x", k, got, want)
		}
	}
}
