package demo

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/vantagehq/vantage/enrich"
)

// The geography gives every source its own country, as the source says,
// and the dark range two countries (so the matrix has two columns).
func TestOverrides(t *testing.T) {
	o, err := enrich.ParseOverrides(bytes.NewReader(Overrides), "demo.overrides")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(Overrides), "FICTION") {
		t.Error("the file must say that its countries are fiction")
	}
	seen := map[string]bool{}
	for _, s := range Sources("/dev/null") {
		info, ok := o.Lookup(s.Addr)
		if !ok || info.Country != s.Country || info.ASN == 0 || info.Org == "" {
			t.Errorf("%s: %+v, want country %s with an ASN and an organisation", s.Addr, info, s.Country)
		}
		if seen[info.Country] {
			t.Errorf("%s: country %s used twice", s.Addr, info.Country)
		}
		seen[info.Country] = true
	}
	dst := map[string]bool{}
	for _, a := range []string{"198.51.100.130", "198.51.100.200", "198.18.1.1", "198.19.1.1", "203.0.113.10"} {
		info, _ := o.Lookup(netip.MustParseAddr(a))
		if info.Country == "" || info.Country == "ZZ" {
			t.Errorf("%s: no demo country: %+v", a, info)
		}
		dst[info.Country] = true
	}
	if len(dst) != 5 {
		t.Errorf("dark halves, farm halves and daemons should be five countries: %v", dst)
	}
}

// Every command of a round sends from its own source, into the dark range.
func TestRoundCommands(t *testing.T) {
	darkNet := netip.MustParsePrefix(Dark)
	for _, s := range Sources("/dev/null") {
		for r := 0; r < 3; r++ {
			for _, c := range s.cmds(s.Addr.String(), r) {
				line := strings.Join(c, " ")
				if !strings.Contains(line, s.Addr.String()) {
					t.Errorf("%s: does not name its source: %s", s.Addr, line)
				}
				targets := 0
				for _, w := range strings.FieldsFunc(line, func(r rune) bool { return strings.ContainsRune(" /:@\"'(),", r) }) {
					if a, err := netip.ParseAddr(w); err == nil && a.Is4() && strings.HasPrefix(w, "198.51.100.") {
						if !darkNet.Contains(a) && w != "198.51.100.1" { // the Log4Shell callback names the lab router
							t.Errorf("%s: target %s is outside the dark range: %s", s.Addr, w, line)
						}
						targets++
					}
				}
				if targets == 0 {
					t.Errorf("%s: no dark target in %s", s.Addr, line)
				}
			}
		}
	}
}
