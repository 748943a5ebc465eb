package enrich

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestOverrides(t *testing.T) {
	for _, c := range []struct {
		name  string
		rules string
		ip    string
		want  Info
		found bool
	}{
		{"single", "10.0.0.0/8 country=DE", "10.1.2.3", Info{Country: "DE"}, true},
		{"outside", "10.0.0.0/8 country=DE", "11.0.0.0", Info{}, false},
		{"edges low", "10.0.0.0/8 country=DE", "10.0.0.0", Info{Country: "DE"}, true},
		{"edges high", "10.0.0.0/8 country=DE", "10.255.255.255", Info{Country: "DE"}, true},
		{"before", "10.0.0.0/8 country=DE", "9.255.255.255", Info{}, false},
		{"longer wins", "10.0.0.0/8 country=DE\n10.1.0.0/16 country=FR", "10.1.2.3", Info{Country: "FR"}, true},
		{"longer wins, written first", "10.1.0.0/16 country=FR\n10.0.0.0/8 country=DE", "10.1.2.3", Info{Country: "FR"}, true},
		{"shorter outside longer", "10.1.0.0/16 country=FR\n10.0.0.0/8 country=DE", "10.2.0.0", Info{Country: "DE"}, true},
		{"tail after nested", "10.0.0.0/8 country=DE\n10.1.0.0/16 country=FR", "10.200.0.0", Info{Country: "DE"}, true},
		{"fields inherit", "10.0.0.0/8 country=DE org=Corp asn=64500\n10.1.0.0/16 label=lab", "10.1.2.3",
			Info{Country: "DE", ASN: 64500, Org: "Corp", Label: "lab"}, true},
		{"three levels", "10.0.0.0/8 country=DE\n10.1.0.0/16 org=A\n10.1.2.0/24 label=x\n10.1.2.3 asn=1", "10.1.2.3",
			Info{"DE", 1, "A", "x"}, true},
		{"three levels, sibling", "10.0.0.0/8 country=DE\n10.1.0.0/16 org=A\n10.1.2.0/24 label=x\n10.1.2.3 asn=1", "10.1.2.4",
			Info{"DE", 0, "A", "x"}, true},
		{"same prefix later wins", "10.0.0.0/8 country=DE org=A\n10.0.0.0/8 country=FR", "10.0.0.1", Info{Country: "FR", Org: "A"}, true},
		{"host", "192.0.2.7 label=host", "192.0.2.7", Info{Label: "host"}, true},
		{"host /32", "192.0.2.7/32 label=host", "192.0.2.8", Info{}, false},
		{"all v4", "0.0.0.0/0 country=ZZ\n10.0.0.0/8 country=DE", "255.255.255.255", Info{Country: "ZZ"}, true},
		{"v6", "2001:db8::/32 country=NL", "2001:db8::1", Info{Country: "NL"}, true},
		{"v6 longer", "2001:db8::/32 country=NL\n2001:db8:1::/48 label=lab", "2001:db8:1::1", Info{Country: "NL", Label: "lab"}, true},
		{"v6 top", "ffff::/16 asn=7", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Info{ASN: 7}, true},
		{"v6 all", "::/0 country=ZZ", "2001:db8::1", Info{Country: "ZZ"}, true},
		{"v6 all not v4", "::/0 country=ZZ", "192.0.2.1", Info{}, false},
		{"v4 all not v6", "0.0.0.0/0 country=ZZ", "2001:db8::1", Info{}, false},
		{"v4 rule, mapped address", "192.0.2.0/24 label=x", "::ffff:192.0.2.1", Info{Label: "x"}, true},
		{"mapped rule", "::ffff:192.0.2.0/120 label=x", "192.0.2.1", Info{Label: "x"}, true},
		{"mapped and v4 merge", "::ffff:192.0.2.0/120 label=x\n192.0.2.0/24 country=de", "192.0.2.1", Info{Country: "DE", Label: "x"}, true},
		{"asn forms", "10.0.0.0/8 asn=AS64512", "10.0.0.1", Info{ASN: 64512}, true},
		{"asn lower", "10.0.0.0/8 asn=as64512", "10.0.0.1", Info{ASN: 64512}, true},
		{"quoted", `10.0.0.0/8 org="Example, \"Inc.\" \\ # not a comment" label='x'`, "10.0.0.1",
			Info{Org: `Example, "Inc." \ # not a comment`, Label: "'x'"}, true},
		{"comments and blanks", "\n  # heading\n\t10.0.0.0/8\tcountry=DE   # trailing\n\n", "10.0.0.1", Info{Country: "DE"}, true},
		{"crlf", "10.0.0.0/8 country=DE\r\n10.1.0.0/16 label=x\r\n", "10.1.0.1", Info{Country: "DE", Label: "x"}, true},
		{"bom", "\ufeff10.0.0.0/8 country=DE", "10.0.0.1", Info{Country: "DE"}, true},
		{"utf8", `10.0.0.0/8 org="Zürich Ünïversity"`, "10.0.0.1", Info{Org: "Zürich Ünïversity"}, true},
		{"empty file", "", "10.0.0.1", Info{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := ParseOverrides(strings.NewReader(c.rules), "test")
			if err != nil {
				t.Fatal(err)
			}
			got, found := o.Lookup(netip.MustParseAddr(c.ip))
			if got != c.want || found != c.found {
				t.Errorf("%s: got %+v %v, want %+v %v", c.ip, got, found, c.want, c.found)
			}
		})
	}
}

func TestOverridesErrors(t *testing.T) {
	for _, c := range []struct {
		rules string
		want  string // the whole message
	}{
		{"10.0.0.0/8", `f:1: prefix without key=value (country, asn, org, label): "10.0.0.0/8"`},
		{"# ok\n10.0.0.0/33 country=DE", `f:2: bad CIDR prefix: "10.0.0.0/33"`},
		{"10.0.0.0/8 country=DE\n\nnot-an-ip country=DE", `f:3: bad CIDR prefix: "not-an-ip"`},
		{"10.1.2.3/8 country=DE", `f:1: host bits set (did you mean 10.0.0.0/8?): "10.1.2.3/8"`},
		{"fe80::1%eth0 label=x", `f:1: address with a zone: "fe80::1%eth0"`},
		{"country=DE 10.0.0.0/8", `f:1: line must start with a CIDR prefix: "country=DE"`},
		{"10.0.0.0/8 country=Germany", `f:1: country must be two letters (ISO 3166-1 alpha-2): "country=Germany"`},
		{"10.0.0.0/8 country=D1", `f:1: country must be two letters (ISO 3166-1 alpha-2): "country=D1"`},
		{"10.0.0.0/8 asn=ASX", `f:1: asn must be a number 1-4294967295, or AS123: "asn=ASX"`},
		{"10.0.0.0/8 asn=4294967296", `f:1: asn must be a number 1-4294967295, or AS123: "asn=4294967296"`},
		{"10.0.0.0/8 asn=0", `f:1: asn 0 means unknown; leave asn out instead: "asn=0"`},
		{"10.0.0.0/8 colour=red", `f:1: unknown key (want country, asn, org or label): "colour=red"`},
		{"10.0.0.0/8 country=DE country=FR", `f:1: key given twice: "country=FR"`},
		{"10.0.0.0/8 org=", `f:1: empty value: "org="`},
		{`10.0.0.0/8 org=""`, `f:1: empty value: "org=\"\""`},
		{"10.0.0.0/8 =x", `f:1: missing key before '=': "=x"`},
		{"10.0.0.0/8 country DE", `f:1: want key=value: "country"`},
		{`10.0.0.0/8 org="Example`, `f:1: unterminated quote: "org=\"Example"`},
		{`10.0.0.0/8 org="a\nb"`, `f:1: unknown escape (only \" and \\): "org=\"a\\nb\""`},
		{`10.0.0.0/8 org="a"b`, `f:1: want a space after the value: "org=\"a\"b"`},
		{`10.0.0.0/8 org=a"b"`, `f:1: quote the value (it holds '"' or '='): "org=a\"b\""`},
		{`10.0.0.0/8 org=a=b`, `f:1: quote the value (it holds '"' or '='): "org=a=b"`},
		{`10.0.0.0/8 "label"`, `f:1: unexpected quote (values are key="..."): "\"label\""`},
		{"10.0.0.0/8 org=\"a\x01b\"", `f:1: value must be UTF-8 text without control characters: "org=\"a\x01b\""`},
		{"10.0.0.0/8 org=\xff", `f:1: value must be UTF-8 text without control characters: "org=\xff"`},
		{"10.0.0.0/8 org=" + strings.Repeat("x", 257), `f:1: value longer than 256 bytes: "org=` + strings.Repeat("x", 76) + `..."`},
		{"10.0.0.0/8 org=" + strings.Repeat("x", maxLine), `f:1: line longer than 65536 bytes`},
	} {
		_, err := ParseOverrides(strings.NewReader(c.rules), "f")
		var se *SyntaxError
		if err == nil || !errors.As(err, &se) || err.Error() != c.want {
			t.Errorf("%q:\n got  %v\n want %s", c.rules, err, c.want)
		}
	}
}

func TestOverridesRoundTrip(t *testing.T) {
	in := `
10.0.0.0/8 country=de asn=AS64500 org="Example, Inc." label=corp
10.1.0.0/16 label="lab \"one\""
::ffff:192.0.2.0/120 country=ZZ
2001:db8::/32 org=Doc
10.0.0.0/8 org=Later
`
	o, err := ParseOverrides(strings.NewReader(in), "f")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range o.Rules() {
		b.WriteString(r.String() + "\n")
	}
	want := `10.0.0.0/8 country=DE asn=64500 org="Later" label="corp"
10.1.0.0/16 label="lab \"one\""
192.0.2.0/24 country=ZZ
2001:db8::/32 org="Doc"
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if r := o.Rules()[0]; r.Line != 6 {
		t.Errorf("merged rule line %d, want 6", r.Line)
	}
}

// TestNetlabOverrides checks the example file for the netlab lab, whose
// TEST-NET and benchmarking addresses have no country in any database.
func TestNetlabOverrides(t *testing.T) {
	f, err := os.Open("testdata/netlab.overrides")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := ParseOverrides(f, f.Name())
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]Info{
		"198.18.0.1":     {"XA", 64496, "netlab host farm", "netlab farm"},
		"198.19.255.254": {"XB", 64496, "netlab host farm", "netlab farm"},
		"203.0.113.10":   {"XC", 64497, "netlab services", "netlab daemons"},
		"198.51.100.200": {"XD", 64498, "netlab sensors", "netlab dark range"},
		"198.51.100.1":   {"ZZ", 0, "", "TEST-NET-2"},
	} {
		if got, _ := o.Lookup(netip.MustParseAddr(ip)); got != want {
			t.Errorf("%s: got %+v, want %+v", ip, got, want)
		}
	}
}
