package enrich

import "net/netip"

// The databases are not asked about special-purpose addresses that are not
// globally reachable (IANA's IPv4 and IPv6 special-purpose registries, plus
// multicast): their answers there are noise. The pinned country file, for
// one, puts 172.16.0.0/12, 192.168.0.0/16, TEST-NET-2 and TEST-NET-3 in AU
// and 2001:db8::/32 in JP. Overrides still apply to these ranges: that is
// what they are for (internal networks, labs).
var special4, special6 = func() (table4, table6) {
	var rows4 []span[b4]
	var rows6 []span[u128]
	for _, s := range []string{
		"0.0.0.0/8",          // "this network"
		"10.0.0.0/8",         // private-use
		"100.64.0.0/10",      // shared address space (CGNAT)
		"127.0.0.0/8",        // loopback
		"169.254.0.0/16",     // link local
		"172.16.0.0/12",      // private-use
		"192.0.0.0/24",       // IETF protocol assignments
		"192.0.2.0/24",       // documentation (TEST-NET-1)
		"192.168.0.0/16",     // private-use
		"198.18.0.0/15",      // benchmarking
		"198.51.100.0/24",    // documentation (TEST-NET-2)
		"203.0.113.0/24",     // documentation (TEST-NET-3)
		"224.0.0.0/4",        // multicast
		"240.0.0.0/4",        // reserved
		"255.255.255.255/32", // limited broadcast
		"::/128",             // unspecified
		"::1/128",            // loopback
		"64:ff9b:1::/48",     // local-use IPv4/IPv6 translation
		"100::/64",           // discard-only
		"2001:2::/48",        // benchmarking
		"2001:10::/28",       // ORCHID (deprecated)
		"2001:db8::/32",      // documentation
		"3fff::/20",          // documentation
		"5f00::/16",          // segment routing (SRv6) SIDs
		"fc00::/7",           // unique local
		"fe80::/10",          // link local
		"fec0::/10",          // site local (deprecated)
		"ff00::/8",           // multicast
	} {
		p := netip.MustParsePrefix(s)
		first, last := prefixRange(p)
		if p.Addr().Is4() {
			rows4 = append(rows4, span[b4]{b4Of(first), b4Of(last), 1})
		} else {
			rows6 = append(rows6, span[u128]{u128Of(first), u128Of(last), 1})
		}
	}
	return newTable4(rows4), newTable6(rows6)
}()

// isSpecial reports whether ip (unmapped) is in a special-purpose range.
func isSpecial(ip netip.Addr) bool {
	if ip.Is4() {
		_, ok := special4.find(uint32(b4Of(ip)))
		return ok
	}
	_, ok := special6.find(u128Of(ip))
	return ok
}
