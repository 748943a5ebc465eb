package enrich

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func TestRangePrefixes(t *testing.T) {
	for _, c := range []struct {
		lo, hi string
		want   string
	}{
		{"1.1.1.0", "1.1.1.255", "[1.1.1.0/24]"},
		{"1.1.1.1", "1.1.1.1", "[1.1.1.1/32]"},
		{"10.0.0.1", "10.0.0.6", "[10.0.0.1/32 10.0.0.2/31 10.0.0.4/31 10.0.0.6/32]"},
		{"192.0.2.0", "192.0.3.127", "[192.0.2.0/24 192.0.3.0/25]"},
		{"0.0.0.0", "255.255.255.255", "[0.0.0.0/0]"},
		{"255.255.255.254", "255.255.255.255", "[255.255.255.254/31]"},
		{"128.0.0.0", "255.255.255.255", "[128.0.0.0/1]"},
	} {
		lo, hi := netip.MustParseAddr(c.lo), netip.MustParseAddr(c.hi)
		got := fmt.Sprint(rangePrefixes(uint32(b4Of(lo)), uint32(b4Of(hi))))
		if got != c.want {
			t.Errorf("%s-%s: %s, want %s", c.lo, c.hi, got, c.want)
		}
	}
}

// TestASNPrefixes: an AS's networks come from the ASN file (its ranges as
// CIDRs) and from the overrides that name it; other ASes' ranges and
// special-purpose space from the file stay out.
func TestASNPrefixes(t *testing.T) {
	dir := t.TempDir()
	v4 := write(t, dir, "asn-ipv4.csv", "1.1.1.0,1.1.1.255,64496,A\n"+
		"1.1.2.0,1.1.2.255,64497,B\n"+
		"5.5.5.1,5.5.5.6,64496,A\n"+
		"10.0.0.0,10.255.255.255,64496,A\n")
	ov := write(t, dir, "overrides", "203.0.113.0/24 asn=64496 org=\"Lab\"\n198.51.100.0/24 asn=64497\n")
	e, err := Open(Config{ASNv4CSV: v4, Overrides: ov}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(e.ASNPrefixes(64496))
	want := "[1.1.1.0/24 5.5.5.1/32 5.5.5.2/31 5.5.5.4/31 5.5.5.6/32 203.0.113.0/24]"
	if got != want {
		t.Errorf("AS64496: %s, want %s", got, want)
	}
	if got := e.ASNPrefixes(64497); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("1.1.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}) {
		t.Errorf("AS64497: %v", got)
	}
	if got := e.ASNPrefixes(1); got != nil {
		t.Errorf("an AS nobody names: %v", got)
	}
}
