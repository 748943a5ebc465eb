package target

import (
	"testing"
)

func TestSafePrimes(t *testing.T) {
	for _, tt := range []struct{ min, want uint64 }{
		{0, 5}, {2, 5}, {5, 5}, {6, 7}, {8, 11}, {12, 23}, {24, 47}, {1 << 16, 65543},
	} {
		if got := nextSafePrime(tt.min); got != tt.want {
			t.Errorf("nextSafePrime(%d) = %d, want %d", tt.min, got, tt.want)
		}
	}
	// large: 2^32 and 2^48 neighbourhoods, checked by the primality test itself
	for _, m := range []uint64{1 << 32, 3_702_258_432, 1 << 48} {
		p := nextSafePrime(m)
		if p < m || !isPrime(p) || !isPrime((p-1)/2) {
			t.Errorf("nextSafePrime(%d) = %d is not a safe prime above it", m, p)
		}
		if p-m > 1<<20 {
			t.Errorf("nextSafePrime(%d) = %d: gap %d is suspiciously large", m, p, p-m)
		}
	}
	for _, c := range []uint64{561, 1105, 1729, 2465, 3215031751, 3825123056546413051} { // Carmichael and strong pseudoprimes
		if isPrime(c) {
			t.Errorf("isPrime(%d) = true", c)
		}
	}
}

// visit walks every shard of a cycle and returns how often each position came up.
func visit(t *testing.T, n, seed uint64, shards int) []uint8 {
	t.Helper()
	c, err := NewCycle(n, seed)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]uint8, n)
	for i := 0; i < shards; i++ {
		w, err := c.Shard(i, shards)
		if err != nil {
			t.Fatal(err)
		}
		for {
			k, ok := w.Next()
			if !ok {
				break
			}
			if k >= n {
				t.Fatalf("position %d out of [0,%d)", k, n)
			}
			seen[k]++
		}
		if w.Progress() != 1 {
			t.Fatalf("shard %d ended at progress %v", i, w.Progress())
		}
	}
	return seen
}

func TestCycleIsPermutation(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 4, 5, 7, 10, 100, 1000, 65536, 100003} {
		for _, shards := range []int{1, 2, 3, 7, 64} {
			for seed := uint64(0); seed < 3; seed++ {
				for k, c := range visit(t, n, seed, shards) {
					if c != 1 {
						t.Fatalf("n=%d shards=%d seed=%d: position %d visited %d times", n, shards, seed, k, c)
					}
				}
			}
		}
	}
}

func TestCycleSeeds(t *testing.T) {
	first := func(seed uint64) []uint64 {
		c, _ := NewCycle(1<<20, seed)
		w, _ := c.Shard(0, 1)
		var out []uint64
		for i := 0; i < 8; i++ {
			k, _ := w.Next()
			out = append(out, k)
		}
		return out
	}
	a, b, c := first(1), first(1), first(2)
	if !equal(a, b) {
		t.Fatalf("same seed gave different orders: %v %v", a, b)
	}
	if equal(a, c) {
		t.Fatalf("different seeds gave the same order: %v", a)
	}
	// not the identity or a plain stride: consecutive positions are far apart
	near := 0
	for i := 1; i < len(a); i++ {
		d := int64(a[i]) - int64(a[i-1])
		if d > -1000 && d < 1000 {
			near++
		}
	}
	if near > 2 {
		t.Fatalf("order looks sequential: %v", a)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWalkerResume(t *testing.T) {
	c, _ := NewCycle(5000, 9)
	full, _ := c.Shard(1, 3)
	var all []uint64
	for k, ok := full.Next(); ok; k, ok = full.Next() {
		all = append(all, k)
	}
	part, _ := c.Shard(1, 3)
	var head []uint64
	for i := 0; i < 700; i++ {
		k, _ := part.Next()
		head = append(head, k)
	}
	resumed, _ := c.Shard(1, 3)
	resumed.Skip(part.Walked())
	rest := head
	for k, ok := resumed.Next(); ok; k, ok = resumed.Next() {
		rest = append(rest, k)
	}
	if !equal(all, rest) {
		t.Fatalf("resumed walk differs: %d vs %d positions", len(all), len(rest))
	}
}

func TestWalkerSplit(t *testing.T) {
	c, _ := NewCycle(10007, 5)
	whole, _ := c.Shard(1, 4)
	var want []uint64
	for k, ok := whole.Next(); ok; k, ok = whole.Next() {
		want = append(want, k)
	}
	for _, parts := range []int{1, 2, 3, 5} {
		seen := map[uint64]int{}
		for i := 0; i < parts; i++ {
			w, _ := c.Shard(1, 4)
			p := w.Split(i, parts)
			for k, ok := p.Next(); ok; k, ok = p.Next() {
				seen[k]++
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("%d parts yield %d positions, the shard %d", parts, len(seen), len(want))
		}
		for _, k := range want {
			if seen[k] != 1 {
				t.Fatalf("%d parts: position %d yielded %d times", parts, k, seen[k])
			}
		}
	}
}

func TestShardErrors(t *testing.T) {
	c, _ := NewCycle(10, 1)
	for _, tt := range [][2]int{{-1, 2}, {2, 2}, {0, 0}} {
		if _, err := c.Shard(tt[0], tt[1]); err == nil {
			t.Errorf("Shard(%d,%d) accepted", tt[0], tt[1])
		}
	}
	if _, err := NewCycle(0, 1); err == nil {
		t.Error("empty cycle accepted")
	}
}
