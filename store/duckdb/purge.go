package duckdb

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/vantagehq/vantage/query"
)

// Purge deletes what the scans stored about the addresses of the prefixes
// (current services and their history). Sensor events and profiles stay:
// an opt-out is about being scanned, and erasing them would let anyone
// who holds a range wipe the record of what it did to the sensors.
func (s *DB) Purge(ctx context.Context, prefixes []netip.Prefix) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var total int64
	for _, p := range prefixes {
		p = p.Masked()
		loHi, loLo := query.AddrToHiLo(p.Addr())
		hiHi, hiLo := query.AddrToHiLo(lastAddr(p))
		for _, table := range []string{"services", "service_history"} {
			// (hi, lo) between the bounds, as 128-bit numbers (DuckDB has no
			// BETWEEN over row values)
			res, err := s.w.ExecContext(ctx, `DELETE FROM `+table+` WHERE (ip_hi > ? OR ip_hi = ? AND ip_lo >= ?) AND (ip_hi < ? OR ip_hi = ? AND ip_lo <= ?)`,
				arg(loHi), arg(loHi), arg(loLo), arg(hiHi), arg(hiHi), arg(hiLo))
			if err != nil {
				return total, fmt.Errorf("purge %s from %s: %w", p, table, err)
			}
			n, _ := res.RowsAffected()
			total += n
		}
	}
	return total, nil
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}
