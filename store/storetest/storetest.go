// Package storetest is the query suite every store.Store must answer
// alike: a fixed fixture (services observed twice, sensor events from
// IPv4 and IPv6 sources, binary banners and payloads with invalid UTF-8
// and NUL bytes, times with microseconds), ingested in three calls (the
// last a redelivery that must store nothing), then searches with facets
// and cursors, lookups, summaries, profiles, window statistics, the
// country matrix, timelines, usage and a purge. Every answer is compared
// with the want values in testdata/answers.json, so two stores that pass
// answer every question identically.
//
// Regenerate the want values (after a deliberate change, from the DuckDB
// store) with VANTAGE_UPDATE_ANSWERS=1 go test -tags duckdb_arrow ./store/duckdb -run TestSuite.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// Now is the fixture's present: every relative time counts from it.
var Now = time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)

// The fixture's binary data: invalid UTF-8, NUL bytes, control bytes.
var (
	HTTPBanner = []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n\x00\xff\xfe<title>Welcome to nginx</title>\x00")
	SSHBanner  = []byte("SSH-2.0-OpenSSH_7.4\r\n")
	Payload    = []byte("GET /cgi-bin/.%2e/bin/sh HTTP/1.1\r\nUser-Agent: zgrab/0.x\r\n\r\n\x00\x01\x02\xc3\x28\xff")
	Binary     = []byte{0x00, 0xff, 0xfe, 0x80, 0x00, 0x7f, '\'', '\\', '"', 0x00}
)

func at(d time.Duration, micros int) time.Time {
	return Now.Add(-d).Add(time.Duration(micros) * time.Microsecond)
}

func svc(scan, ip string, port uint16, transport string, t time.Time) record.Service {
	a := netip.MustParseAddr(ip)
	return record.Service{ID: record.ServiceID(scan, a, port, transport), Time: t, ScanID: scan, IP: a, Port: port,
		Transport: transport, State: "open", TTL: 57, Window: 64240}
}

// Batches are the fixture, in the three ingest calls of the suite (the
// third is a redelivery of the first two).
func Batches() [][]*record.Batch {
	ssh := svc("scan-a", "203.0.113.10", 22, "tcp", at(90*time.Minute, 123456))
	ssh.Protocol, ssh.Product, ssh.Version, ssh.Banner = "ssh", "OpenSSH", "7.4", SSHBanner
	ssh.CPE = []string{"cpe:2.3:a:openbsd:openssh:7.4:*:*:*:*:*:*:*"}
	ssh.Vulns = []string{"CVE-2018-15473"}
	ssh.SSH = &record.SSH{Banner: "SSH-2.0-OpenSSH_7.4", HASSH: "b12d2871a1189eff20364cf5333619ee", HostKeySHA256: "SHA256:abc"}
	ssh.Geo = record.Geo{Country: "DE", ASN: 64500, Org: "Hetzner Online"}

	web := svc("scan-a", "203.0.113.10", 80, "tcp", at(89*time.Minute, 5))
	web.Protocol, web.Product, web.Version, web.Banner = "http", "nginx", "1.18.0", HTTPBanner
	web.HTTP = &record.HTTP{Status: 200, Title: "Welcome to nginx", Server: "nginx/1.18.0", FaviconHash: -1292923998,
		Headers: []record.Header{{Name: "Server", Value: "nginx/1.18.0"}}}
	web.CPE = []string{"cpe:2.3:a:f5:nginx:1.18.0:*:*:*:*:*:*:*"}
	web.Geo = ssh.Geo

	tls := svc("scan-a", "203.0.113.11", 443, "tcp", at(80*time.Minute, 999999))
	tls.Protocol, tls.Product, tls.Version = "http", "Apache httpd", "2.4.49"
	tls.HTTP = &record.HTTP{Status: 403, Title: "Forbidden", Server: "Apache/2.4.49"}
	tls.TLS = &record.TLS{Subject: "CN=www.example.com", Issuer: "CN=Let's Encrypt R3", SANs: []string{"www.example.com", "example.com"},
		SHA256: "3f0a11", JA3S: "ec74a5c51106f0419184d0dd08fb05bc", NotAfter: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Chain: [][]byte{Binary}}
	tls.CPE = []string{"cpe:2.3:a:apache:http_server:2.4.49:*:*:*:*:*:*:*"}
	tls.Vulns = []string{"CVE-2021-41773", "CVE-2021-42013"}
	tls.Tags = []string{"KEV"}
	tls.Geo = record.Geo{Country: "US", ASN: 13335, Org: "Cloudflare, Inc."}

	rdp := svc("scan-a", "203.0.113.12", 3389, "tcp", at(70*time.Minute, 42))
	rdp.Geo = record.Geo{Country: "US", ASN: 13335, Org: "Cloudflare, Inc."}

	v6 := svc("scan-a", "2001:db8::5", 22, "tcp", at(60*time.Minute, 7))
	v6.Protocol, v6.Product, v6.Version, v6.Banner = "ssh", "OpenSSH", "8.9p1", Binary
	v6.Geo = record.Geo{Country: "FR", ASN: 16276, Org: "OVH SAS", Label: "lab"}

	snmp := svc("scan-a", "198.51.100.7", 161, "udp", at(50*time.Minute, 314159))
	snmp.Protocol, snmp.Banner = "snmp", []byte("public\x00\x04\xff")
	snmp.Geo = record.Geo{Country: "NL"}
	snmp.Data = map[string]string{"community": "public"}

	// later: a bare SYN-ACK on the grabbed SSH port (keeps what the grab
	// knew), an older observation of the RDP port (moves first_seen only)
	ssh2 := svc("scan-b", "203.0.113.10", 22, "tcp", at(20*time.Minute, 777))
	ssh2.Geo = record.Geo{Country: "DE", ASN: 64500, Org: "Hetzner Online"}
	rdpOld := svc("scan-b", "203.0.113.12", 3389, "tcp", at(110*time.Minute, 1))
	rdpOld.State, rdpOld.Product = "closed", "ignored"
	rdpOld.Geo = rdp.Geo

	evs := events()
	a := &record.Batch{ID: record.HashID("batch", "a"), Producer: "scanner/a", Services: []record.Service{ssh, web, tls, rdp, v6, snmp},
		Events: evs[:20]}
	b := &record.Batch{ID: record.HashID("batch", "b"), Producer: "sensor/fra1", Events: evs[20:35]}
	c := &record.Batch{ID: record.HashID("batch", "c"), Producer: "scanner/b", Services: []record.Service{ssh2, rdpOld},
		Events: evs[35:]}
	return [][]*record.Batch{{a, b}, {c, b}, {a, b, c}}
}

// source is a scanner the sensors saw.
type source struct {
	ip, country, org, class, actor string
	asn                            uint32
	tags                           []string
	ports                          []uint16
	handshake                      bool
}

var sources = []source{
	{ip: "192.0.2.1", country: "CN", asn: 4134, org: "Chinanet", class: "malicious", tags: []string{"TCP_SYN", "MIRAI"}, ports: []uint16{23, 2323}},
	{ip: "192.0.2.2", country: "US", asn: 396982, org: "Google LLC", class: "benign", actor: "SHODAN",
		tags: []string{"HTTP_SCANNER", "SHODAN"}, ports: []uint16{80, 8080}, handshake: true},
	{ip: "192.0.2.3", country: "RU", asn: 12389, org: "Rostelecom", class: "unknown", tags: []string{"RDP_SCANNER", "TCP_SYN"}, ports: []uint16{3389}},
	{ip: "2001:db8:1::9", country: "DE", asn: 3320, org: "Deutsche Telekom AG", class: "malicious",
		tags: []string{"SSH_BRUTEFORCE"}, ports: []uint16{22}, handshake: true},
	{ip: "203.0.113.10", country: "DE", asn: 64500, org: "Hetzner Online", class: "unknown", tags: []string{"TCP_SYN", "ZMAP"}, ports: []uint16{443}},
}

var sensors = []struct{ name, ip, country string }{
	{"fra1", "198.51.100.130", "DE"}, {"ams1", "198.51.100.131", "NL"}, {"nyc1", "198.51.100.200", "US"},
}

// events are 45 events, one every 157 seconds and some microseconds back
// from Now, round-robin over sources, sensors, ports and tags.
func events() []record.Event {
	out := make([]record.Event, 45)
	for i := range out {
		s := sources[i%len(sources)]
		sn := sensors[i%len(sensors)]
		e := record.Event{
			ID: record.HashID("event", fmt.Sprint(i)), Time: at(time.Duration(i*157)*time.Second, 1000*i+17),
			Sensor: sn.name, Src: netip.MustParseAddr(s.ip), SrcPort: uint16(40000 + i), Dst: netip.MustParseAddr(sn.ip),
			DstPort: s.ports[i%len(s.ports)], Transport: "tcp", TTL: uint8(40 + i), IPID: uint16(54321 + i), TCPFlags: 2,
			TCPWindow: 1024, TCPSeq: uint32(i) * 2654435761, TCPOptions: "M1460", Handshake: s.handshake && i%2 == 0,
			Tags: []string{s.tags[i%len(s.tags)]}, Classification: s.class, Actor: s.actor,
			SrcGeo: record.Geo{Country: s.country, ASN: s.asn, Org: s.org}, DstCountry: sn.country,
		}
		switch {
		case s.ip == "192.0.2.2":
			e.Payload, e.HTTPMethod, e.HTTPPath, e.UserAgent = Payload, "GET", "/cgi-bin/.%2e/bin/sh", "zgrab/0.x"
		case s.ip == "2001:db8:1::9":
			e.Payload, e.Username, e.Password, e.HASSH = Binary, "root", "12345\xff", "ec7378c1a92f5a8dde7e8b7a1ddf33d1"
		case i%9 == 0:
			e.Transport, e.DstPort, e.ICMPType, e.TCPFlags, e.TCPWindow, e.TCPOptions = "icmp", 0, 8, 0, 0, ""
			e.Tags = []string{"ICMP_ECHO_REQUEST"}
		}
		if i == 7 {
			// (an empty tag would break the DuckDB store's tag evidence: its
			// list stores it as NULL, which the evidence cannot scan)
			e.Tags = append(e.Tags, "LOG4SHELL")
		}
		out[i] = e
	}
	return out
}

// Searches are the suite's service and event searches.
var (
	ServiceQueries = []string{
		"", "port:22", "product:openssh version:<8.0", "product:open*", "country:DE,FR", "-country:US",
		"banner:nginx", "openssh", `"welcome to"`, "has:tls", "has:vuln", "tag:KEV", "vuln:CVE-2021-41773",
		"net:203.0.113.0/24", "ip:2001:db8::/32", "http.status:[200 TO 399]", "asn:AS64500", "last_seen:1h",
		"first_seen:<100m", "transport:udp", "state:closed", "org:hetzner", "tls.san:*.example.com OR tls.san:example.com",
		"tls.not_after:30d", "http.favicon:-1292923998", "scan:scan-b", "ssh.hassh:*", "-has:http port:[1 TO 1024]",
		"http.title:Welcome*", "cpe:cpe:2.3:a:openbsd:*",
	}
	EventQueries = []string{
		"", "tag:MIRAI", `payload:"get /cgi-bin"`, "classification:malicious country:CN", "handshake:true",
		"-tag:TCP_SYN", "last_seen:30m", "src.ip:192.0.2.0/24 dst.port:23", "ua:zgrab*", "asn:AS4134",
		"transport:icmp", "icmp.type:8", "ttl:[50 TO 60]", "sensor:fra1 OR sensor:nyc1", "actor:shodan",
		"dst.country:NL", "src.ip:2001:db8:1::/48", "has:payload -has:http", "tag:LOG4SHELL", "after:2026-11-02T11:00:00Z",
		"before:45m", "http.method:GET", "hassh:ec7378c1a92f5a8dde7e8b7a1ddf33d1", "src.port:>40040", "org:telekom",
	}
	ServiceFacets = "port,transport,state,protocol,product,version,cpe,http.status,http.title,tls.san,country,asn,org,tag,vuln,http.favicon:3,scan"
	EventFacets   = "src.port:3,dst.port,transport,icmp.type,ttl:5,handshake,sensor,http.method,tag,classification,actor,src.country,src.asn,src.org,dst.country"
)

// Run ingests the fixture into st (opened fresh, empty) and holds every
// answer to testdata/answers.json.
func Run(t *testing.T, st store.Store) {
	t.Helper()
	got := Answers(t, st)
	file := filepath.Join(dir(), "testdata", "answers.json")
	if os.Getenv("VANTAGE_UPDATE_ANSWERS") != "" {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", file)
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("answers differ from %s:\n%s", file, diff(string(want), string(got)))
	}
}

func dir() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Dir(f)
}

// diff shows the first differing lines, with context.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			ctx := ""
			for j := i - 1; j >= 0 && j >= i-40; j-- { // the nearest question above
				if j < len(w) && strings.HasPrefix(strings.TrimSpace(w[j]), `"q":`) {
					ctx = strings.TrimSpace(w[j])
					break
				}
			}
			fmt.Fprintf(&b, "line %d %s\n  want %s\n  got  %s\n", i+1, ctx, wl, gl)
			shown++
		}
	}
	return b.String()
}

// answer is one question and its answer.
type answer struct {
	Q string `json:"q"`
	A any    `json:"a"`
}

// Answers ingests the fixture and returns every answer as indented JSON
// (binary fields as base64; the usage's bytes left out: they differ by
// design).
func Answers(t *testing.T, st store.Store) []byte {
	t.Helper()
	ctx := context.Background()
	var out []answer
	add := func(q string, a any, err error) {
		t.Helper()
		if err != nil {
			a = map[string]string{"error": errorKind(err)}
		}
		out = append(out, answer{q, a})
	}
	for i, call := range Batches() {
		n, err := st.Ingest(ctx, call)
		if err != nil {
			t.Fatalf("ingest call %d: %v", i+1, err)
		}
		add(fmt.Sprintf("ingest call %d: batches stored", i+1), n, nil)
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sf, err := query.ParseFacets(ServiceFacets, query.Services)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := query.ParseFacets(EventFacets, query.Events)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range ServiceQueries {
		r, err := st.SearchServices(ctx, store.Search{Query: q, Now: Now, Limit: 100, Facets: sf})
		add("services "+q, r, err)
	}
	for _, q := range EventQueries {
		r, err := st.SearchEvents(ctx, store.Search{Query: q, Now: Now, Limit: 100, Facets: ef})
		add("events "+q, r, err)
	}
	// paging: every page of 2 services and of 7 events, cursor to cursor
	var pages []any
	for cur, n := "", 0; n < 10; n++ {
		r, err := st.SearchServices(ctx, store.Search{Now: Now, Limit: 2, Cursor: cur})
		if err != nil {
			t.Fatalf("services page %d: %v", n, err)
		}
		pages = append(pages, r)
		if cur = r.Next; cur == "" {
			break
		}
	}
	add("services in pages of 2", pages, nil)
	pages = nil
	for cur, n := "", 0; n < 10; n++ {
		r, err := st.SearchEvents(ctx, store.Search{Query: "-transport:icmp", Now: Now, Limit: 7, Cursor: cur})
		if err != nil {
			t.Fatalf("events page %d: %v", n, err)
		}
		pages = append(pages, r)
		if cur = r.Next; cur == "" {
			break
		}
	}
	add("events in pages of 7", pages, nil)
	_, err = st.SearchEvents(ctx, store.Search{Now: Now, Limit: 7, Cursor: "bm90IGEgY3Vyc29y"})
	add("events with a forged cursor", nil, err)
	_, err = st.SearchServices(ctx, store.Search{Query: "port:", Now: Now})
	add("services with a bad query", nil, err)

	ips := []string{"203.0.113.10", "203.0.113.11", "203.0.113.12", "2001:db8::5", "198.51.100.7",
		"192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8:1::9", "::ffff:203.0.113.10", "10.9.9.9"}
	var addrs []netip.Addr
	for _, ip := range ips {
		a := netip.MustParseAddr(ip)
		addrs = append(addrs, a)
		h, err := st.Host(ctx, a)
		add("host "+ip, h, err)
		p, err := st.Profile(ctx, a, 3)
		add("profile "+ip, p, err)
	}
	sums, err := st.Summaries(ctx, addrs)
	add("summaries", sums, err)
	sums, err = st.Summaries(ctx, addrs[5:6])
	add("summary of one", sums, err)

	for _, by := range []string{"src_country", "dst_country", "tag", "dst_port", "asn", "org", "sensor", "classification", "actor", "transport", "src", "nonsense"} {
		b, err := st.EventStats(ctx, store.Stats{Since: Now.Add(-time.Hour), By: by, Limit: 50, Now: Now})
		add("stats by "+by+" in 1h", b, err)
	}
	b, err := st.EventStats(ctx, store.Stats{Since: Now.Add(-2 * time.Hour), By: "tag", Limit: 3, Query: "-classification:benign", Now: Now})
	add("top 3 tags in 2h of non-benign", b, err)
	b, err = st.EventStats(ctx, store.Stats{Since: Now.Add(-15 * time.Minute), By: "src_country", Now: Now})
	add("stats by src_country in 15m", b, err)

	for _, since := range []time.Duration{time.Hour, 2 * time.Hour} {
		cells, err := st.Matrix(ctx, Now.Add(-since))
		slices.SortFunc(cells, func(a, b store.Cell) int { // ties have no order
			if a.Count != b.Count {
				return int(b.Count - a.Count)
			}
			return strings.Compare(a.Src+a.Dst, b.Src+b.Dst)
		})
		add(fmt.Sprintf("matrix in %v", since), cells, err)
	}
	for _, tl := range []store.Timeline{
		{Since: Now.Add(-2 * time.Hour), Until: Now, Step: 15 * time.Minute, By: "tag", Top: 3},
		{Since: Now.Add(-2*time.Hour + 7*time.Second), Until: Now, Step: 10 * time.Minute, By: "src_country", Top: 10},
		{Since: Now.Add(-time.Hour), Until: Now, Step: 20 * time.Minute, By: "src", Top: 2},
		{Since: Now.Add(-time.Hour), Until: Now, Step: time.Second, By: "tag", Top: 2},
	} {
		s, err := st.Timeline(ctx, tl)
		add(fmt.Sprintf("timeline by %s step %v top %d", tl.By, tl.Step, tl.Top), s, err)
	}

	u, err := st.Usage(ctx)
	add("usage rows", u.Tables, err)
	n, err := st.Purge(ctx, []netip.Prefix{netip.MustParsePrefix("203.0.113.12/31")})
	add("purge 203.0.113.12/31", n, err)
	_, err = st.Host(ctx, netip.MustParseAddr("203.0.113.12"))
	add("host 203.0.113.12 after the purge", nil, err)
	r, err := st.SearchServices(ctx, store.Search{Now: Now, Facets: sf[:1]})
	add("services after the purge", r, err)
	u, err = st.Usage(ctx)
	add("usage rows after the purge", u.Tables, err)

	js, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return append(js, '\n')
}

// errorKind names an error by what it is, not by its text (stores word
// their errors differently).
func errorKind(err error) string {
	var qe *query.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, store.ErrNotFound):
		return "not found"
	case errors.Is(err, store.ErrBadCursor):
		return "bad cursor"
	case asQueryError(err, &qe):
		return "query error: " + qe.Msg
	case isBadRequest(err):
		return "bad request"
	}
	return "other: " + err.Error()
}

func asQueryError(err error, target **query.Error) bool { return errors.As(err, target) }

func isBadRequest(err error) bool { return errors.Is(err, store.ErrBadRequest) }
