package enrich

import (
	"bytes"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func write(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// logBuffer returns a logger that writes text records into the buffer.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo})), &b
}

const testASNv4 = "\ufeff16777216,16777471,13335,\"Cloudflare, Inc.\"\n" + // 1.0.0.0-1.0.0.255, BOM first
	"16843008,16843263,13335,\"Cloudflare, Inc.\"\r\n" + // 1.1.1.0/24, CRLF
	"134744064,134744319,15169,Google LLC\n" + // 8.8.8.0/24
	"\n" +
	"35309568,35313663,201907,\"LLC \"\"SPUTNIK\"\"\"\n" + // 2.26.192.0/20, doubled quotes
	"9.0.0.0,9.255.255.255,3356,Level 3 Parent, LLC\n" + // dotted bounds, bare comma
	// the real file's one overlap: the later start wins where they overlap
	"3596550144,3607166975,749,United States Department of Defense (DoD)\n" +
	"3607101440,3607167999,721,DoD Network Information Center\n" +
	"100.0.0.0,100.255.255.255,1000,Outer\n" + // a nested range: the outer one's tail survives
	"100.1.0.0,100.1.255.255,1001,Inner\n" +
	"4278190080,4294967295,65000,Top\n" + // up to 255.255.255.255
	"167772160,167772160,0,\n" + // 10.0.0.0: AS 0, empty org
	"192.168.0.0,192.168.255.255,64999,Private\n"

const testASNv6 = "2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,15169,Google LLC\n" +
	"2606:4700::,2606:4700:ffff:ffff:ffff:ffff:ffff:ffff,13335,\"Cloudflare, Inc.\"\n" +
	"42540528726795050063891204319802818560,42540528806023212578155541913346768895,2500,WIDE Project\n" + // 2001:200::/32 as a number
	"ffff:ffff:ffff:ffff::,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,65001,\"Ünïcödé, \xff bad\"\n"

func TestASNCSV(t *testing.T) {
	dir := t.TempDir()
	l := newASNLoader()
	n4, err := l.loadFile(write(t, dir, "v4.csv", testASNv4), false)
	if err != nil {
		t.Fatal(err)
	}
	n6, err := l.loadFile(write(t, dir, "v6.csv", testASNv6), true)
	if err != nil {
		t.Fatal(err)
	}
	if n4 != 12 || n6 != 4 {
		t.Fatalf("rows: %d %d, want 12 4", n4, n6)
	}
	d := l.db()
	for _, c := range []struct {
		ip  string
		asn uint32
		org string
	}{
		{"1.0.0.0", 13335, "Cloudflare, Inc."},
		{"1.0.0.255", 13335, "Cloudflare, Inc."},
		{"1.0.1.0", 0, ""},
		{"1.1.1.1", 13335, "Cloudflare, Inc."},
		{"8.8.8.8", 15169, "Google LLC"},
		{"2.26.200.1", 201907, `LLC "SPUTNIK"`},
		{"9.1.2.3", 3356, "Level 3 Parent, LLC"},
		{"214.94.255.255", 0, ""},
		{"214.95.0.0", 749, "United States Department of Defense (DoD)"},
		{"214.255.255.255", 749, "United States Department of Defense (DoD)"},
		{"215.0.0.0", 721, "DoD Network Information Center"},
		{"215.0.255.255", 721, "DoD Network Information Center"},
		{"215.1.3.255", 721, "DoD Network Information Center"},
		{"215.1.4.0", 0, ""},
		{"100.0.0.0", 1000, "Outer"},
		{"100.1.0.0", 1001, "Inner"},
		{"100.1.255.255", 1001, "Inner"},
		{"100.2.0.0", 1000, "Outer"},
		{"100.255.255.255", 1000, "Outer"},
		{"255.255.255.255", 65000, "Top"},
		{"10.0.0.0", 0, ""},
		{"2001:4860:4860::8888", 15169, "Google LLC"},
		{"2606:4700:4700::1111", 13335, "Cloudflare, Inc."},
		{"2001:200:1::1", 2500, "WIDE Project"},
		{"2001:201::", 0, ""},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65001, "Ünïcödé, \ufffd bad"},
		{"::", 0, ""},
	} {
		asn, org, _ := d.lookup(netip.MustParseAddr(c.ip))
		if asn != c.asn || org != c.org {
			t.Errorf("%s: got %d %q, want %d %q", c.ip, asn, org, c.asn, c.org)
		}
	}
	if got := len(d.orgs); got != 13 { // "" and 12 distinct
		t.Errorf("interned %d organisations, want 13: %q", got, d.orgs)
	}
}

func TestASNCSVErrors(t *testing.T) {
	for _, c := range []struct {
		name, content string
		v6            bool
		want          string // substring of the error
	}{
		{"fields", "1,2,3\n", false, `a.csv:1: want 4 comma-separated fields (start,end,asn,org), found 3: "1,2,3"`},
		{"line2", "1,2,3,ok\n1,2\n", false, `a.csv:2: want 4 comma-separated fields`},
		{"bound", "1,2,3,ok\n\nx,2,3,o\n", false, `a.csv:3: bad address: "x"`},
		{"v4range", "1,4294967296,3,o\n", false, `a.csv:1: address number out of range: "4294967296"`},
		{"v6range", "1,340282366920938463463374607431768211456,3,o\n", true, `a.csv:1: address number out of range`},
		{"family4", "::1,::2,3,o\n", false, `a.csv:1: IPv6 address in an IPv4 file: "::1"`},
		{"family6", "1.2.3.4,1.2.3.5,3,o\n", true, `a.csv:1: IPv4 address in an IPv6 file: "1.2.3.4"`},
		{"zone", "fe80::1%eth0,fe80::2,3,o\n", true, `address with a zone`},
		{"reversed", "5,4,3,o\n", false, `a.csv:1: range ends before it starts: "5,4"`},
		{"asn", "1,2,ASx,o\n", false, `a.csv:1: bad AS number: "ASx"`},
		{"asnbig", "1,2,4294967296,o\n", false, `a.csv:1: AS number out of range`},
		{"asnempty", "1,2,,o\n", false, `a.csv:1: bad AS number`},
		{"unterminated", "1,2,3,\"Foo, Inc.\n", false, `a.csv:1: unterminated quoted field: "\"Foo, Inc."`},
		{"after", "1,2,3,\"Foo\" Inc\n", false, `a.csv:1: text after the closing quote`},
		{"barequote", "1,2,3,Foo \"Bar\"\n", false, `a.csv:1: quote in an unquoted field`},
		{"long", "1,2,3," + strings.Repeat("x", maxLine) + "\n", false, `a.csv:1: line longer than`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := newASNLoader().read(strings.NewReader(c.content), "a.csv", c.v6)
			var se *SyntaxError
			if err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestParseDec128(t *testing.T) {
	for _, c := range []struct {
		s  string
		v  u128
		ok bool
	}{
		{"0", u128{}, true},
		{"18446744073709551615", u128{0, ^uint64(0)}, true},
		{"18446744073709551616", u128{1, 0}, true},
		{"42540528726795050063891204319802818560", u128Of(netip.MustParseAddr("2001:200::")), true},
		{"340282366920938463463374607431768211455", u128{^uint64(0), ^uint64(0)}, true},
		{"340282366920938463463374607431768211456", u128{}, false},
		{"999999999999999999999999999999999999999999", u128{}, false},
	} {
		v, ok := parseDec128([]byte(c.s))
		if v != c.v || ok != c.ok {
			t.Errorf("%s: got %v %v, want %v %v", c.s, v, ok, c.v, c.ok)
		}
	}
}

// TestFlatten checks flatten against the rule it implements, on random
// overlapping ranges: at each point the last row (in start order, file
// order for equal starts) that covers it wins.
func TestFlatten(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 2000; iter++ {
		n := 1 + r.IntN(8)
		rows := make([]span[b4], n)
		for i := range rows {
			lo := b4(r.IntN(40))
			rows[i] = span[b4]{lo, lo + b4(r.IntN(15)), uint64(i % 3)}
			if r.IntN(10) == 0 {
				rows[i].hi = 0xffffffff
			}
		}
		if iter%7 == 0 {
			rows[0].lo = 0
		}
		sorted := append([]span[b4](nil), rows...)
		flat := flatten(sorted) // sorts sorted stably by lo
		tab := table4{}
		for i, s := range flat {
			if s.hi.less(s.lo) || i > 0 && !flat[i-1].hi.less(s.lo) {
				t.Fatalf("not sorted and disjoint: %v from %v", flat, rows)
			}
			if i > 0 && flat[i-1].hi.succ() == s.lo && flat[i-1].val == s.val {
				t.Fatalf("adjacent equal spans not merged: %v", flat)
			}
			tab.start = append(tab.start, uint32(s.lo))
			tab.end = append(tab.end, uint32(s.hi))
			tab.val = append(tab.val, s.val)
		}
		for x := uint32(0); x < 64; x++ {
			want, wantOK := uint64(0), false
			for _, s := range sorted {
				if uint32(s.lo) <= x && x <= uint32(s.hi) {
					want, wantOK = s.val, true
				}
			}
			got, ok := tab.find(x)
			if got != want || ok != wantOK {
				t.Fatalf("point %d: got %d %v, want %d %v; rows %v flat %v", x, got, ok, want, wantOK, sorted, flat)
			}
		}
		if got, ok := tab.find(0xffffffff); ok != (flat[len(flat)-1].hi == 0xffffffff) {
			t.Fatalf("top: %d %v; flat %v", got, ok, flat)
		}
	}
}

func TestU128(t *testing.T) {
	for _, s := range []string{"::", "::1", "::ffff:ffff:ffff:ffff", "1::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"} {
		a := netip.MustParseAddr(s)
		v := u128Of(a)
		if v.addr() != a || v.succ().addr() != a.Next() || v.succ().pred() != v {
			t.Errorf("%s: u128 arithmetic wrong", s)
		}
	}
}

func TestCountryCode(t *testing.T) {
	for in, want := range map[string]string{"AU": "AU", "au": "AU", "aU": "AU", "ZZ": "ZZ", "A": "", "AUS": "", "A1": "", "@A": "", "[a": "", "{a": "", "": ""} {
		if got := countryCode(in); got != want {
			t.Errorf("countryCode(%q) = %q, want %q", in, got, want)
		}
	}
}

// testFiles writes a small data directory the way geodata.sh lays it out.
func testFiles(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	writeMMDB(t, filepath.Join(dir, CountryFile), map[netip.Prefix]string{
		netip.MustParsePrefix("1.1.1.0/24"):     "AU",
		netip.MustParsePrefix("8.8.0.0/15"):     "US",
		netip.MustParsePrefix("9.0.0.0/8"):      "us", // normalised
		netip.MustParsePrefix("2.26.192.0/20"):  "RU",
		netip.MustParsePrefix("2001:4860::/32"): "US",
		netip.MustParsePrefix("2a00:1450::/29"): "IE",
		// like the real file: countries for ranges that have none
		netip.MustParsePrefix("192.168.0.0/16"): "AU",
		netip.MustParsePrefix("2001:db8::/32"):  "JP",
	})
	write(t, dir, ASNv4File, testASNv4)
	write(t, dir, ASNv6File, testASNv6)
	write(t, dir, ManifestFile, "fetched 2026-06-18T00:00:00Z\n"+
		"file asn-ipv4-num.csv @ip-location-db/asn 2.3.2026061719 sha256:00 "+strconv.Itoa(len(testASNv4))+"\n"+
		"file asn-ipv6.csv @ip-location-db/asn 2.3.2026061719 sha256:00 1\n") // wrong size: not that file
	return dir
}

func TestOpenLookup(t *testing.T) {
	dir := testFiles(t)
	ov := write(t, t.TempDir(), "overrides", `
# lab and company ranges
10.0.0.0/8        country=de org="Example Corp internal" label=corp
10.1.0.0/16       label="lab network"
1.1.1.1           asn=AS64500                 # a different AS: the database's org is not used
8.8.8.0/24        org="Google DNS"            # org only: ASN and country from the databases
2001:4860::/32    label=google6
::ffff:9.9.9.0/120 country=CH
192.168.1.0/24    label=home
`)
	log, logs := logBuffer()
	e, err := Open(Config{Dir: dir, Overrides: ov}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if logs.Len() != 0 {
		t.Errorf("unexpected log output: %s", logs)
	}
	for _, c := range []struct {
		ip   string
		want Info
	}{
		{"1.1.1.2", Info{"AU", 13335, "Cloudflare, Inc.", ""}},
		{"1.1.1.1", Info{"AU", 64500, "", ""}},
		{"::ffff:1.1.1.2", Info{"AU", 13335, "Cloudflare, Inc.", ""}},
		{"8.8.8.8", Info{"US", 15169, "Google DNS", ""}},
		{"8.8.9.9", Info{"US", 0, "", ""}},
		{"9.1.1.1", Info{"US", 3356, "Level 3 Parent, LLC", ""}},
		{"9.9.9.9", Info{"CH", 3356, "Level 3 Parent, LLC", ""}},
		{"2.26.200.1", Info{"RU", 201907, `LLC "SPUTNIK"`, ""}},
		{"10.2.3.4", Info{"DE", 0, "Example Corp internal", "corp"}},
		{"10.1.2.3", Info{"DE", 0, "Example Corp internal", "lab network"}},
		{"10.0.0.0", Info{"DE", 0, "Example Corp internal", "corp"}}, // AS 0 row in the CSV adds nothing
		{"2001:4860:4860::8888", Info{"US", 15169, "Google LLC", "google6"}},
		{"fe80::1%eth0", Info{}},
		{"2001:4860::1%eth0", Info{"US", 15169, "Google LLC", "google6"}},
		{"2a00:1450::1", Info{"IE", 0, "", ""}},
		{"192.0.2.1", Info{}},
		// special-purpose addresses: the overrides only
		{"192.168.1.1", Info{Label: "home"}},
		{"192.168.2.1", Info{}},
		{"2001:db8::1", Info{}},
	} {
		if got := e.Lookup(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.ip, got, c.want)
		}
	}
	if got := e.Lookup(netip.Addr{}); got != (Info{}) {
		t.Errorf("zero Addr: %+v", got)
	}
	src := e.Sources()
	if len(src) != 4 {
		t.Fatalf("sources: %+v", src)
	}
	want := []Source{
		{Name: "country", Path: filepath.Join(dir, CountryFile), Records: 8, License: countryLicense},
		{Name: "asn-ipv4", Path: filepath.Join(dir, ASNv4File), Version: "@ip-location-db/asn@2.3.2026061719", Records: 12, License: asnLicense},
		{Name: "asn-ipv6", Path: filepath.Join(dir, ASNv6File), Records: 4, License: asnLicense},
		{Name: "overrides", Path: ov, Records: 7, License: "local"},
	}
	if src[0].Built.Unix() != 1781725900 {
		t.Errorf("country built %v", src[0].Built)
	}
	src[0].Built = time.Time{}
	for i := range want {
		if src[i] != want[i] {
			t.Errorf("source %d: got %+v\n want %+v", i, src[i], want[i])
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		e.Lookup(netip.MustParseAddr("10.1.2.3"))
		e.Lookup(netip.MustParseAddr("2001:4860:4860::8888"))
	}); n != 0 {
		t.Errorf("Lookup allocates: %v per run", n)
	}
	e.Close()
	if got := e.Lookup(netip.MustParseAddr("1.1.1.2")); got != (Info{}) {
		t.Errorf("after Close: %+v", got)
	}
}

func TestOpenMissing(t *testing.T) {
	t.Run("dir", func(t *testing.T) {
		dir := t.TempDir()
		log, logs := logBuffer()
		e, err := Open(Config{Dir: filepath.Join(dir, "nowhere")}, log)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Lookup(netip.MustParseAddr("1.1.1.1")); got != (Info{}) {
			t.Errorf("got %+v", got)
		}
		out := logs.String()
		if strings.Count(out, "\n") != 1 || !strings.Contains(out, "level=WARN") || !strings.Contains(out, "scripts/geodata.sh") ||
			!strings.Contains(out, filepath.Join(dir, "nowhere", CountryFile)) || !strings.Contains(out, ASNv6File) {
			t.Errorf("want one warning naming the files and the script, got:\n%s", out)
		}
		for _, s := range e.Sources() {
			if !s.Missing || s.Records != 0 {
				t.Errorf("source %+v not missing", s)
			}
		}
		t.Log(strings.TrimSpace(out))
	})
	t.Run("some", func(t *testing.T) {
		dir := testFiles(t)
		os.Remove(filepath.Join(dir, CountryFile))
		log, logs := logBuffer()
		e, err := Open(Config{Dir: dir}, log)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Lookup(netip.MustParseAddr("1.1.1.1")); got != (Info{"", 13335, "Cloudflare, Inc.", ""}) {
			t.Errorf("got %+v", got)
		}
		if !strings.Contains(logs.String(), CountryFile) || strings.Contains(logs.String(), ASNv4File) {
			t.Errorf("warning: %s", logs)
		}
	})
	t.Run("none configured", func(t *testing.T) {
		log, logs := logBuffer()
		e, err := Open(Config{}, log)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Lookup(netip.MustParseAddr("1.1.1.1")); got != (Info{}) {
			t.Errorf("got %+v", got)
		}
		if !strings.Contains(logs.String(), "no geolocation data configured") {
			t.Errorf("warning: %s", logs)
		}
	})
	t.Run("nil", func(t *testing.T) {
		var e *Enricher
		if e.Lookup(netip.MustParseAddr("1.1.1.1")) != (Info{}) || e.Sources() != nil || e.Close() != nil {
			t.Error("nil Enricher")
		}
	})
}

func TestOpenErrors(t *testing.T) {
	good := testFiles(t)
	dir := t.TempDir()
	mmdb := buildMMDB(t, map[netip.Prefix]string{netip.MustParsePrefix("1.0.0.0/8"): "AU"}, "country_code")
	truncated := write(t, dir, "truncated.mmdb", string(mmdb[:len(mmdb)-40]))
	garbage := write(t, dir, "garbage.mmdb", strings.Repeat("not a database\n", 100))
	badTree := append([]byte(nil), mmdb...)
	badTree[0], badTree[1], badTree[2] = 0x7f, 0xff, 0xff // first record points far beyond the data
	badTreePath := write(t, dir, "badtree.mmdb", string(badTree))
	noCountry := write(t, dir, "asn.mmdb", string(buildMMDB(t, map[netip.Prefix]string{netip.MustParsePrefix("1.0.0.0/8"): "x"}, "asn_org")))
	badCSV := write(t, dir, "bad.csv", "1,2,3,ok\n4,5,six,bad\n")
	badOv := write(t, dir, "ov", "10.0.0.0/8 country=DE\n10.0.0.0/8 colour=red\n")
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"truncated mmdb", Config{Dir: good, CountryMMDB: truncated}, "truncated.mmdb"},
		{"garbage mmdb", Config{Dir: good, CountryMMDB: garbage}, "garbage.mmdb"},
		{"bad tree", Config{Dir: good, CountryMMDB: badTreePath}, "badtree.mmdb"},
		{"not a country database", Config{Dir: good, CountryMMDB: noCountry}, "not a country database"},
		{"directory as file", Config{Dir: good, CountryMMDB: dir}, "country database"},
		{"bad csv", Config{Dir: good, ASNv6CSV: badCSV}, "bad.csv:2: bad AS number: \"six\""},
		{"bad overrides", Config{Dir: good, Overrides: badOv}, "ov:2: unknown key (want country, asn, org or label): \"colour=red\""},
		{"missing overrides", Config{Dir: good, Overrides: filepath.Join(dir, "nope")}, "nope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := Open(c.cfg, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, %v; want an error containing %q", e, err, c.want)
			}
			t.Log(err)
		})
	}
}

func TestExplicitPaths(t *testing.T) {
	dir := testFiles(t)
	other := t.TempDir()
	// Newer files from elsewhere: dotted IPv4 bounds, a different name.
	v4 := write(t, other, "asn-ipv4.csv", "1.1.1.0,1.1.1.255,64496,\"Newer, Org\"\n")
	e, err := Open(Config{Dir: dir, ASNv4CSV: v4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Lookup(netip.MustParseAddr("1.1.1.1")); got != (Info{"AU", 64496, "Newer, Org", ""}) {
		t.Errorf("got %+v", got)
	}
	if got := e.Lookup(netip.MustParseAddr("2606:4700::1")); got.ASN != 13335 {
		t.Errorf("IPv6 from Dir: %+v", got)
	}
	if s := e.Sources()[1]; s.Path != v4 || s.Version != "" || s.Records != 1 {
		t.Errorf("source %+v", s)
	}
}

// TestTable4Index checks the /16 index against a plain binary search.
func TestTable4Index(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var rows []span[b4]
	for i := 0; i < 3*index16Min; i++ {
		lo := b4(r.Uint32())
		if i%3 == 0 {
			lo &^= 0xffff // on a /16 boundary
		}
		rows = append(rows, span[b4]{lo, lo + b4(r.IntN(1<<18)), uint64(i)})
	}
	rows = append(rows, span[b4]{0, 0, 1}, span[b4]{0xffffff00, 0xffffffff, 2})
	indexed := newTable4(rows)
	if indexed.by16 == nil {
		t.Fatal("no index")
	}
	plain := indexed
	plain.by16 = nil
	probes := []uint32{0, 1, 0xffff, 0x10000, 0xffffffff, 0xfffeffff, 0xffff0000}
	for _, s := range indexed.start {
		probes = append(probes, s, s-1, s+1, s|0xffff, s&^0xffff)
	}
	for _, e := range indexed.end {
		probes = append(probes, e, e+1)
	}
	for i := 0; i < 100000; i++ {
		probes = append(probes, r.Uint32())
	}
	for _, x := range probes {
		v1, ok1 := indexed.find(x)
		v2, ok2 := plain.find(x)
		if v1 != v2 || ok1 != ok2 {
			t.Fatalf("%#x: indexed %d %v, plain %d %v", x, v1, ok1, v2, ok2)
		}
	}
}

// TestConcurrent runs lookups from several goroutines while Close runs
// (meaningful under -race).
func TestConcurrent(t *testing.T) {
	e, err := Open(Config{Dir: testFiles(t), Overrides: "testdata/netlab.overrides"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ips := append(benchAddrs(256, false), benchAddrs(256, true)...)
	ips = append(ips, netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("198.18.0.1"))
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 20000; i++ {
				e.Lookup(ips[i%len(ips)])
			}
			done <- true
		}()
	}
	e.Close()
	for g := 0; g < 4; g++ {
		<-done
	}
}
