package query

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

const maxU64 = ^uint64(0)

func TestAddrHiLo(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		hi, lo uint64
		back   string // HiLoToAddr's answer, if not addr
	}{
		{"0.0.0.0", 0, 0x0000ffff00000000, ""},
		{"0.0.0.1", 0, 0x0000ffff00000001, ""},
		{"203.0.113.7", 0, 0x0000ffffcb007107, ""},
		{"255.255.255.255", 0, 0x0000ffffffffffff, ""},
		{"::ffff:203.0.113.7", 0, 0x0000ffffcb007107, "203.0.113.7"},
		{"::", 0, 0, ""},
		{"::1", 0, 1, ""},
		{"::fffe:ffff:ffff", 0, 0x0000fffeffffffff, ""},
		{"::1:0:0:0", 0, 0x0001000000000000, ""},
		{"0:0:0:1::", 1, 0, ""},
		{"::ffff:ffff:ffff:ffff", 0, maxU64, ""},
		{"2001:db8::1", 0x20010db800000000, 1, ""},
		{"fe80::1%eth0", 0xfe80000000000000, 1, "fe80::1"},
		{"8000::", 0x8000000000000000, 0, ""},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", maxU64, maxU64, ""},
	} {
		a := netip.MustParseAddr(tc.addr)
		hi, lo := AddrToHiLo(a)
		if hi != tc.hi || lo != tc.lo {
			t.Errorf("AddrToHiLo(%s) = %#x, %#x, want %#x, %#x", tc.addr, hi, lo, tc.hi, tc.lo)
		}
		want := tc.back
		if want == "" {
			want = tc.addr
		}
		if got := HiLoToAddr(hi, lo); got.String() != want {
			t.Errorf("HiLoToAddr(%#x, %#x) = %s, want %s", hi, lo, got, want)
		}
	}
	if hi, lo := AddrToHiLo(netip.Addr{}); hi != 0 || lo != 0 {
		t.Errorf("zero Addr: %#x %#x", hi, lo)
	}
	if a := HiLoToAddr(0, 0x0000ffff0a000001); !a.Is4() {
		t.Errorf("IPv4-mapped came back as %s", a)
	}
}

func TestPrefixRange(t *testing.T) {
	for _, tc := range []struct {
		prefix                 string
		loHi, loLo, hiHi, hiLo uint64
	}{
		{"::/0", 0, 0, maxU64, maxU64},
		{"::/1", 0, 0, 0x7fffffffffffffff, maxU64},
		{"8000::/1", 0x8000000000000000, 0, maxU64, maxU64},
		{"2001:db8::/32", 0x20010db800000000, 0, 0x20010db8ffffffff, maxU64},
		{"2001:db8::/63", 0x20010db800000000, 0, 0x20010db800000001, maxU64},
		{"2001:db8::/64", 0x20010db800000000, 0, 0x20010db800000000, maxU64},
		{"2001:db8::/65", 0x20010db800000000, 0, 0x20010db800000000, 0x7fffffffffffffff},
		{"2001:db8::8000:0:0:0/65", 0x20010db800000000, 0x8000000000000000, 0x20010db800000000, maxU64},
		{"2001:db8::1/127", 0x20010db800000000, 0, 0x20010db800000000, 1},
		{"2001:db8::1/128", 0x20010db800000000, 1, 0x20010db800000000, 1},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", maxU64, maxU64, maxU64, maxU64},
		{"0.0.0.0/0", 0, 0x0000ffff00000000, 0, 0x0000ffffffffffff},
		{"128.0.0.0/1", 0, 0x0000ffff80000000, 0, 0x0000ffffffffffff},
		{"10.0.0.0/8", 0, 0x0000ffff0a000000, 0, 0x0000ffff0affffff},
		{"203.0.113.0/24", 0, 0x0000ffffcb007100, 0, 0x0000ffffcb0071ff},
		{"203.0.113.77/24", 0, 0x0000ffffcb007100, 0, 0x0000ffffcb0071ff}, // host bits ignored
		{"203.0.113.6/31", 0, 0x0000ffffcb007106, 0, 0x0000ffffcb007107},
		{"203.0.113.7/32", 0, 0x0000ffffcb007107, 0, 0x0000ffffcb007107},
		{"255.255.255.255/32", 0, 0x0000ffffffffffff, 0, 0x0000ffffffffffff},
		{"::ffff:0.0.0.0/96", 0, 0x0000ffff00000000, 0, 0x0000ffffffffffff},
	} {
		a, b, c, d := PrefixRange(netip.MustParsePrefix(tc.prefix))
		if a != tc.loHi || b != tc.loLo || c != tc.hiHi || d != tc.hiLo {
			t.Errorf("PrefixRange(%s) = %#x %#x %#x %#x, want %#x %#x %#x %#x",
				tc.prefix, a, b, c, d, tc.loHi, tc.loLo, tc.hiHi, tc.hiLo)
		}
	}
	if a, b, c, d := PrefixRange(netip.Prefix{}); a|b|c|d != 0 {
		t.Error("zero Prefix gives a range")
	}
}

// TestPrefixRangeContains checks on random prefixes and addresses that
// an address is in a prefix exactly when its (hi, lo) lies in the range,
// and that the compiled form (hi fixed and lo in a range for /64 and
// longer, else hi in a range) says the same.
func TestPrefixRangeContains(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randAddr := func() netip.Addr {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		if r.IntN(2) == 0 {
			return netip.AddrFrom4([4]byte(b[:4]))
		}
		return netip.AddrFrom16(b)
	}
	for range 20000 {
		base := randAddr()
		p := netip.PrefixFrom(base, r.IntN(base.BitLen()+1)).Masked()
		// an address near the prefix: the base with some low bits changed
		a := base
		if r.IntN(2) == 0 {
			a = randAddr()
		} else {
			b := a.As16()
			b[15-r.IntN(16)] ^= byte(1 << r.IntN(8))
			if a.Is4() {
				a = netip.AddrFrom16(b).Unmap()
			} else {
				a = netip.AddrFrom16(b)
			}
		}
		// In the stores every address is IPv6 (IPv4 mapped): ::/0 holds
		// IPv4 addresses too, and 10.0.0.0/8 is ::ffff:10.0.0.0/104.
		p6 := netip.PrefixFrom(netip.AddrFrom16(p.Addr().As16()), mappedBits(p))
		in := p6.Contains(netip.AddrFrom16(a.As16()))
		if p.Addr().Is4() && a.Is4() && in != p.Contains(a) {
			t.Fatalf("mapping changed %s in %s", a, p)
		}
		hi, lo := AddrToHiLo(a)
		lh, ll, hh, hl := PrefixRange(p)
		tuple := (hi > lh || hi == lh && lo >= ll) && (hi < hh || hi == hh && lo <= hl)
		var compiled bool
		if mappedBits(p) >= 64 {
			compiled = hi == lh && lo >= ll && lo <= hl
		} else {
			compiled = hi >= lh && hi <= hh
		}
		if in != tuple || in != compiled {
			t.Fatalf("%s in %s: Contains %v, tuple range %v, compiled %v", a, p, in, tuple, compiled)
		}
	}
}
