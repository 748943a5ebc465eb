package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// check is one request and what its response must be.
type check struct {
	name  string
	path  string
	code  int
	check func(t *testing.T, r response) // optional, beyond the status
}

// run makes each request against h and checks the status; every
// response of the JSON API must be JSON.
func run(t *testing.T, h http.Handler, checks []check) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			r := get(h, c.path)
			if r.code != c.code {
				t.Fatalf("GET %s: %s; want %d", c.path, r, c.code)
			}
			if !json.Valid(r.body) {
				t.Fatalf("GET %s: body is not JSON: %s", c.path, r)
			}
			if r.code >= 400 {
				errorBody(t, r)
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

// errContains checks an error response's message.
func errContains(want ...string) func(*testing.T, response) {
	return func(t *testing.T, r response) {
		t.Helper()
		e := errorBody(t, r)
		for _, w := range want {
			if !strings.Contains(e.Error, w) {
				t.Errorf("error %q does not contain %q", e.Error, w)
			}
		}
	}
}

// queryErr checks a 400 that points at a column of the query.
func queryErr(col int, caret string) func(*testing.T, response) {
	return func(t *testing.T, r response) {
		t.Helper()
		e := errorBody(t, r)
		if e.Column != col || e.Line != 1 {
			t.Errorf("error at %d:%d; want 1:%d (%+v)", e.Line, e.Column, col, e)
		}
		if e.Caret != caret {
			t.Errorf("caret\n%s\nwant\n%s", e.Caret, caret)
		}
		// the raw JSON names the fields the brief promises to clients
		for _, k := range []string{`"column"`, `"caret"`, `"line"`} {
			if !bytes.Contains(r.body, []byte(k)) {
				t.Errorf("no %s in %s", k, r.body)
			}
		}
	}
}

func addrs(as ...netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func sortedStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func TestHost(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	host := func(want netip.Addr, ports []uint16, sensors bool) func(*testing.T, response) {
		return func(t *testing.T, r response) {
			var h store.Host
			r.json(t, &h)
			if h.IP != want {
				t.Errorf("ip %v, want %v", h.IP, want)
			}
			if !slices.Equal(h.Ports, ports) {
				t.Errorf("ports %v, want %v", h.Ports, ports)
			}
			if len(h.Services) != len(ports) {
				t.Errorf("%d services, want %d", len(h.Services), len(ports))
			}
			for _, sv := range h.Services {
				if sv.IP != want {
					t.Errorf("service of %v in host %v", sv.IP, want)
				}
				if sv.FirstSeen.IsZero() || sv.LastSeen.IsZero() {
					t.Errorf("service without first/last seen: %+v", sv)
				}
			}
			if (h.Profile != nil) != sensors {
				t.Errorf("sensor profile %+v; want one: %v", h.Profile, sensors)
			}
		}
	}
	network := func(want string, hosts ...netip.Addr) func(*testing.T, response) {
		return func(t *testing.T, r response) {
			var out struct {
				Network string       `json:"network"`
				Hosts   []store.Host `json:"hosts"`
			}
			r.json(t, &out)
			if out.Network != want {
				t.Errorf("network %q, want %q", out.Network, want)
			}
			var got []netip.Addr
			for _, h := range out.Hosts {
				got = append(got, h.IP)
			}
			if !slices.Equal(got, hosts) {
				t.Errorf("hosts %v, want %v", got, hosts)
			}
			if out.Hosts == nil && !bytes.Contains(r.body, []byte(`"hosts":[]`)) {
				t.Errorf("an empty network is not an empty list: %s", r.body)
			}
		}
	}
	run(t, s, []check{
		{"ipv4", "/api/v1/host/198.51.100.10", 200, func(t *testing.T, r response) {
			host(v4a, []uint16{22, 443}, true)(t, r)
			var h store.Host
			r.json(t, &h)
			if h.Geo.Country != "DE" || h.Geo.ASN != 24940 {
				t.Errorf("geo %+v", h.Geo)
			}
			if !slices.Equal(h.Vulns, []string{"CVE-2024-6387"}) || !slices.Equal(h.Tags, []string{"CDN"}) {
				t.Errorf("vulns %v tags %v", h.Vulns, h.Tags)
			}
			if len(h.CPEs) != 1 || !strings.HasPrefix(h.CPEs[0], "cpe:2.3:a:openbsd:openssh") {
				t.Errorf("cpes %v", h.CPEs)
			}
			var tls *record.TLS
			for _, sv := range h.Services {
				if sv.Port == 443 {
					tls = sv.TLS
				}
			}
			if tls == nil || !slices.Equal(tls.SANs, []string{"www.example.com", "example.com"}) {
				t.Errorf("tls %+v", tls)
			}
			if h.Profile.Events != 1 || h.Profile.Classification != "unknown" {
				t.Errorf("profile %+v", h.Profile)
			}
			// the banner is raw bytes, base64 in JSON, and comes back intact
			if got := string(h.Services[0].Banner); !strings.HasPrefix(got, "SSH-2.0-OpenSSH_8.9p1") {
				t.Errorf("banner %q", got)
			}
		}},
		{"ipv4 without sensors", "/api/v1/host/198.51.100.11", 200, host(v4b, []uint16{80}, false)},
		{"ipv4-mapped", "/api/v1/host/::ffff:198.51.100.11", 200, host(v4b, []uint16{80}, false)},
		{"sensors only", "/api/v1/host/185.220.101.1", 200, host(srcBrute, nil, true)},
		{"ipv6", "/api/v1/host/2001:db8::1", 200, host(v6a, []uint16{443}, false)},
		{"ipv6 escaped", "/api/v1/host/2001%3Adb8%3A%3A1", 200, host(v6a, []uint16{443}, false)},
		{"ipv6 hi top bit", "/api/v1/host/fd00::8", 200, host(v6hi, []uint16{22}, false)},
		{"ipv6 lo top bit", "/api/v1/host/2001:db8::8000:0:0:1", 200, host(v6lo, []uint16{80, 443}, false)},
		{"ipv6 sensors only, hi top bit", "/api/v1/host/fd00::66", 200, host(srcCensys, nil, true)},
		{"ipv6 long form", "/api/v1/host/2001:0db8:0000:0000:8000:0000:0000:0001", 200, host(v6lo, []uint16{80, 443}, false)},
		{"spaces around", "/api/v1/host/%20198.51.100.11%20", 200, host(v4b, []uint16{80}, false)},
		{"not found", "/api/v1/host/192.0.2.200", 404, errContains("192.0.2.200")},
		{"not found ipv6", "/api/v1/host/2001:db8::dead", 404, nil},
		{"bad ip", "/api/v1/host/nope", 400, errContains("not an IP address")},
		{"bad ip octet", "/api/v1/host/198.51.100.256", 400, nil},
		{"five octets", "/api/v1/host/1.2.3.4.5", 400, nil},
		{"zone", "/api/v1/host/fe80::1%25eth0", 400, nil},
		{"empty", "/api/v1/host/", 400, nil},
		{"cidr /28", "/api/v1/host/198.51.100.0/28", 200, network("198.51.100.0/28", v4a, v4b, v4c, v4d)},
		{"cidr host bits set", "/api/v1/host/198.51.100.13/30", 200, network("198.51.100.12/30", v4c, v4d)},
		{"cidr /24", "/api/v1/host/198.51.100.0/24", 200, network("198.51.100.0/24", v4a, v4b, v4c, v4d)},
		{"cidr /32", "/api/v1/host/203.0.113.5/32", 200, network("203.0.113.5/32", v4e)},
		{"cidr empty", "/api/v1/host/192.0.2.0/28", 200, network("192.0.2.0/28")},
		{"cidr last block", "/api/v1/host/255.255.255.0/24", 200, network("255.255.255.0/24")},
		{"cidr ipv6 /120", "/api/v1/host/2001:db8::/120", 200, network("2001:db8::/120", v6a)},
		{"cidr ipv6 /126 hi top bit", "/api/v1/host/fd00::8/126", 200, network("fd00::8/126", v6hi)},
		{"cidr ipv6 last block", "/api/v1/host/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", 200, network("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120")},
		{"cidr too big", "/api/v1/host/198.51.100.0/23", 400, errContains("more than 256")},
		{"cidr too big ipv6", "/api/v1/host/2001:db8::/64", 400, nil},
		{"cidr everything", "/api/v1/host/0.0.0.0/0", 400, nil},
		{"cidr bad bits", "/api/v1/host/198.51.100.0/33", 400, errContains("not an address or a CIDR")},
		{"cidr bad", "/api/v1/host/198.51.100.0/x", 400, nil},
		{"cidr two slashes", "/api/v1/host/198.51.100.0/28/1", 400, nil},
	})
}

func TestSearch(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	svcs := e.fx.services
	services := func(total int, n int) func(*testing.T, response) {
		return func(t *testing.T, r response) {
			var res store.ServiceResult
			r.json(t, &res)
			if res.Total != int64(total) || len(res.Services) != n {
				t.Errorf("total %d, %d services; want %d, %d", res.Total, len(res.Services), total, n)
			}
		}
	}
	var countries, orgs, products, tags []string
	for _, sv := range svcs {
		countries, orgs, products = append(countries, sv.Geo.Country), append(orgs, sv.Geo.Org), append(products, sv.Product)
		tags = append(tags, sv.Tags...)
	}
	run(t, s, []check{
		{"everything", "/api/v1/search", 200, services(len(svcs), len(svcs))},
		{"q", "/api/v1/search?" + qs("q", "product:nginx country:DE"), 200, func(t *testing.T, r response) {
			var res store.ServiceResult
			r.json(t, &res)
			if res.Total != 2 {
				t.Fatalf("total %d, want 2: %s", res.Total, r)
			}
			for _, sv := range res.Services {
				if sv.Product != "nginx" || sv.Geo.Country != "DE" {
					t.Errorf("service %v:%d does not match", sv.IP, sv.Port)
				}
			}
		}},
		{"free text in banner", "/api/v1/search?" + qs("q", "ubuntu"), 200, services(1, 1)},
		{"version order", "/api/v1/search?" + qs("q", "product:openssh version:<9.0"), 200, services(1, 1)},
		{"tls san wildcard", "/api/v1/search?" + qs("q", "tls.san:*.example.com"), 200, services(1, 1)},
		{"negation", "/api/v1/search?" + qs("q", "-country:DE"), 200, services(len(svcs)-4, len(svcs)-4)},
		{"ipv6 net", "/api/v1/search?" + qs("q", "net:2001:db8::/32"), 200, services(3, 3)},
		{"ipv6 hi top bit", "/api/v1/search?" + qs("q", "ip:fd00::8"), 200, services(1, 1)},
		{"ipv6 lo top bit", "/api/v1/search?" + qs("q", "ip:2001:db8::8000:0:0:1"), 200, services(2, 2)},
		{"ipv6 hi top bit net", "/api/v1/search?" + qs("q", "net:fc00::/7"), 200, services(1, 1)},
		{"ipv4 pattern", "/api/v1/search?" + qs("q", "ip:198.51.100.*"), 200, services(5, 5)},
		{"has vuln", "/api/v1/search?" + qs("q", "has:vuln"), 200, services(2, 2)},
		{"nothing", "/api/v1/search?" + qs("q", "port:9"), 200, services(0, 0)},
		{"facets", "/api/v1/search?" + qs("facets", "country,org,product:20", "limit", "0"), 200, func(t *testing.T, r response) {
			var res store.ServiceResult
			r.json(t, &res)
			for name, want := range map[string][]store.FacetValue{
				"country": topCounts(countries, 10),
				"org":     topCounts(orgs, 10),
				"product": topCounts(products, 20),
			} {
				if !slices.Equal(res.Facets[name], want) {
					t.Errorf("facet %s: %v, want %v", name, res.Facets[name], want)
				}
			}
			if len(res.Facets) != 3 || len(res.Services) != 0 || res.Total != int64(len(svcs)) {
				t.Errorf("%s", r)
			}
			// spot checks, independent of topCounts
			if f := res.Facets["country"]; len(f) != 4 || f[0] != (store.FacetValue{Value: "DE", Count: 4}) {
				t.Errorf("country facet %v", f)
			}
			if f := res.Facets["product"]; f[0] != (store.FacetValue{Value: "nginx", Count: 4}) {
				t.Errorf("product facet %v", f)
			}
		}},
		{"facet with query and limit", "/api/v1/search?" + qs("q", "country:DE,US", "facets", "product:2,tag"), 200, func(t *testing.T, r response) {
			var res store.ServiceResult
			r.json(t, &res)
			want := []store.FacetValue{{Value: "nginx", Count: 3}, {Value: "Apache httpd", Count: 1}}
			if !slices.Equal(res.Facets["product"], want) {
				t.Errorf("product %v, want %v", res.Facets["product"], want)
			}
			if want := topCounts([]string{"CDN", "RDP"}, 10); !slices.Equal(res.Facets["tag"], want) {
				t.Errorf("tag %v, want %v", res.Facets["tag"], want)
			}
		}},
		{"limit", "/api/v1/search?limit=3", 200, func(t *testing.T, r response) {
			services(len(svcs), 3)(t, r)
			if r.obj(t)["next"] == "" {
				t.Error("no next cursor")
			}
		}},
		{"limit max", "/api/v1/search?limit=1000", 200, services(len(svcs), len(svcs))},
		{"limit zero", "/api/v1/search?limit=0", 200, services(len(svcs), 0)},
		{"limit too big", "/api/v1/search?limit=1001", 400, errContains("limit")},
		{"limit negative", "/api/v1/search?limit=-1", 400, nil},
		{"limit not a number", "/api/v1/search?limit=ten", 400, nil},
		{"bad query", "/api/v1/search?" + qs("q", "port:22 prot:80"), 400,
			queryErr(9, "port:22 prot:80\n        ^~~~")},
		{"bad query unclosed", "/api/v1/search?" + qs("q", `http.title:"abc`), 400, func(t *testing.T, r response) {
			if e := errorBody(t, r); e.Column == 0 || !strings.Contains(e.Caret, "^") {
				t.Errorf("%+v", e)
			}
		}},
		{"bad query value", "/api/v1/search?" + qs("q", "port:70000"), 400, queryErr(6, "port:70000\n     ^~~~~")},
		{"bad query multibyte", "/api/v1/search?" + qs("q", "product:é prot:1"), 400, queryErr(11, "product:é prot:1\n          ^~~~")},
		{"event field in service query", "/api/v1/search?" + qs("q", "sensor:fra1"), 400, nil},
		{"query too long", "/api/v1/search?" + qs("q", strings.Repeat("a", query.MaxQueryLen+1)), 400, errContains("longer than")},
		{"bad facet", "/api/v1/search?" + qs("facets", "country,prodct"), 400, func(t *testing.T, r response) {
			e := errorBody(t, r)
			if !strings.Contains(e.Error, "facets: unknown field") || e.Column != 9 || e.Caret != "country,prodct\n        ^~~~~~" {
				t.Errorf("%+v", e)
			}
		}},
		{"facet not facetable", "/api/v1/search?" + qs("facets", "ip"), 400, errContains("cannot be a facet")},
		{"facet limit zero", "/api/v1/search?" + qs("facets", "country:0"), 400, nil},
		{"facet limit too big", "/api/v1/search?" + qs("facets", "country:1001"), 400, nil},
		{"facet twice", "/api/v1/search?" + qs("facets", "country,country"), 400, errContains("twice")},
		{"facet empty item", "/api/v1/search?" + qs("facets", "country,"), 400, nil},
		{"event facet", "/api/v1/search?" + qs("facets", "sensor"), 400, nil},
		{"too many facets", "/api/v1/search?" + qs("facets", "port,transport,state,protocol,product,version,cpe,country,asn,org,tag"), 400, errContains("at most 10")},
		{"bad cursor", "/api/v1/search?cursor=nope!", 400, errContains("cursor")},
		{"bad cursor base64", "/api/v1/search?cursor=czEyMwBhYmM", 400, errContains("cursor")},
		{"cursor too long", "/api/v1/search?cursor=" + strings.Repeat("A", 513), 400, nil},
		{"event cursor on services", "/api/v1/search?cursor=ZQAxAGFi", 400, nil},
		{"bad format", "/api/v1/search?format=xml", 400, errContains("format")},
	})
}

// serviceKey is the order of services in a search: (lo, hi, port,
// transport), unsigned.
func serviceKey(sv store.Service) string {
	hi, lo := query.AddrToHiLo(sv.IP)
	return fmt.Sprintf("%016x%016x%05d%s", lo, hi, sv.Port, sv.Transport)
}

func TestSearchPagination(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	var want []string
	for _, sv := range e.fx.services {
		want = append(want, serviceKey(store.Service{Service: sv}))
	}
	slices.Sort(want)
	for _, tc := range []struct{ q, limit string }{
		{"", "1"}, {"", "2"}, {"", "3"}, {"", "10"}, {"", "11"}, {"", "12"},
		{"net:2001:db8::/32 OR net:fd00::/8", "1"}, // every cursor is an IPv6 one
	} {
		t.Run(tc.q+"/"+tc.limit, func(t *testing.T) {
			var got []string
			cursor, pages := "", 0
			for {
				r := get(s, "/api/v1/search?"+qs("q", tc.q, "limit", tc.limit, "cursor", cursor))
				if r.code != 200 {
					t.Fatalf("page %d: %s", pages, r)
				}
				var res store.ServiceResult
				r.json(t, &res)
				pages++
				limit, _ := strconv.Atoi(tc.limit)
				if len(res.Services) > limit || len(res.Services) == 0 && pages > 1 {
					t.Fatalf("page %d has %d services (limit %d)", pages, len(res.Services), limit)
				}
				for _, sv := range res.Services {
					got = append(got, serviceKey(sv))
				}
				if res.Next == "" {
					break
				}
				if pages > 20 {
					t.Fatal("pagination does not end")
				}
				cursor = res.Next
			}
			w := want
			if tc.q != "" {
				w = nil
				for _, k := range want {
					if !strings.HasPrefix(k[16:], "0000ffff") && k[16:32] != "0000000000000000" {
						w = append(w, k) // IPv6: hi is neither 0 nor the IPv4-mapped 0
					}
				}
			}
			// in order, without duplicates or gaps
			if !slices.Equal(got, w) {
				t.Errorf("pages gave\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
			}
		})
	}
}

func TestSearchExport(t *testing.T) {
	e := getEnv(t)
	// MaxRows 100 makes the export page (100 rows at least): the fixture
	// fits one page; a store page size of 100 is the floor
	s := e.server(nil)
	want := map[string]bool{}
	for _, sv := range e.fx.services {
		want[fmt.Sprintf("%s:%d/%s", sv.IP, sv.Port, sv.Transport)] = true
	}

	t.Run("jsonl", func(t *testing.T) {
		r := get(s, "/api/v1/search?format=jsonl")
		if r.code != 200 || r.header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%s (%s)", r, r.header.Get("Content-Type"))
		}
		got := map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		for sc.Scan() {
			var sv store.Service
			if err := json.Unmarshal(sc.Bytes(), &sv); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			k := fmt.Sprintf("%s:%d/%s", sv.IP, sv.Port, sv.Transport)
			if got[k] {
				t.Errorf("%s twice", k)
			}
			got[k] = true
		}
		if len(got) != len(want) {
			t.Errorf("%d services exported, want %d", len(got), len(want))
		}
		for k := range want {
			if !got[k] {
				t.Errorf("%s missing", k)
			}
		}
	})

	t.Run("csv", func(t *testing.T) {
		r := get(s, "/api/v1/search?"+qs("format", "csv", "q", "product:nginx"))
		if r.code != 200 || r.header.Get("Content-Type") != "text/csv" ||
			!strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("%s (%v)", r, r.header)
		}
		rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 5 || rows[0][0] != "ip" || len(rows[0]) != 13 {
			t.Fatalf("%d rows, header %v", len(rows), rows[0])
		}
		for _, row := range rows[1:] {
			if row[5] != "nginx" {
				t.Errorf("row %v is not nginx", row)
			}
			if _, err := netip.ParseAddr(row[0]); err != nil {
				t.Errorf("ip %q: %v", row[0], err)
			}
			if _, err := time.Parse(time.RFC3339, row[12]); err != nil {
				t.Errorf("last_seen %q: %v", row[12], err)
			}
			if !want[row[0]+":"+row[1]+"/"+row[2]] {
				t.Errorf("row %v not in the fixture", row)
			}
		}
	})

	t.Run("paged", func(t *testing.T) {
		// an export runs page after page: with a store page of 100 and
		// eleven services this is one page, so check the paging with
		// a query-limited export matching it
		r := get(s, "/api/v1/search?"+qs("format", "jsonl", "q", "net:2001:db8::/32 OR net:fd00::/8"))
		if n := bytes.Count(r.body, []byte("\n")); r.code != 200 || n != 4 {
			t.Fatalf("%d lines: %s", n, r)
		}
	})

	t.Run("bad query is JSON", func(t *testing.T) {
		for _, f := range []string{"csv", "jsonl"} {
			r := get(s, "/api/v1/search?"+qs("format", f, "q", "prot:1"))
			if r.code != 400 {
				t.Fatalf("%s: %s", f, r)
			}
			errorBody(t, r)
		}
	})
}

func TestCount(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	run(t, s, []check{
		{"all", "/api/v1/count", 200, func(t *testing.T, r response) {
			if m := r.obj(t); m["total"] != float64(len(e.fx.services)) {
				t.Errorf("%s", r)
			}
		}},
		{"query and facets", "/api/v1/count?" + qs("q", "country:DE", "facets", "product,port:2"), 200, func(t *testing.T, r response) {
			var res struct {
				Total  int64                         `json:"total"`
				Facets map[string][]store.FacetValue `json:"facets"`
			}
			r.json(t, &res)
			if res.Total != 4 {
				t.Errorf("total %d", res.Total)
			}
			want := topCounts([]string{"OpenSSH", "nginx", "nginx", "dnsmasq"}, 10)
			if !slices.Equal(res.Facets["product"], want) {
				t.Errorf("product %v, want %v", res.Facets["product"], want)
			}
			if !slices.Equal(res.Facets["port"], []store.FacetValue{{Value: "22", Count: 1}, {Value: "53", Count: 1}}) {
				t.Errorf("port %v", res.Facets["port"])
			}
		}},
		{"bad query", "/api/v1/count?" + qs("q", "(port:22"), 400, func(t *testing.T, r response) {
			if e := errorBody(t, r); e.Column == 0 || e.Caret == "" {
				t.Errorf("%+v", e)
			}
		}},
		{"bad facet", "/api/v1/count?" + qs("facets", "nope"), 400, nil},
	})
}

func TestFields(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	fields := func(target string, want ...string) func(*testing.T, response) {
		return func(t *testing.T, r response) {
			var out struct {
				Target string `json:"target"`
				Fields []struct {
					Name  string `json:"name"`
					Kind  string `json:"kind"`
					Facet bool   `json:"facet"`
				} `json:"fields"`
				Syntax string `json:"syntax"`
			}
			r.json(t, &out)
			if out.Target != target || !strings.Contains(out.Syntax, "field:value") {
				t.Errorf("target %q syntax %.40q", out.Target, out.Syntax)
			}
			names := map[string]bool{}
			for _, f := range out.Fields {
				names[f.Name] = true
				if f.Kind == "" {
					t.Errorf("field %s without a kind", f.Name)
				}
			}
			for _, w := range want {
				if !names[w] {
					t.Errorf("no field %s", w)
				}
			}
		}
	}
	run(t, s, []check{
		{"services", "/api/v1/fields?target=services", 200, fields("services", "port", "product", "tls.san", "country")},
		{"events", "/api/v1/fields?target=events", 200, fields("events", "src.ip", "classification", "tag", "handshake")},
		{"singular", "/api/v1/fields?target=Event", 200, fields("events", "src.ip")},
		{"bad", "/api/v1/fields?target=bad", 400, errContains("target")},
		{"missing", "/api/v1/fields", 400, nil},
	})
}

func TestSensorIP(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	view := func(ip netip.Addr, verdict string, summary ...string) func(*testing.T, response) {
		return func(t *testing.T, r response) {
			var v struct {
				store.Profile
				Verdict string `json:"verdict"`
				Summary string `json:"summary"`
			}
			r.json(t, &v)
			evs := e.fx.eventsFrom(ip)
			sensors, dsts, ports, tags := map[string]bool{}, map[netip.Addr]bool{}, []uint16{}, []string{}
			first, last := evs[0].Time, evs[0].Time
			for _, ev := range evs {
				sensors[ev.Sensor], dsts[ev.Dst] = true, true
				ports, tags = append(ports, ev.DstPort), append(tags, ev.Tags...)
				if ev.Time.Before(first) {
					first = ev.Time
				}
				if ev.Time.After(last) {
					last = ev.Time
				}
			}
			slices.Sort(ports)
			if v.IP != ip || v.Events != int64(len(evs)) || v.Sensors != int64(len(sensors)) ||
				v.Destinations != int64(len(dsts)) || !slices.Equal(v.Ports, slices.Compact(ports)) ||
				!slices.Equal(v.Tags, sortedStrings(tags)) || !v.FirstSeen.Equal(first) || !v.LastSeen.Equal(last) {
				t.Errorf("profile %+v\nwant %d events, %d sensors, %d dsts, ports %v, tags %v, %v..%v",
					v.Profile, len(evs), len(sensors), len(dsts), ports, sortedStrings(tags), first, last)
			}
			if v.Verdict != verdict || v.Classification != verdict {
				t.Errorf("verdict %q, classification %q; want %q", v.Verdict, v.Classification, verdict)
			}
			for _, w := range summary {
				if !strings.Contains(v.Summary, w) {
					t.Errorf("summary %q does not say %q", v.Summary, w)
				}
			}
			if n := min(len(evs), 50); len(v.Recent) != n {
				t.Errorf("%d recent events, want %d", len(v.Recent), n)
			}
			for i, ev := range v.Recent {
				if ev.Src != ip || i > 0 && ev.Time.After(v.Recent[i-1].Time) {
					t.Errorf("recent event %d: %+v", i, ev)
				}
			}
		}
	}
	run(t, s, []check{
		{"benign", "/api/v1/sensors/ip/45.33.32.156", 200, view(srcShodan, "benign",
			"Internet-wide noise", "reached 3 sensor addresses on 3 sensors", "(3 events from", "Classified benign: Shodan, a known scanner.")},
		{"malicious", "/api/v1/sensors/ip/185.220.101.1", 200, view(srcBrute, "malicious",
			"reached only 1 sensor address(es)", "targeting specific hosts", "Classified malicious (tags: SSH_BRUTEFORCE).")},
		{"spoofable", "/api/v1/sensors/ip/203.0.113.99", 200, view(srcMirai, "malicious",
			"Classified malicious (tags: MIRAI, TELNET_SCAN).", "never completed a TCP handshake")},
		{"ipv6", "/api/v1/sensors/ip/2001:db8::bad", 200, view(srcRDP6, "malicious", "never completed")},
		{"ipv6 hi top bit", "/api/v1/sensors/ip/fd00::66", 200, view(srcCensys, "benign", "Internet-wide noise", "Censys")},
		{"unknown classification", "/api/v1/sensors/ip/198.51.100.10", 200, view(v4a, "unknown")},
		{"events=2", "/api/v1/sensors/ip/185.220.101.1?events=2", 200, func(t *testing.T, r response) {
			var p store.Profile
			r.json(t, &p)
			if len(p.Recent) != 2 || p.Recent[0].Username != "" && p.Recent[0].Username != "root" {
				t.Errorf("recent %+v", p.Recent)
			}
		}},
		{"events=0", "/api/v1/sensors/ip/185.220.101.1?events=0", 200, func(t *testing.T, r response) {
			if _, ok := r.obj(t)["recent"]; ok {
				t.Errorf("recent events with events=0: %s", r)
			}
		}},
		{"events too many", "/api/v1/sensors/ip/185.220.101.1?events=1001", 400, nil},
		{"events bad", "/api/v1/sensors/ip/185.220.101.1?events=x", 400, nil},
		{"not seen", "/api/v1/sensors/ip/198.51.100.11", 404, errContains("not been seen")},
		{"unknown", "/api/v1/sensors/ip/192.0.2.200", 404, nil},
		{"bad ip", "/api/v1/sensors/ip/300.1.1.1", 400, nil},
		{"cidr is not an ip", "/api/v1/sensors/ip/192.0.2.0%2F24", 400, nil},
	})
}

func TestSensorSearch(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	evs := e.fx.events
	events := func(total int, match func(record.Event) bool) func(*testing.T, response) {
		return func(t *testing.T, r response) {
			var res store.EventResult
			r.json(t, &res)
			if res.Total != int64(total) || len(res.Events) != min(total, 100) {
				t.Errorf("total %d, %d events; want %d", res.Total, len(res.Events), total)
			}
			for i, ev := range res.Events {
				if match != nil && !match(ev) {
					t.Errorf("event %+v does not match", ev)
				}
				if i > 0 && ev.Time.After(res.Events[i-1].Time) {
					t.Errorf("events not newest first")
				}
			}
		}
	}
	count := func(f func(record.Event) bool) int {
		n := 0
		for _, ev := range evs {
			if f(ev) {
				n++
			}
		}
		return n
	}
	malicious := func(ev record.Event) bool { return ev.Classification == "malicious" }
	var tags, countries []string
	for _, ev := range evs {
		if malicious(ev) {
			tags, countries = append(tags, ev.Tags...), append(countries, ev.SrcGeo.Country)
		}
	}
	run(t, s, []check{
		{"everything", "/api/v1/sensors/search", 200, events(len(evs), nil)},
		{"classification", "/api/v1/sensors/search?" + qs("q", "classification:malicious"), 200, events(count(malicious), malicious)},
		{"tag", "/api/v1/sensors/search?" + qs("q", "tag:shodan"), 200, events(3, func(ev record.Event) bool { return ev.Actor == "Shodan" })},
		{"handshake", "/api/v1/sensors/search?" + qs("q", "handshake:false"), 200, events(3, func(ev record.Event) bool { return !ev.Handshake })},
		{"payload text", "/api/v1/sensors/search?" + qs("q", "wp-login"), 200, events(1, func(ev record.Event) bool { return ev.HTTPPath == "/wp-login.php" })},
		{"ipv6 source", "/api/v1/sensors/search?" + qs("q", "src.ip:2001:db8::bad"), 200, events(1, func(ev record.Event) bool { return ev.Src == srcRDP6 })},
		{"ipv6 hi top bit", "/api/v1/sensors/search?" + qs("q", "src.ip:fd00::/8"), 200, events(2, func(ev record.Event) bool { return ev.Src == srcCensys })},
		{"ipv6 destination", "/api/v1/sensors/search?" + qs("q", "dst.ip:2001:db8:5::/48"), 200, events(1, nil)},
		{"actor case", "/api/v1/sensors/search?" + qs("q", "actor:CENSYS"), 200, events(2, nil)},
		{"facets", "/api/v1/sensors/search?" + qs("q", "classification:malicious", "facets", "tag,src.country,handshake", "limit", "0"), 200, func(t *testing.T, r response) {
			var res store.EventResult
			r.json(t, &res)
			if !slices.Equal(res.Facets["tag"], topCounts(tags, 10)) || !slices.Equal(res.Facets["src.country"], topCounts(countries, 10)) {
				t.Errorf("facets %v; want tag %v, src.country %v", res.Facets, topCounts(tags, 10), topCounts(countries, 10))
			}
			if !slices.Equal(res.Facets["handshake"], []store.FacetValue{{Value: "false", Count: 3}, {Value: "true", Count: 3}}) {
				t.Errorf("handshake %v", res.Facets["handshake"])
			}
			if res.Events == nil || len(res.Events) != 0 {
				t.Errorf("events %v with limit 0", res.Events)
			}
		}},
		{"bad query", "/api/v1/sensors/search?" + qs("q", "classification:evil"), 400, func(t *testing.T, r response) {
			if e := errorBody(t, r); e.Column != 16 || !strings.Contains(e.Caret, "^~~~") {
				t.Errorf("%+v", e)
			}
		}},
		{"service field", "/api/v1/sensors/search?" + qs("q", "product:nginx"), 400, nil},
		{"service facet", "/api/v1/sensors/search?" + qs("facets", "product"), 400, nil},
		{"bad cursor", "/api/v1/sensors/search?cursor=xyz", 400, nil},
		{"service cursor", "/api/v1/sensors/search?cursor=cwAxADIAMwB0Y3A", 400, nil},
		{"limit too big", "/api/v1/sensors/search?limit=5000", 400, nil},
	})

	t.Run("pagination", func(t *testing.T) {
		want := map[record.ID]bool{}
		for _, ev := range evs {
			want[ev.ID] = true
		}
		for _, limit := range []int{1, 2, 5, 12} {
			got := map[record.ID]bool{}
			cursor, last := "", time.Time{}
			for page := 0; ; page++ {
				r := get(s, "/api/v1/sensors/search?"+qs("limit", strconv.Itoa(limit), "cursor", cursor))
				if r.code != 200 || page > 20 {
					t.Fatalf("limit %d page %d: %s", limit, page, r)
				}
				var res store.EventResult
				r.json(t, &res)
				for _, ev := range res.Events {
					if got[ev.ID] || !want[ev.ID] {
						t.Errorf("limit %d: event %v twice or unknown", limit, ev.ID)
					}
					if !last.IsZero() && ev.Time.After(last) {
						t.Errorf("limit %d: out of order", limit)
					}
					got[ev.ID], last = true, ev.Time
				}
				if res.Next == "" {
					break
				}
				cursor = res.Next
			}
			if len(got) != len(want) {
				t.Errorf("limit %d: %d events, want %d", limit, len(got), len(want))
			}
		}
	})
}

func TestSensorStats(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	var byCountry, byTag, byPort, byASN, malCountry []string
	for _, ev := range e.fx.events {
		byCountry = append(byCountry, ev.SrcGeo.Country)
		byTag = append(byTag, ev.Tags...)
		byPort = append(byPort, strconv.Itoa(int(ev.DstPort)))
		byASN = append(byASN, strconv.Itoa(int(ev.SrcGeo.ASN)))
		if ev.Classification == "malicious" {
			malCountry = append(malCountry, ev.SrcGeo.Country)
		}
	}
	buckets := func(by, window string, want []store.FacetValue) func(*testing.T, response) {
		return func(t *testing.T, r response) {
			var out struct {
				Window  string         `json:"window"`
				By      string         `json:"by"`
				Buckets []store.Bucket `json:"buckets"`
			}
			r.json(t, &out)
			if out.By != by || out.Window != window {
				t.Errorf("by %q window %q; want %q %q", out.By, out.Window, by, window)
			}
			var got []store.FacetValue
			for _, b := range out.Buckets {
				got = append(got, store.FacetValue{Value: b.Key, Count: b.Count})
			}
			if !slices.Equal(got, want) {
				t.Errorf("buckets %v\nwant %v", got, want)
			}
			if out.Buckets == nil {
				t.Errorf("buckets null: %s", r)
			}
		}
	}
	run(t, s, []check{
		{"default", "/api/v1/sensors/stats", 200, buckets("src_country", "15m0s", topCounts(byCountry, 50))},
		{"src_country", "/api/v1/sensors/stats?window=1h&by=src_country", 200, buckets("src_country", "1h0m0s", topCounts(byCountry, 50))},
		{"tag", "/api/v1/sensors/stats?window=1h&by=tag", 200, buckets("tag", "1h0m0s", topCounts(byTag, 50))},
		{"dst_port", "/api/v1/sensors/stats?window=7d&by=dst_port&limit=3", 200, buckets("dst_port", "168h0m0s", topCounts(byPort, 3))},
		{"asn", "/api/v1/sensors/stats?window=1h&by=asn", 200, buckets("asn", "1h0m0s", topCounts(byASN, 50))},
		{"src", "/api/v1/sensors/stats?window=1h&by=src", 200, func(t *testing.T, r response) {
			// ties are in the order of the stored form: compare as a set
			var out struct{ Buckets []store.Bucket }
			r.json(t, &out)
			got := map[string]int64{}
			for i, b := range out.Buckets {
				got[b.Key] = b.Count
				if i > 0 && b.Count > out.Buckets[i-1].Count {
					t.Errorf("buckets not by count: %v", out.Buckets)
				}
			}
			want := map[string]int64{}
			for _, ev := range e.fx.events {
				want[ev.Src.String()]++
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("buckets %v, want %v", got, want)
			}
		}},
		{"query", "/api/v1/sensors/stats?" + qs("window", "1h", "q", "classification:malicious"), 200, buckets("src_country", "1h0m0s", topCounts(malCountry, 50))},
		{"empty window", "/api/v1/sensors/stats?window=1s", 200, buckets("src_country", "1s", nil)},
		{"bad by", "/api/v1/sensors/stats?by=color", 400, errContains("cannot group by")},
		{"bad window", "/api/v1/sensors/stats?window=forever", 400, errContains("window")},
		{"zero window", "/api/v1/sensors/stats?window=0s", 400, nil},
		{"negative window", "/api/v1/sensors/stats?window=-1h", 400, nil},
		{"window too long", "/api/v1/sensors/stats?window=367d", 400, nil},
		{"limit zero", "/api/v1/sensors/stats?limit=0", 400, nil},
		{"bad query", "/api/v1/sensors/stats?" + qs("q", "tag:"), 400, func(t *testing.T, r response) {
			if e := errorBody(t, r); e.Column == 0 {
				t.Errorf("%+v", e)
			}
		}},
	})
}

func TestMatrixAndTimeline(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	cells := map[[2]string]int64{}
	var tags []string
	for _, ev := range e.fx.events {
		cells[[2]string{ev.SrcGeo.Country, ev.DstCountry}]++
		tags = append(tags, ev.Tags...)
	}
	run(t, s, []check{
		{"matrix", "/api/v1/sensors/matrix", 200, func(t *testing.T, r response) {
			var out struct {
				Window string       `json:"window"`
				Cells  []store.Cell `json:"cells"`
			}
			r.json(t, &out)
			got := map[[2]string]int64{}
			for i, c := range out.Cells {
				got[[2]string{c.Src, c.Dst}] += c.Count
				if i > 0 && c.Count > out.Cells[i-1].Count {
					t.Errorf("cells not by count")
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(cells) || out.Window != "1h0m0s" {
				t.Errorf("cells %v, want %v (%s)", got, cells, out.Window)
			}
		}},
		{"matrix empty window", "/api/v1/sensors/matrix?window=1ms", 200, func(t *testing.T, r response) {
			if !bytes.Contains(r.body, []byte(`"cells":[]`)) {
				t.Errorf("%s", r)
			}
		}},
		{"matrix bad window", "/api/v1/sensors/matrix?window=1y", 400, nil},
		{"timeline", "/api/v1/sensors/timeline?window=1h&step=5m&by=tag&top=3", 200, func(t *testing.T, r response) {
			var out struct {
				Window, Step, By string
				Series           []store.Series
			}
			r.json(t, &out)
			top := topCounts(tags, 3)
			if len(out.Series) != 3 || out.Step != "5m0s" || out.By != "tag" {
				t.Fatalf("%s", r)
			}
			for _, sr := range out.Series {
				var n int64
				for i, p := range sr.Points {
					n += p.Count
					if i > 0 && !p.Time.After(sr.Points[i-1].Time) {
						t.Errorf("%s: points out of order", sr.Key)
					}
					if p.Time.Before(e.now.Add(-2*time.Hour)) || p.Time.After(time.Now()) {
						t.Errorf("%s: point at %v", sr.Key, p.Time)
					}
				}
				i := slices.IndexFunc(top, func(f store.FacetValue) bool { return f.Value == sr.Key })
				if i < 0 || top[i].Count != n {
					t.Errorf("series %s: %d events; top tags %v", sr.Key, n, top)
				}
			}
		}},
		{"timeline by src_country", "/api/v1/sensors/timeline?by=src_country", 200, func(t *testing.T, r response) {
			var out struct{ Series []store.Series }
			r.json(t, &out)
			if len(out.Series) != 4 { // US, DE, CN, NL
				t.Errorf("%d series, want 4", len(out.Series))
			}
		}},
		{"timeline bad by", "/api/v1/sensors/timeline?by=color", 400, errContains("cannot group by")},
		{"timeline step too small", "/api/v1/sensors/timeline?window=1h&step=1ms", 400, errContains("too many points")},
		{"timeline step above window", "/api/v1/sensors/timeline?window=1h&step=2h", 400, nil},
		{"timeline top zero", "/api/v1/sensors/timeline?top=0", 400, nil},
		{"timeline top too big", "/api/v1/sensors/timeline?top=51", 400, nil},
		{"timeline bad window", "/api/v1/sensors/timeline?window=nope", 400, nil},
		{"timeline tiny window", "/api/v1/sensors/timeline?window=1us&step=100ns", 200, nil},
	})
}

func TestBulk(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	small := e.server(func(c *api.Config) { c.MaxBody = 256 })
	post := func(h http.Handler, body string) response {
		return do(h, req{method: "POST", path: "/api/v1/bulk", body: []byte(body)})
	}
	ips := func(n int, ip string) string {
		l := make([]string, n)
		for i := range l {
			l[i] = ip
		}
		b, _ := json.Marshal(map[string][]string{"ips": l})
		return string(b)
	}

	t.Run("valid", func(t *testing.T) {
		r := post(s, `{"ips": ["198.51.100.10", "45.33.32.156", "192.0.2.200", "2001:db8::8000:0:0:1", "::ffff:198.51.100.11", "fd00::66", " 203.0.113.5 "]}`)
		if r.code != 200 {
			t.Fatal(r)
		}
		var out struct{ Results []store.Summary }
		r.json(t, &out)
		want := []struct {
			ip    netip.Addr
			ports []uint16
			noise bool
			class string
			actor string
		}{
			{v4a, []uint16{22, 443}, true, "unknown", ""},
			{srcShodan, []uint16{}, true, "benign", "Shodan"},
			{unknownIP, []uint16{}, false, "", ""},
			{v6lo, []uint16{80, 443}, false, "", ""},
			{v4b, []uint16{80}, false, "", ""},
			{srcCensys, []uint16{}, true, "benign", "Censys"},
			{v4e, []uint16{80, 8080}, false, "", ""},
		}
		if len(out.Results) != len(want) {
			t.Fatalf("%d results: %s", len(out.Results), r)
		}
		for i, w := range want {
			g := out.Results[i]
			if g.IP != w.ip || !slices.Equal(g.Ports, w.ports) || g.Noise != w.noise || g.Classification != w.class || g.Actor != w.actor {
				t.Errorf("result %d: %+v; want %+v", i, g, w)
			}
		}
		if g := out.Results[0]; !slices.Equal(g.Vulns, []string{"CVE-2024-6387"}) || !slices.Contains(g.Tags, "CDN") || !slices.Contains(g.Tags, "HTTP_SCANNER") {
			t.Errorf("198.51.100.10: %+v", g)
		}
		if g := out.Results[2]; g.CPEs == nil || g.Tags == nil || g.Vulns == nil || !g.LastSeen.IsZero() {
			t.Errorf("unknown address: %+v (lists must be [], not null)", g)
		}
	})

	for _, tc := range []struct {
		name, body string
		code       int
		msg        string
	}{
		{"max", ips(10000, "198.51.100.10"), 200, ""},
		{"too many", ips(10001, "198.51.100.10"), 400, "1 to 10000"},
		{"none", `{"ips": []}`, 400, "1 to 10000"},
		{"null", `{"ips": null}`, 400, ""},
		{"no ips", `{}`, 400, ""},
		{"bad ip", `{"ips": ["198.51.100.10", "nope"]}`, 400, "ips[1]"},
		{"cidr", `{"ips": ["198.51.100.0/24"]}`, 400, "ips[0]"},
		{"zone", `{"ips": ["fe80::1%eth0"]}`, 400, ""},
		{"malformed", `{"ips": [`, 400, "body"},
		{"not json", `ips=1.2.3.4`, 400, ""},
		{"wrong type", `{"ips": "198.51.100.10"}`, 400, ""},
		{"numbers", `{"ips": [1, 2]}`, 400, ""},
		{"empty body", ``, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(s, tc.body)
			if r.code != tc.code || !json.Valid(r.body) {
				t.Fatalf("%s; want %d", r, tc.code)
			}
			if tc.code != 200 {
				errContains(tc.msg)(t, r)
			}
		})
	}

	t.Run("oversized", func(t *testing.T) {
		r := post(small, ips(20, "198.51.100.10"))
		if r.code != http.StatusRequestEntityTooLarge {
			t.Fatal(r)
		}
		errContains("larger than 256 bytes")(t, r)
		if r := post(small, `{"ips": ["198.51.100.10"]}`); r.code != 200 {
			t.Errorf("a small body on the small server: %s", r)
		}
	})
	t.Run("get is not allowed", func(t *testing.T) {
		if r := get(s, "/api/v1/bulk"); r.code/100 != 4 || !json.Valid(r.body) {
			t.Errorf("%s", r)
		}
	})
}

func TestCommunity(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	lastDay := func(ip netip.Addr) string {
		var last time.Time
		for _, ev := range e.fx.eventsFrom(ip) {
			if ev.Time.After(last) {
				last = ev.Time
			}
		}
		return last.Format(time.DateOnly)
	}
	noise := func(ip netip.Addr, class, name string) func(*testing.T, response) {
		return func(t *testing.T, r response) {
			var c api.Community
			r.json(t, &c)
			want := api.Community{IP: ip.String(), Noise: true, Classification: class, Name: name,
				Link: "https://vantage.test/ip/" + ip.String(), LastSeen: lastDay(ip), Message: "Success"}
			if c != want {
				t.Errorf("%+v\nwant %+v", c, want)
			}
			// the GreyNoise shape has riot even when false
			if m := r.obj(t); m["riot"] != false || m["noise"] != true {
				t.Errorf("%s", r)
			}
		}
	}
	notFound := func(ip string) func(*testing.T, response) {
		return func(t *testing.T, r response) {
			m := r.obj(t)
			if m["ip"] != ip || m["noise"] != false || m["riot"] != false ||
				!strings.Contains(fmt.Sprint(m["message"]), "not observed") {
				t.Errorf("%s", r)
			}
			for _, k := range []string{"classification", "name", "last_seen", "link"} {
				if _, ok := m[k]; ok {
					t.Errorf("404 shape has %s: %s", k, r)
				}
			}
		}
	}
	for _, c := range []check{
		{"benign", "/v3/community/45.33.32.156", 200, noise(srcShodan, "benign", "Shodan")},
		{"malicious without actor", "/v3/community/203.0.113.99", 200, noise(srcMirai, "malicious", "unknown")},
		{"ipv6", "/v3/community/2001:db8::bad", 200, noise(srcRDP6, "malicious", "unknown")},
		{"ipv6 hi top bit", "/v3/community/fd00::66", 200, noise(srcCensys, "benign", "Censys")},
		{"ipv4-mapped", "/v3/community/::ffff:45.33.32.156", 200, noise(srcShodan, "benign", "Shodan")},
		{"unknown", "/v3/community/192.0.2.200", 404, notFound("192.0.2.200")},
		{"services only", "/v3/community/198.51.100.11", 404, notFound("198.51.100.11")},
		{"unknown ipv6", "/v3/community/2001:db8::dead", 404, notFound("2001:db8::dead")},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := get(s, c.path)
			if r.code != c.code {
				t.Fatalf("%s; want %d", r, c.code)
			}
			c.check(t, r)
		})
	}
	run(t, s, []check{{"bad ip", "/v3/community/not-an-ip", 400, nil}})
}

func TestInternetDB(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	want := map[string]api.InternetDB{
		"/internetdb/198.51.100.10": {IP: "198.51.100.10", Ports: []uint16{22, 443},
			Hostnames: []string{"www.example.com", "example.com"},
			CPEs:      []string{"cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*"}, Tags: []string{"CDN"}, Vulns: []string{"CVE-2024-6387"}},
		"/internetdb/198.51.100.11": {IP: "198.51.100.11", Ports: []uint16{80}, Hostnames: []string{}, CPEs: []string{}, Tags: []string{}, Vulns: []string{}},
		"/internetdb/2001:db8::8000:0:0:1": {IP: "2001:db8::8000:0:0:1", Ports: []uint16{80, 443},
			Hostnames: []string{"lo.example.org"}, CPEs: []string{}, Tags: []string{}, Vulns: []string{}},
		"/internetdb/fd00::8": {IP: "fd00::8", Ports: []uint16{22}, Hostnames: []string{}, CPEs: []string{}, Tags: []string{}, Vulns: []string{}},
	}
	for path, w := range want {
		t.Run(path, func(t *testing.T) {
			r := get(s, path)
			if r.code != 200 {
				t.Fatal(r)
			}
			var got api.InternetDB
			r.json(t, &got)
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", w) {
				t.Errorf("%+v\nwant %+v", got, w)
			}
			// every list is present, never null: clients index them
			m := r.obj(t)
			for _, k := range []string{"ports", "hostnames", "cpes", "tags", "vulns"} {
				if _, ok := m[k].([]any); !ok {
					t.Errorf("%s is %v", k, m[k])
				}
			}
		})
	}
	detail := func(t *testing.T, r response) {
		if m := r.obj(t); m["detail"] != "No information available" || len(m) != 1 {
			t.Errorf("%s", r)
		}
	}
	for _, c := range []check{
		{"unknown", "/internetdb/192.0.2.200", 404, detail},
		{"sensors only", "/internetdb/185.220.101.1", 404, detail},
		{"unknown ipv6", "/internetdb/2001:db8::dead", 404, detail},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := get(s, c.path)
			if r.code != c.code {
				t.Fatalf("%s; want %d", r, c.code)
			}
			c.check(t, r)
		})
	}
	run(t, s, []check{{"bad ip", "/internetdb/1.2.3", 400, nil}})
}

func TestOperational(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	t.Run("healthz", func(t *testing.T) {
		if r := get(s, "/healthz"); r.code != 200 || string(r.body) != "ok\n" {
			t.Errorf("%s", r)
		}
	})
	t.Run("readyz", func(t *testing.T) {
		if r := get(s, "/readyz"); r.code != 200 || string(r.body) != "ready\n" {
			t.Errorf("%s", r)
		}
		down := e.server(func(c *api.Config) {
			c.Ready = func(ctx context.Context) error { return errors.New("bus not connected") }
		})
		r := get(down, "/readyz")
		if r.code != http.StatusServiceUnavailable {
			t.Fatalf("%s", r)
		}
		errContains("not ready", "bus not connected")(t, r)
		if r := get(e.server(func(c *api.Config) { c.Ready = nil }), "/readyz"); r.code != 200 {
			t.Errorf("no readiness check: %s", r)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		get(s, "/api/v1/search?limit=1")
		get(s, "/api/v1/host/nope")
		r := get(s, "/metrics")
		if r.code != 200 {
			t.Fatal(r)
		}
		for _, w := range []string{
			"vantage_api_requests_total",
			`vantage_api_requests_total{code="200",route="GET /api/v1/search"} 1`,
			`vantage_api_requests_total{code="400",route="GET /api/v1/host/{addr...}"} 1`,
			"vantage_api_request_seconds_bucket",
			"go_goroutines",
		} {
			if !bytes.Contains(r.body, []byte(w)) {
				t.Errorf("metrics lack %s", w)
			}
		}
	})
	t.Run("metrics on a given registry", func(t *testing.T) {
		m := api.NewMetrics(prometheus.NewRegistry())
		s := e.server(func(c *api.Config) { c.Metrics = m })
		get(s, "/api/v1/count")
		var buf strings.Builder
		mfs, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			buf.WriteString(mf.GetName() + "\n")
		}
		if !strings.Contains(buf.String(), "vantage_api_requests_total") || strings.Contains(buf.String(), "go_goroutines") {
			t.Errorf("metrics %s", buf.String())
		}
	})
	run(t, s, []check{
		{"unknown endpoint", "/api/v1/nope", 404, errContains("no such endpoint", "/api/v1/nope")},
		{"unknown version", "/api/v2/search", 404, nil},
		{"api root", "/api/", 404, nil},
	})
	t.Run("wrong method", func(t *testing.T) {
		for _, m := range []string{"DELETE", "PUT", "POST", "PATCH"} {
			r := do(s, req{method: m, path: "/api/v1/search"})
			if r.code/100 != 4 || !json.Valid(r.body) {
				t.Errorf("%s /api/v1/search: %s", m, r)
			}
		}
	})
	t.Run("usage", func(t *testing.T) {
		r := do(s, req{path: "/api/v1/usage", header: bearer(e.admin)})
		var u store.Usage
		r.json(t, &u)
		if r.code != 200 || u.Tables["services"].Rows != int64(len(e.fx.services)) || u.Tables["events"].Rows != int64(len(e.fx.events)) || u.Bytes <= 0 {
			t.Errorf("%s", r)
		}
		if r := do(s, req{path: "/api/v1/usage", header: bearer(e.read)}); r.code != 403 {
			t.Errorf("usage with a read key: %s", r)
		}
	})
	t.Run("json is not html-escaped", func(t *testing.T) {
		r := get(s, "/api/v1/search?"+qs("q", "a<b>&"))
		if r.code != 200 && r.code != 400 || bytes.Contains(r.body, []byte(`\u003c`)) {
			t.Errorf("%s", r)
		}
	})
	t.Run("sweep keeps active limiters", func(t *testing.T) {
		rl := e.server(func(c *api.Config) { c.RateLimit, c.Burst = 0.001, 1 })
		if r := get(rl, "/api/v1/count"); r.code != 200 {
			t.Fatal(r)
		}
		rl.SweepLimiters()
		if r := get(rl, "/api/v1/count"); r.code != 429 {
			t.Errorf("after a sweep, an active principal's bucket is kept: %s", r)
		}
	})
}
