package enrich

import (
	"bufio"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The real, pinned data is fetched by scripts/geodata.sh DATADIR; the tests
// look for DATADIR/geo in $VANTAGE_GEODATA, the repository's ./data, and
// /var/cache/vantage-geodata, and skip when it is in none of them. The
// addresses below are test data only: nothing is contacted.

// findRealData returns DATADIR/geo when it holds the three files, or ""
// and the DATADIRs it tried.
func findRealData() (string, []string) {
	var dirs []string
	if d := os.Getenv("VANTAGE_GEODATA"); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "../data", "/var/cache/vantage-geodata")
	for _, d := range dirs {
		geo := filepath.Join(d, "geo")
		ok := true
		for _, f := range []string{CountryFile, ASNv4File, ASNv6File} {
			if _, err := os.Stat(filepath.Join(geo, f)); err != nil {
				ok = false
			}
		}
		if ok {
			return geo, dirs
		}
	}
	return "", dirs
}

func realDataDir(tb testing.TB) string {
	tb.Helper()
	geo, tried := findRealData()
	if geo == "" {
		tb.Skipf("real geolocation data not found (looked for DATADIR/geo in %s); fetch it with `scripts/geodata.sh DATADIR` and set VANTAGE_GEODATA=DATADIR",
			strings.Join(tried, ", "))
	}
	return geo
}

type pin struct{ name, version, integrity string }

func readLock(t testing.TB) []pin {
	t.Helper()
	f, err := os.Open("geodata.lock")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pins []pin
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 || strings.HasPrefix(fs[0], "#") {
			continue
		}
		if len(fs) != 4 || !strings.HasPrefix(fs[2], "sha512-") {
			t.Fatalf("geodata.lock: bad line %q", sc.Text())
		}
		pins = append(pins, pin{fs[0], fs[1], fs[2]})
	}
	return pins
}

func TestGeodataLock(t *testing.T) {
	pins := readLock(t)
	if len(pins) != 2 || pins[0].name != "@ip-location-db/geo-whois-asn-country-mmdb" || pins[1].name != "@ip-location-db/asn" {
		t.Fatalf("pins: %+v", pins)
	}
}

func TestRealData(t *testing.T) {
	geo := realDataDir(t)
	log, logs := logBuffer()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start := time.Now()
	e, err := Open(Config{Dir: geo, Overrides: "testdata/netlab.overrides"}, log)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	allocated := m1.TotalAlloc - m0.TotalAlloc
	runtime.GC()
	runtime.ReadMemStats(&m1)
	t.Logf("loaded %s in %v: %.1f MB live heap, %.1f MB allocated while loading",
		geo, took.Round(time.Millisecond), float64(m1.HeapAlloc-m0.HeapAlloc)/1e6, float64(allocated)/1e6)
	if logs.Len() != 0 {
		t.Errorf("warnings: %s", logs)
	}

	pins := readLock(t)
	for _, s := range e.Sources() {
		t.Logf("source %s: %s, %d records, version %q, license %s", s.Name, s.Path, s.Records, s.Version, s.License)
		min := map[string]int{"country": 500_000, "asn-ipv4": 300_000, "asn-ipv6": 50_000, "overrides": 7}[s.Name]
		if s.Missing || s.Records < min {
			t.Errorf("source %s: %d records (want >= %d), missing %v", s.Name, s.Records, min, s.Missing)
		}
		if s.Version != "" && s.Version != pins[0].name+"@"+pins[0].version && s.Version != pins[1].name+"@"+pins[1].version {
			t.Logf("note: %s is %s, not the pinned version", s.Name, s.Version)
		}
	}

	for _, c := range []struct {
		ip      string
		country string // "?" any two letters
		asn     uint32
		org     string // substring
	}{
		{"1.1.1.1", "?", 13335, "Cloudflare"},
		{"8.8.8.8", "US", 15169, "Google"},
		{"::ffff:8.8.8.8", "US", 15169, "Google"},
		{"2001:4860:4860::8888", "US", 15169, "Google"},
		{"2606:4700:4700::1111", "?", 13335, "Cloudflare"},
		{"10.0.0.1", "", 0, ""},
		{"192.168.1.1", "", 0, ""}, // the country file says AU
		{"2001:db8::1", "", 0, ""}, // the country file says JP
		{"::1", "", 0, ""},
		{"fd00::1", "", 0, ""},
	} {
		got := e.Lookup(netip.MustParseAddr(c.ip))
		if c.country == "?" && len(got.Country) != 2 || c.country != "?" && got.Country != c.country ||
			got.ASN != c.asn || !strings.Contains(got.Org, c.org) || c.org == "" && got.Org != "" || got.Label != "" {
			t.Errorf("%s: got %+v, want country %q, AS%d, org containing %q", c.ip, got, c.country, c.asn, c.org)
		}
		t.Logf("%-22s %+v", c.ip, got)
	}

	// The lab's addresses have no country in the databases; the netlab
	// overrides give them one.
	bare, err := Open(Config{Dir: geo}, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"198.18.0.1", "198.19.200.7", "203.0.113.10", "198.51.100.200", "192.0.2.1"} {
		a := netip.MustParseAddr(ip)
		if got := bare.Lookup(a); got.Country != "" {
			t.Errorf("%s: database gives country %q", ip, got.Country)
		}
		if got := e.Lookup(a); got.Country == "" || got.Label == "" {
			t.Errorf("%s with netlab overrides: %+v", ip, got)
		}
	}

	ips := []netip.Addr{netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("2001:4860:4860::8888"), netip.MustParseAddr("198.18.0.1")}
	if n := testing.AllocsPerRun(100, func() {
		for _, ip := range ips {
			e.Lookup(ip)
		}
	}); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
	runtime.KeepAlive(bare)
}

// benchAddrs returns n pseudo-random addresses of one family.
func benchAddrs(n int, v6 bool) []netip.Addr {
	r := rand.New(rand.NewPCG(3, 4))
	out := make([]netip.Addr, n)
	for i := range out {
		if v6 {
			var b [16]byte
			b[0] = 0x20 | byte(r.IntN(16)>>3) // 2000::/3, where the data is
			for j := 1; j < 16; j++ {
				b[j] = byte(r.Uint32())
			}
			out[i] = netip.AddrFrom16(b)
		} else {
			u := r.Uint32()
			out[i] = netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
		}
	}
	return out
}

func benchEnricher(b *testing.B) (*Enricher, string) {
	geo, _ := findRealData()
	kind := "real"
	if geo == "" {
		geo, kind = testFiles(b), "synthetic (no real data found)"
	}
	e, err := Open(Config{Dir: geo, Overrides: "testdata/netlab.overrides"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return e, kind
}

// BenchmarkLookup measures Lookup on random addresses (country, ASN and
// overrides together), with the real files when present.
func BenchmarkLookup(b *testing.B) {
	e, kind := benchEnricher(b)
	b.Logf("%s data", kind)
	for _, fam := range []struct {
		name string
		v6   bool
	}{{"v4", false}, {"v6", true}} {
		ips := benchAddrs(1<<16, fam.v6)
		b.Run(fam.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e.Lookup(ips[i&(len(ips)-1)])
				i++
			}
		})
		b.Run(fam.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					e.Lookup(ips[i&(len(ips)-1)])
					i++
				}
			})
		})
	}
	// The parts: the country database alone, the ASN tables alone.
	ips := benchAddrs(1<<16, false)
	if e.country != nil {
		b.Run("v4-country-only", func(b *testing.B) {
			i := 0
			for b.Loop() {
				e.country.lookup(ips[i&(len(ips)-1)])
				i++
			}
		})
	}
	if e.asn != nil {
		b.Run("v4-asn-only", func(b *testing.B) {
			i := 0
			for b.Loop() {
				e.asn.lookup(ips[i&(len(ips)-1)])
				i++
			}
		})
	}
}

// BenchmarkOpen measures loading the real files.
func BenchmarkOpen(b *testing.B) {
	geo := realDataDir(b)
	b.ReportAllocs()
	for b.Loop() {
		e, err := Open(Config{Dir: geo}, nil)
		if err != nil {
			b.Fatal(err)
		}
		e.Close()
	}
}
