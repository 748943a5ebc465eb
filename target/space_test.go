package target

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// enumerate walks all shards of a space and marks each (address, port) seen.
func enumerate(t testing.TB, sp *Space, seed uint64, shards int, fn func(addr uint32, port uint16)) {
	c, err := NewCycle(sp.Size(), seed)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < shards; i++ {
		w, err := c.Shard(i, shards)
		if err != nil {
			t.Fatal(err)
		}
		for k, ok := w.Next(); ok; k, ok = w.Next() {
			fn(sp.At(k))
		}
	}
}

// The proof the issue asks for: every target of 198.18.0.0/15 x {22,80,443}
// comes out exactly once, with and without shards.
func TestFarmBitmapExactlyOnce(t *testing.T) {
	farm := netip.MustParsePrefix("198.18.0.0/15")
	pol := NewPolicy()
	if err := pol.AllowReserved(RangeOf(farm)); err != nil {
		t.Fatal(err)
	}
	targets := NewSet(RangeOf(farm))
	allowed, dropped := pol.Apply(targets)
	if len(dropped) != 0 || allowed.Size() != 1<<17 {
		t.Fatalf("allowed %d, dropped %v", allowed.Size(), dropped)
	}
	ports := []uint16{22, 80, 443}
	sp, err := NewSpace(allowed, ports)
	if err != nil {
		t.Fatal(err)
	}
	base := RangeOf(farm).Lo
	for _, shards := range []int{1, 2, 3, 8} {
		seen := make([]uint8, 1<<17*3)
		enumerate(t, sp, 42, shards, func(a uint32, p uint16) {
			if a < base || a-base >= 1<<17 {
				t.Fatalf("address %v outside the farm", AddrFrom(a))
			}
			pi := map[uint16]int{22: 0, 80: 1, 443: 2}[p]
			seen[int(a-base)*3+pi]++
		})
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("shards=%d: %v port %d seen %d times", shards, AddrFrom(base+uint32(i/3)), ports[i%3], c)
			}
		}
	}
}

// Property: whatever the exclusions, no excluded address is ever produced,
// and every allowed target is produced exactly once.
func TestNoExcludedAddressEverProduced(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	base := uint32(0x0b000000) // 11.0.0.0, outside reserved space
	for iter := 0; iter < 100; iter++ {
		pol := NewPolicy()
		size := uint32(1 + rng.IntN(1<<14))
		targets := NewSet(Range{base, base + size - 1})
		for i := 0; i < rng.IntN(30); i++ {
			lo := base + uint32(rng.IntN(int(size)+100)) - 50
			hi := lo + uint32(rng.IntN(300))
			pol.Exclude(Labeled{Range{lo, hi}, "random"})
		}
		// now and then a reserved range among the targets
		if rng.IntN(4) == 0 {
			targets.Add(RangeOf(netip.MustParsePrefix("10.1.2.0/24")))
		}
		excluded := pol.Excluded()
		allowed, _ := pol.Apply(targets)
		if allowed.Empty() {
			continue
		}
		ports := []uint16{80}
		if rng.IntN(2) == 0 {
			ports = []uint16{22, 80, 443, 8080}
		}
		sp, err := NewSpace(allowed, ports)
		if err != nil {
			t.Fatal(err)
		}
		count := map[uint64]int{}
		enumerate(t, sp, rng.Uint64(), 1+rng.IntN(4), func(a uint32, p uint16) {
			if excluded.Contains(a) {
				t.Fatalf("iter %d: excluded address %v produced (%s)", iter, AddrFrom(a), pol.Why(a))
			}
			if !targets.Contains(a) {
				t.Fatalf("iter %d: %v is not a target", iter, AddrFrom(a))
			}
			count[uint64(a)<<16|uint64(p)]++
		})
		if uint64(len(count)) != sp.Size() {
			t.Fatalf("iter %d: %d distinct targets, want %d", iter, len(count), sp.Size())
		}
		for k, c := range count {
			if c != 1 {
				t.Fatalf("iter %d: target %v:%d produced %d times", iter, AddrFrom(uint32(k>>16)), uint16(k), c)
			}
		}
	}
}

func TestSpacePosition(t *testing.T) {
	allowed := NewSet(Range{100, 199}, Range{300, 349})
	sp, err := NewSpace(allowed, []uint16{443, 22, 80, 22})
	if err != nil {
		t.Fatal(err)
	}
	if sp.Size() != 150*3 {
		t.Fatalf("size %d", sp.Size())
	}
	for k := uint64(0); k < sp.Size(); k++ {
		a, p := sp.At(k)
		if got, ok := sp.Position(a, p); !ok || got != k {
			t.Fatalf("Position(At(%d)) = %d, %v", k, got, ok)
		}
	}
	if _, ok := sp.Position(250, 80); ok {
		t.Fatal("position of an address outside the space")
	}
	if _, ok := sp.Position(100, 8080); ok {
		t.Fatal("position of a port outside the space")
	}
}

func TestPolicyDefaults(t *testing.T) {
	pol := NewPolicy()
	ex := pol.Excluded()
	for _, a := range []string{"10.1.2.3", "127.0.0.1", "198.18.5.5", "203.0.113.7", "255.255.255.255", "224.0.0.1", "100.64.0.1", "0.1.2.3"} {
		if !ex.ContainsAddr(netip.MustParseAddr(a)) {
			t.Errorf("%s is not excluded by default", a)
		}
	}
	for _, a := range []string{"11.0.0.1", "100.128.0.1", "198.20.0.1", "223.255.255.255"} {
		if ex.ContainsAddr(netip.MustParseAddr(a)) {
			t.Errorf("%s is excluded by default", a)
		}
	}
	if got := pol.Why(AddrTo(netip.MustParseAddr("198.18.0.1"))); got == "" {
		t.Error("no reason given for a reserved address")
	}
	targets := NewSet(RangeOf(netip.MustParsePrefix("198.16.0.0/12")))
	allowed, dropped := pol.Apply(targets)
	if len(dropped) != 1 || !dropped[0].Reserved || dropped[0].Count != 1<<17 {
		t.Fatalf("dropped %+v", dropped)
	}
	if allowed.Size() != 1<<20-1<<17 {
		t.Fatalf("allowed %d", allowed.Size())
	}
	if err := pol.AllowReserved(RangeOf(netip.MustParsePrefix("11.0.0.0/8"))); err == nil {
		t.Fatal("allowing a range that is not reserved should be reported")
	}
	// an allowed reserved range is still subject to operator exclusions
	pol.AllowReserved(RangeOf(netip.MustParsePrefix("198.18.0.0/15")))
	pol.Exclude(Labeled{RangeOf(netip.MustParsePrefix("198.18.64.0/18")), "test"})
	allowed, _ = pol.Apply(NewSet(RangeOf(netip.MustParsePrefix("198.18.0.0/15"))))
	if allowed.Size() != 1<<17-1<<14 || allowed.ContainsAddr(netip.MustParseAddr("198.18.64.1")) {
		t.Fatalf("allowed %v", allowed)
	}
}

// BenchmarkEnumerate measures target generation: each op produces one
// target of the whole IPv4 space on one port, reserved ranges excluded.
func BenchmarkEnumerate(b *testing.B) {
	pol := NewPolicy()
	allowed, _ := pol.Apply(NewSet(Range{0, ^uint32(0)}))
	sp, err := NewSpace(allowed, []uint16{80})
	if err != nil {
		b.Fatal(err)
	}
	c, _ := NewCycle(sp.Size(), 1)
	w, _ := c.Shard(0, 1)
	var sink uint32
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k, ok := w.Next()
		if !ok {
			w, _ = c.Shard(0, 1)
			continue
		}
		a, _ := sp.At(k)
		sink += a
	}
	b.ReportMetric(float64(sp.Size()), "targets/space")
	_ = sink
}

// BenchmarkEnumerateIPv4Full walks the whole IPv4 space on one port once per
// op (reserved ranges excluded, ~3.7e9 targets): the dry run the issue asks
// for. Run it with -benchtime=1x; it takes about a minute.
func BenchmarkEnumerateIPv4Full(b *testing.B) {
	allowed, _ := NewPolicy().Apply(NewSet(Range{0, ^uint32(0)}))
	sp, err := NewSpace(allowed, []uint16{80})
	if err != nil {
		b.Fatal(err)
	}
	var total uint64
	var sink uint32
	for i := 0; i < b.N; i++ {
		c, _ := NewCycle(sp.Size(), uint64(i))
		w, _ := c.Shard(0, 1)
		n := uint64(0)
		for k, ok := w.Next(); ok; k, ok = w.Next() {
			a, _ := sp.At(k)
			sink ^= a
			n++
		}
		if n != sp.Size() {
			b.Fatalf("produced %d of %d targets", n, sp.Size())
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "targets/s")
	_ = sink
}
