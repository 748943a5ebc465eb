package query

import (
	"encoding/binary"
	"net/netip"
)

// The stores keep an address as two unsigned 64-bit columns, hi and lo,
// the halves of its 128-bit IPv6 form; an IPv4 address a.b.c.d is stored
// as the IPv4-mapped ::ffff:a.b.c.d (hi = 0, lo = 0x0000ffff00000000 |
// a.b.c.d). Every address then sorts and ranges on (hi, lo).

// AddrToHiLo splits a into the hi and lo columns. IPv4 addresses are
// mapped into IPv6 first; a zone is ignored. The zero Addr gives 0, 0.
func AddrToHiLo(a netip.Addr) (hi, lo uint64) {
	if !a.IsValid() {
		return 0, 0
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// HiLoToAddr joins hi and lo into an address; an IPv4-mapped address
// comes back as plain IPv4.
func HiLoToAddr(hi, lo uint64) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b).Unmap()
}

// PrefixRange returns the first (loHi, loLo) and last (hiHi, hiLo)
// address of p, as hi/lo column values. An IPv4 prefix /n is the
// IPv4-mapped prefix /(96+n). Host bits set in p are ignored. The zero
// (invalid) Prefix gives all zeros.
func PrefixRange(p netip.Prefix) (loHi, loLo, hiHi, hiLo uint64) {
	if !p.IsValid() {
		return 0, 0, 0, 0
	}
	p = p.Masked()
	loHi, loLo = AddrToHiLo(p.Addr())
	host := 128 - mappedBits(p) // host bits
	if host <= 64 {
		return loHi, loLo, loHi, loLo | ones(host)
	}
	return loHi, loLo, loHi | ones(host-64), ^uint64(0)
}

// mappedBits is the prefix length of p in IPv6 (IPv4-mapped) terms.
func mappedBits(p netip.Prefix) int {
	if p.Addr().Is4() {
		return p.Bits() + 96
	}
	return p.Bits()
}

// ones is a mask of the n low bits (n <= 64).
func ones(n int) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return 1<<uint(n) - 1
}
