package enrich

import (
	"fmt"
	"testing"
)

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
	for _, c := range []struct {
		asn  uint32
		want string
	}{
		{64496, "[1.1.1.0/24 5.5.5.1/32 5.5.5.2/31 5.5.5.4/31 5.5.5.6/32 203.0.113.0/24]"},
		{64497, "[1.1.2.0/24 198.51.100.0/24]"},
		{1, "[]"}, // an AS nobody names
	} {
		if got := fmt.Sprint(e.ASNPrefixes(c.asn)); got != c.want {
			t.Errorf("AS%d: %s, want %s", c.asn, got, c.want)
		}
	}
}
