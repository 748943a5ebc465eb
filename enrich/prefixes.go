package enrich

import (
	"net/netip"

	"github.com/vantagehq/vantage/target"
)

// ASNPrefixes lists the IPv4 networks the loaded data places in an AS,
// as the fewest CIDR blocks: the overrides' prefixes that set it and the
// ASN database's ranges that carry it, without the database's ranges in
// special-purpose space (Lookup ignores the databases there too). A
// watchlist that names an AS rescans these, not only the hosts already
// seen in it.
func (e *Enricher) ASNPrefixes(asn uint32) []netip.Prefix {
	if e == nil || asn == 0 || e.closed.Load() {
		return nil
	}
	var rs []target.Range
	if e.ov != nil {
		for _, r := range e.ov.rules {
			if r.ASN == asn && r.Prefix.Addr().Is4() {
				rs = append(rs, target.RangeOf(r.Prefix))
			}
		}
	}
	if e.asn != nil {
		t := &e.asn.v4
		for i, v := range t.val {
			if uint32(v>>32) == asn && !isSpecial(target.AddrFrom(t.start[i])) {
				rs = append(rs, target.Range{Lo: t.start[i], Hi: t.end[i]})
			}
		}
	}
	set := target.NewSet(rs...) // one sort and merge
	return set.Prefixes()
}
