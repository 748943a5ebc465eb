package tag

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestActorRanges(t *testing.T) {
	a, err := LoadActors([]byte(`
[[actor]]
name = "BIGNET"
intention = "unknown"
cidrs = ["192.0.2.0/24", "2001:db8::/32"]

[[actor]]
name = "scanco"
intention = "benign"
cidrs = ["192.0.2.64/26", "192.0.2.200", "203.0.113.0/24"]
rdns = ["*.scan.example.org"]
`))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"192.0.2.1":          "BIGNET",
		"192.0.2.63":         "BIGNET",
		"192.0.2.64":         "SCANCO",
		"192.0.2.127":        "SCANCO",
		"192.0.2.128":        "BIGNET",
		"192.0.2.200":        "SCANCO",
		"192.0.2.201":        "BIGNET",
		"192.0.2.255":        "BIGNET",
		"::ffff:192.0.2.100": "SCANCO",
		"203.0.113.9":        "SCANCO",
		"198.51.100.1":       "",
		"2001:db8:1::5":      "BIGNET",
		"2001:db9::1":        "",
		"0.0.0.0":            "",
		"255.255.255.255":    "",
	}
	for s, want := range cases {
		ac, _, ok := a.LookupRange(netip.MustParseAddr(s))
		got := ""
		if ok {
			got = ac.Name
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", s, got, want)
		}
	}
	if sc, _ := a.Actor("scanco"); sc.RDNS[0] != "scan.example.org" {
		t.Errorf("suffix not normalised: %v", sc.RDNS)
	}
	for _, bad := range []string{
		"[[actor]]\nname = \"x y\"\n",
		"[[actor]]\nname = \"X\"\nintention = \"nice\"\n",
		"[[actor]]\nname = \"X\"\ncidrs = [\"1.2.3\"]\n",
		"[[actor]]\nname = \"X\"\nrdns = [\"com\"]\n",
		"[[actor]]\nname = \"X\"\ncolour = 1\n",
	} {
		if _, err := LoadActors([]byte(bad)); err == nil {
			t.Errorf("loaded %q", bad)
		}
	}
}

func TestImportRanges(t *testing.T) {
	list := `# Example scanner list
; another comment style
192.0.2.10
192.0.2.32/28   # block A
198.51.100.0-198.51.100.9
2001:db8:5::/48,extra column

`
	a, err := ImportRanges(strings.NewReader(list), "ExampleScan")
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{
		"192.0.2.10": true, "192.0.2.11": false, "192.0.2.40": true, "198.51.100.0": true,
		"198.51.100.9": true, "198.51.100.10": false, "2001:db8:5::1": true,
	} {
		_, _, ok := a.LookupRange(netip.MustParseAddr(s))
		if ok != want {
			t.Errorf("%s: got %v want %v", s, ok, want)
		}
	}
	// importing into an existing database adds to it, and a benign import
	// makes the verdict benign
	db := DefaultActors()
	clone := &Actors{by: map[string]int{}}
	for _, ac := range db.List() {
		if err := clone.Add(ac); err != nil {
			t.Fatal(err)
		}
	}
	n, err := clone.ImportRanges(strings.NewReader("203.0.113.0/25\n"), "CENSYS", "benign")
	if err != nil || n != 1 {
		t.Fatal(n, err)
	}
	ac, why, ok := clone.LookupRange(netip.MustParseAddr("203.0.113.5"))
	if !ok || ac.Name != "CENSYS" || why != "203.0.113.0/25" {
		t.Fatalf("got %v %q %v", ac, why, ok)
	}
	if v, _ := Verdict(ac, nil); v != Benign {
		t.Fatalf("verdict %s", v)
	}
	for _, bad := range []string{"not-an-ip\n", "10.0.0.5-10.0.0.1\n", "10.0.0.1-2001:db8::1\n", strings.Repeat("1", 5000) + "\n"} {
		if _, err := ImportRanges(strings.NewReader(bad), "X"); err == nil {
			t.Errorf("imported %q", bad[:min(len(bad), 30)])
		}
	}
}

func TestRangeToPrefixes(t *testing.T) {
	got := rangeToPrefixes(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.10"))
	var s []string
	for _, p := range got {
		s = append(s, p.String())
	}
	if strings.Join(s, " ") != "10.0.0.1/32 10.0.0.2/31 10.0.0.4/30 10.0.0.8/31 10.0.0.10/32" {
		t.Errorf("got %v", s)
	}
	if got := rangeToPrefixes(netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255")); len(got) != 1 || got[0].Bits() != 0 {
		t.Errorf("got %v", got)
	}
}

// fakeResolver answers from maps and counts lookups.
type fakeResolver struct {
	ptr   map[string][]string
	fwd   map[string][]netip.Addr
	calls int
}

func (f *fakeResolver) LookupAddr(_ context.Context, addr string) ([]string, error) {
	f.calls++
	if n, ok := f.ptr[addr]; ok {
		return n, nil
	}
	return nil, errors.New("nxdomain")
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.calls++
	if a, ok := f.fwd[host]; ok {
		return a, nil
	}
	return nil, errors.New("nxdomain")
}

func TestResolveFCrDNS(t *testing.T) {
	res := &fakeResolver{
		ptr: map[string][]string{
			"192.0.2.1": {"census7.shodan.io."},
			"192.0.2.2": {"census8.shodan.io."}, // forward does not confirm
			"192.0.2.3": {"evil.example.com."},  // no actor's suffix
			"192.0.2.4": {"scanner-12.ch1.censys-scanner.com"},
			"192.0.2.5": {"notshodan.io."}, // suffix must be a label boundary
		},
		fwd: map[string][]netip.Addr{
			"census7.shodan.io":                 {netip.MustParseAddr("192.0.2.1")},
			"census8.shodan.io":                 {netip.MustParseAddr("198.51.100.1")},
			"scanner-12.ch1.censys-scanner.com": {netip.MustParseAddr("192.0.2.4")},
			"notshodan.io":                      {netip.MustParseAddr("192.0.2.5")},
		},
	}
	a := DefaultActors()
	ctx := context.Background()
	for s, want := range map[string]string{"192.0.2.1": "SHODAN", "192.0.2.2": "", "192.0.2.3": "", "192.0.2.4": "CENSYS", "192.0.2.5": "", "192.0.2.9": ""} {
		ac, why, ok := a.Resolve(ctx, netip.MustParseAddr(s), res)
		got := ""
		if ok {
			got = ac.Name
			if !strings.Contains(why, "forward-confirmed") {
				t.Errorf("%s: evidence %q", s, why)
			}
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", s, got, want)
		}
	}
	if _, _, ok := a.Resolve(ctx, netip.MustParseAddr("192.0.2.1"), nil); ok {
		t.Error("resolved without a resolver")
	}
}
