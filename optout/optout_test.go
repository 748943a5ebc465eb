package optout

import (
	"strings"
	"testing"
)

// FuzzParseCIDRs: whatever a requester types, the ranges that come out
// are masked, not too wide, at most MaxCIDRs, without duplicates; anything
// else is a refusal with a message, never a panic.
func FuzzParseCIDRs(f *testing.F) {
	for _, s := range []string{"198.51.100.0/24", "198.51.100.7", "2001:db8::/48,2001:db8::1", "0.0.0.0/0", "::ffff:1.2.3.0/120", "::ffff:0.0.0.0/90",
		"fe80::1%eth0/64", " 10.0.0.0/8 , 10.0.0.0/8 ", "", "a,b,c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParseCIDRs(strings.Split(s, ","))
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Msg == "" {
				t.Fatalf("%q: %v is not a refusal with a message", s, err)
			}
			return
		}
		if len(ps) == 0 || len(ps) > MaxCIDRs {
			t.Fatalf("%q: %d ranges", s, len(ps))
		}
		seen := map[string]bool{}
		for _, p := range ps {
			if p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("%q: %v", s, p)
			}
			if p.Addr().Is4() && p.Bits() < 8 || p.Addr().Is6() && p.Bits() < 16 {
				t.Fatalf("%q: %v is too wide", s, p)
			}
			if seen[p.String()] {
				t.Fatalf("%q: %v twice", s, p)
			}
			seen[p.String()] = true
		}
	})
}
