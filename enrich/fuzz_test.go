package enrich

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func FuzzParseOverrides(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8 country=DE org=\"Example, Inc.\" asn=AS64500 label=corp\n10.1.0.0/16 label=\"lab \\\"one\\\"\" # c\n",
		"::/0 country=ZZ\n2001:db8::/32 country=NL\n2001:db8:1::/48 label=x\n::ffff:192.0.2.0/120 org=y\n",
		"0.0.0.0/0 asn=1\n255.255.255.255 asn=2\n10.0.0.0/8 country=de\n10.0.0.0/8 org=a\n",
		"# only a comment\n\n\t\r\n",
		"10.1.2.3/8 country=DE\n",
		"10.0.0.0/8 org=\"unterminated\n",
		"\ufeff192.0.2.0/24 country=zz label=\"a=b#c\"\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		o, err := ParseOverrides(strings.NewReader(in), "fuzz")
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.File != "fuzz" || se.Line < 1 || se.Line > strings.Count(in, "\n")+1 {
				t.Fatalf("error %v: not a SyntaxError with a plausible line", err)
			}
			return
		}
		rules := o.Rules()
		// Lookup agrees with the definition: at each rule's first and last
		// address (and just outside), the most specific containing rule's
		// fields, then those of enclosing rules.
		for _, r := range rules {
			first, last := prefixRange(r.Prefix)
			probes := []netip.Addr{first, last, first.Prev(), last.Next()}
			for _, a := range probes {
				if !a.IsValid() {
					continue
				}
				want, wantOK := bruteOverride(rules, a)
				got, ok := o.Lookup(a)
				if got != want || ok != wantOK {
					t.Fatalf("%s: got %+v %v, want %+v %v\nrules:\n%v", a, got, ok, want, wantOK, rules)
				}
			}
			if r.Country != "" && countryCode(r.Country) != r.Country || r.Prefix != r.Prefix.Masked() || r.Prefix.Addr().Is4In6() {
				t.Fatalf("rule not normalised: %+v", r)
			}
		}
		// Formatting the rules and parsing them again gives the same rules.
		var b strings.Builder
		for _, r := range rules {
			b.WriteString(r.String() + "\n")
		}
		o2, err := ParseOverrides(strings.NewReader(b.String()), "again")
		if err != nil {
			t.Fatalf("formatted rules do not parse: %v\n%s", err, b.String())
		}
		again := o2.Rules()
		if len(again) != len(rules) {
			t.Fatalf("round trip: %d rules, want %d", len(again), len(rules))
		}
		for i := range rules {
			a, b := rules[i], again[i]
			a.Line, b.Line = 0, 0
			if a != b {
				t.Fatalf("round trip: %+v became %+v", a, b)
			}
		}
	})
}

// bruteOverride is the overrides' definition, written plainly.
func bruteOverride(rules []Rule, a netip.Addr) (Info, bool) {
	var match []Rule
	for _, r := range rules {
		if r.Prefix.Addr().Is4() == a.Is4() && r.Prefix.Contains(a) {
			match = append(match, r)
		}
	}
	if len(match) == 0 {
		return Info{}, false
	}
	slices.SortFunc(match, func(x, y Rule) int { return cmp.Compare(y.Prefix.Bits(), x.Prefix.Bits()) })
	var in Info
	for _, r := range match {
		in.Country = cmp.Or(in.Country, r.Country)
		in.ASN = cmp.Or(in.ASN, r.ASN)
		in.Org = cmp.Or(in.Org, r.Org)
		in.Label = cmp.Or(in.Label, r.Label)
	}
	return in, true
}

func FuzzParseASNCSV(f *testing.F) {
	f.Add([]byte(testASNv4), false)
	f.Add([]byte(testASNv6), true)
	f.Add([]byte("1,2,3,\"a,b\"\n2,9,4,\"\"\"q\"\"\"\n0,4294967295,5,all\n"), false)
	f.Add([]byte("::,::ffff,1,x\n::1,::2,2,y\n340282366920938463463374607431768211455,340282366920938463463374607431768211455,3,top\n"), true)
	f.Add([]byte("1,2,3,\"unterminated\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, v6 bool) {
		if len(data) > 1<<16 {
			return
		}
		l := newASNLoader()
		n, err := l.read(bytes.NewReader(data), "fuzz.csv", v6)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.File != "fuzz.csv" || se.Line < 1 || se.Line > bytes.Count(data, []byte("\n"))+1 {
				t.Fatalf("error %v: not a SyntaxError with a plausible line", err)
			}
			return
		}
		type row struct {
			lo, hi u128
			asn    uint32
			org    string
		}
		// Every line parses alone, and its fields survive formatting.
		var rows []row
		first := true
		for line := range bytes.Lines(data) {
			if first {
				line, first = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")), false
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			lo, hi, asn, org, perr := parseASNLine(line, v6, nil)
			if perr != nil {
				t.Fatalf("line %q: %v", line, perr)
			}
			if !isClean(org) {
				t.Fatalf("org %q is not clean text", org)
			}
			r := row{lo, hi, asn, string(org)}
			rows = append(rows, r)
			bound := func(v u128) string {
				if v6 {
					return v.addr().String()
				}
				return b4(v.lo).addr().String()
			}
			text := fmt.Sprintf("%s,%s,AS%d,\"%s\"\n", bound(lo), bound(hi), asn, strings.ReplaceAll(string(org), `"`, `""`))
			lo2, hi2, asn2, org2, perr := parseASNLine([]byte(text), v6, nil)
			if perr != nil || lo2 != lo || hi2 != hi || asn2 != asn || string(org2) != string(org) {
				t.Fatalf("%q formatted as %q parses as %v %v %d %q %v", line, text, lo2, hi2, asn2, org2, perr)
			}
		}
		if len(rows) != n {
			t.Fatalf("read %d rows, lines give %d", n, len(rows))
		}
		// The table answers as the rule says: the last row, in start order,
		// that covers an address.
		d := l.db()
		slices.SortStableFunc(rows, func(a, b row) int { return a.lo.cmp(b.lo) })
		for _, r := range rows {
			for _, p := range []u128{r.lo, r.hi, r.lo.pred(), r.hi.succ()} {
				if !v6 && (p.hi != 0 || p.lo > 0xffffffff) {
					continue
				}
				var want *row
				for i := range rows {
					if !p.less(rows[i].lo) && !rows[i].hi.less(p) {
						want = &rows[i]
					}
				}
				var asn uint32
				var org string
				var ok bool
				if v6 {
					asn, org, ok = d.lookup(p.addr())
				} else {
					asn, org, ok = d.lookup(b4(p.lo).addr())
				}
				if ok != (want != nil) || want != nil && (asn != want.asn || org != want.org) {
					t.Fatalf("at %v: got %d %q %v, want %+v", p, asn, org, ok, want)
				}
			}
		}
	})
}
