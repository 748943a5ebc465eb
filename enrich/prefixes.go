package enrich

import (
	"net/netip"
	"slices"
)

// ASNPrefixes lists the IPv4 networks the loaded data places in an AS:
// the overrides' prefixes that set it and the ASN database's ranges that
// carry it (as CIDRs), sorted, without special-purpose space from the
// database (Lookup ignores the databases there too). A watchlist that names
// an AS rescans these, not only the hosts already seen in it.
func (e *Enricher) ASNPrefixes(asn uint32) []netip.Prefix {
	if e == nil || asn == 0 || e.closed.Load() {
		return nil
	}
	var out []netip.Prefix
	if e.ov != nil {
		for _, r := range e.ov.rules {
			if r.ASN == asn && r.Prefix.Addr().Is4() {
				out = append(out, r.Prefix)
			}
		}
	}
	if e.asn != nil {
		t := &e.asn.v4
		for i, v := range t.val {
			if uint32(v>>32) != asn {
				continue
			}
			for _, p := range rangePrefixes(t.start[i], t.end[i]) {
				if !isSpecial(p.Addr()) {
					out = append(out, p)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

// rangePrefixes splits the inclusive IPv4 range [lo, hi] into the fewest
// CIDR blocks.
func rangePrefixes(lo, hi uint32) []netip.Prefix {
	var out []netip.Prefix
	for x := uint64(lo); x <= uint64(hi); {
		bits := 32
		// grow the block while it stays aligned and inside the range
		for bits > 0 {
			size := uint64(1) << (32 - (bits - 1))
			if x%size != 0 || x+size-1 > uint64(hi) {
				break
			}
			bits--
		}
		a := uint32(x)
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), bits))
		x += uint64(1) << (32 - bits)
	}
	return out
}
