package api_test

// The tests run the API against real components: a DuckDB store in a
// temporary directory, an embedded NATS JetStream bus (API keys in its
// "apikeys" bucket, the ingest endpoint publishing on its streams), and
// a small hand-made data set ingested through store.Ingest. Nothing is
// mocked; requests go through net/http/httptest.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/store/duckdb"
)

// env is one store and bus with the fixture ingested and three keys.
type env struct {
	dir   string
	st    *duckdb.DB
	bus   *bus.Bus
	kv    jetstream.KeyValue
	keys  *api.Keys
	now   time.Time // the fixture's reference time
	fx    fixture
	admin string // secrets
	read  string
	scan  string
}

// sharedEnv is opened once per test process by the ordinary tests (they
// only read it, or add keys and bus messages that no other test counts
// absolutely) and closed by TestMain.
var (
	sharedOnce sync.Once
	shared     *env
	sharedErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.close()
	}
	os.Exit(code)
}

// getEnv returns the shared environment, opening it on first use.
func getEnv(tb testing.TB) *env {
	tb.Helper()
	sharedOnce.Do(func() { shared, sharedErr = openEnv() })
	if sharedErr != nil {
		tb.Fatalf("open test environment: %v", sharedErr)
	}
	return shared
}

// openEnv opens a store and a bus in a fresh temporary directory (not
// t.TempDir: fuzz targets share it across iterations), ingests the
// fixture and creates an admin, a read and a scan key.
func openEnv() (_ *env, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "vantage-api-test-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, now: time.Now().UTC().Truncate(time.Second)}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	// duckdb.Open keeps its context for every connection it opens later
	// (the connector's init runs the SET statements with it): it must
	// outlive the store, so it is not ctx.
	if e.st, err = duckdb.Open(context.Background(), dir+"/store", duckdb.Options{Threads: 2}); err != nil {
		return nil, err
	}
	if e.bus, err = bus.Open(ctx, bus.Config{Dir: dir + "/bus"}, nil); err != nil {
		return nil, err
	}
	if e.kv, err = e.bus.KV(ctx, "apikeys"); err != nil {
		return nil, err
	}
	e.keys = api.NewKeys(e.kv)
	e.fx = makeFixture(e.now)
	if _, err = e.st.Ingest(ctx, e.fx.batches()); err != nil {
		return nil, fmt.Errorf("ingest fixture: %w", err)
	}
	if err = e.st.Sync(ctx); err != nil {
		return nil, err
	}
	for _, k := range []struct {
		name   string
		scopes []string
		secret *string
	}{
		{"admin", []string{api.ScopeAdmin}, &e.admin},
		{"reader", []string{api.ScopeRead}, &e.read},
		{"scanner", []string{api.ScopeScan}, &e.scan},
	} {
		if *k.secret, _, err = e.keys.Create(ctx, k.name, k.scopes, 0); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *env) close() {
	if e.st != nil {
		e.st.Close()
	}
	if e.bus != nil {
		e.bus.Close()
	}
	os.RemoveAll(e.dir)
}

// publish is the ingest endpoint's Publish, wired as server.go wires it.
func (e *env) publish(ctx context.Context, stream string, b *record.Batch) error {
	s := bus.StreamResults
	if stream == "events" {
		s = bus.StreamEvents
	}
	return e.bus.Publish(ctx, bus.Subject(s, b.Producer), b)
}

// config is the usual test configuration: anonymous reads, keys, ingest.
func (e *env) config() api.Config {
	return api.Config{
		Store: e.st, Keys: e.keys, Anonymous: true, Publish: e.publish,
		QueryTimeout: 20 * time.Second, MaxRows: 1000, PublicURL: "https://vantage.test",
		Ready: func(ctx context.Context) error { _, err := e.st.Usage(ctx); return err },
	}
}

// server builds an API over the environment, changing the usual
// configuration with edit (nil: as is).
func (e *env) server(edit func(*api.Config)) *api.Server {
	cfg := e.config()
	if edit != nil {
		edit(&cfg)
	}
	return api.New(cfg)
}

// --- the fixture ---

// fixture is the hand-made data set: services on IPv4 and IPv6 hosts
// (one IPv6 address with the top bit of its high half set, one with the
// top bit of its low half set), and sensor events from several sources.
type fixture struct {
	services []record.Service
	events   []record.Event
}

var (
	v4a       = netip.MustParseAddr("198.51.100.10") // ssh + https, also seen by the sensors
	v4b       = netip.MustParseAddr("198.51.100.11")
	v4c       = netip.MustParseAddr("198.51.100.12")
	v4d       = netip.MustParseAddr("198.51.100.13")
	v4e       = netip.MustParseAddr("203.0.113.5")
	v6a       = netip.MustParseAddr("2001:db8::1")
	v6hi      = netip.MustParseAddr("fd00::8")              // hi = 0xfd00...: top bit set
	v6lo      = netip.MustParseAddr("2001:db8::8000:0:0:1") // lo = 0x8000...0001: top bit set
	srcShodan = netip.MustParseAddr("45.33.32.156")         // benign, two sensors, handshake
	srcBrute  = netip.MustParseAddr("185.220.101.1")        // malicious, one sensor, handshake
	srcMirai  = netip.MustParseAddr("203.0.113.99")         // malicious, no handshake
	srcRDP6   = netip.MustParseAddr("2001:db8::bad")        // IPv6, malicious, no handshake
	srcCensys = netip.MustParseAddr("fd00::66")             // IPv6 (hi top bit), benign
	unknownIP = netip.MustParseAddr("192.0.2.200")          // nothing known
)

var (
	geoDE = record.Geo{Country: "DE", ASN: 24940, Org: "Hetzner Online GmbH"}
	geoUS = record.Geo{Country: "US", ASN: 16509, Org: "Amazon.com, Inc."}
	geoNL = record.Geo{Country: "NL", ASN: 1136, Org: "KPN B.V."}
	geoFR = record.Geo{Country: "FR", ASN: 16276, Org: "OVH SAS"}
)

func makeFixture(now time.Time) fixture {
	svc := func(ip netip.Addr, port uint16, transport, proto, product, version string, geo record.Geo, ago time.Duration) record.Service {
		return record.Service{
			ID: record.ServiceID("scan-1", ip, port, transport), Time: now.Add(-ago), ScanID: "scan-1",
			IP: ip, Port: port, Transport: transport, State: "open", Protocol: proto,
			Product: product, Version: version, Geo: geo,
		}
	}
	var f fixture
	ssh := svc(v4a, 22, "tcp", "ssh", "OpenSSH", "8.9p1", geoDE, 2*time.Hour)
	ssh.Banner = []byte("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n")
	ssh.CPE = []string{"cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*"}
	ssh.SSH = &record.SSH{Banner: "SSH-2.0-OpenSSH_8.9p1", HASSH: "b12d2871a1189eff20364cf5333619ee", HostKeySHA256: "SHA256:abc"}
	ssh.Vulns = []string{"CVE-2024-6387"}

	https := svc(v4a, 443, "tcp", "http", "nginx", "1.24.0", geoDE, 2*time.Hour)
	https.HTTP = &record.HTTP{Status: 200, Title: "Welcome to nginx!", Server: "nginx/1.24.0"}
	https.TLS = &record.TLS{Version: "TLS1.3", Subject: "CN=www.example.com", Issuer: "CN=R3, O=Let's Encrypt",
		SANs: []string{"www.example.com", "example.com"}, SHA256: "3f0a0b0c", NotAfter: now.Add(60 * 24 * time.Hour)}
	https.Tags = []string{"CDN"}

	web := svc(v4b, 80, "tcp", "http", "nginx", "1.18.0", geoDE, 3*time.Hour)
	web.HTTP = &record.HTTP{Status: 404, Title: "Not Found", Server: "nginx/1.18.0"}
	web.Banner = []byte("HTTP/1.1 404 Not Found\r\nServer: nginx/1.18.0\r\n\r\n")

	rdp := svc(v4c, 3389, "tcp", "rdp", "Microsoft Terminal Services", "", geoUS, time.Hour)
	rdp.Tags = []string{"RDP"}

	dns := svc(v4d, 53, "udp", "dns", "dnsmasq", "2.89", geoDE, time.Hour)

	apache := svc(v4e, 80, "tcp", "http", "Apache httpd", "2.4.57", geoUS, 30*time.Minute)
	apache.CPE = []string{"cpe:2.3:a:apache:http_server:2.4.57:*:*:*:*:*:*:*"}
	apache.Vulns = []string{"CVE-2023-45802"}
	apache.HTTP = &record.HTTP{Status: 200, Title: "It works!", Server: "Apache/2.4.57 (Debian)"}

	alt := svc(v4e, 8080, "tcp", "http", "nginx", "1.24.0", geoUS, 30*time.Minute)
	alt.HTTP = &record.HTTP{Status: 302, Server: "nginx", Location: "/login"}

	v6tls := svc(v6a, 443, "tcp", "http", "nginx", "1.25.3", geoNL, 10*time.Minute)
	v6tls.TLS = &record.TLS{Subject: "CN=v6.example.net", SANs: []string{"v6.example.net"}, SHA256: "aa55"}
	v6tls.Tags = []string{"IPV6", "SELF_SIGNED"}

	v6ssh := svc(v6hi, 22, "tcp", "ssh", "OpenSSH", "9.6", geoNL, 10*time.Minute)
	v6ssh.Banner = []byte("SSH-2.0-OpenSSH_9.6\r\n")

	v6web := svc(v6lo, 80, "tcp", "http", "Apache httpd", "2.4.58", geoFR, 10*time.Minute)
	v6web.HTTP = &record.HTTP{Status: 200, Title: "Apache2 Debian Default Page"}

	// a second port on the same address: a page can end on v6lo, so a
	// cursor carries a lo half with the top bit set
	v6webTLS := svc(v6lo, 443, "tcp", "http", "Apache httpd", "2.4.58", geoFR, 10*time.Minute)
	v6webTLS.TLS = &record.TLS{Subject: "CN=lo.example.org", SANs: []string{"lo.example.org"}, SHA256: "bb66"}

	f.services = []record.Service{ssh, https, web, rdp, dns, apache, alt, v6tls, v6ssh, v6web, v6webTLS}

	ev := func(i int, src netip.Addr, sensor string, dst string, dport uint16, hs bool, class, actor string, geo record.Geo, dstCountry string, tags ...string) record.Event {
		return record.Event{
			ID: record.NewID(), Time: now.Add(-time.Duration(i+1) * 20 * time.Second), Sensor: sensor,
			Src: src, SrcPort: uint16(40000 + i), Dst: netip.MustParseAddr(dst), DstPort: dport, Transport: "tcp",
			TTL: 52, TCPFlags: 2, TCPWindow: 1024, Handshake: hs, Tags: tags, Classification: class, Actor: actor,
			SrcGeo: geo, DstCountry: dstCountry,
		}
	}
	i := 0
	next := func() int { i++; return i }
	geoLinode := record.Geo{Country: "US", ASN: 63949, Org: "Akamai Connected Cloud"}
	geoTor := record.Geo{Country: "DE", ASN: 208294, Org: "Tor exit"}
	geoCN := record.Geo{Country: "CN", ASN: 4134, Org: "Chinanet"}
	geoCensys := record.Geo{Country: "US", ASN: 398324, Org: "Censys, Inc."}
	f.events = []record.Event{
		ev(next(), srcShodan, "fra1", "192.0.2.10", 80, true, "benign", "Shodan", geoLinode, "DE", "SHODAN", "WEB_CRAWLER"),
		ev(next(), srcShodan, "ams1", "192.0.2.20", 443, true, "benign", "Shodan", geoLinode, "NL", "SHODAN"),
		ev(next(), srcShodan, "nyc1", "192.0.2.30", 22, true, "benign", "Shodan", geoLinode, "US", "SHODAN"),
		ev(next(), srcBrute, "fra1", "192.0.2.10", 22, true, "malicious", "", geoTor, "DE", "SSH_BRUTEFORCE"),
		ev(next(), srcBrute, "fra1", "192.0.2.10", 22, true, "malicious", "", geoTor, "DE", "SSH_BRUTEFORCE"),
		ev(next(), srcBrute, "fra1", "192.0.2.10", 22, true, "malicious", "", geoTor, "DE", "SSH_BRUTEFORCE"),
		ev(next(), srcMirai, "nyc1", "192.0.2.30", 23, false, "malicious", "", geoCN, "US", "MIRAI", "TELNET_SCAN"),
		ev(next(), srcMirai, "nyc1", "192.0.2.30", 2323, false, "malicious", "", geoCN, "US", "MIRAI"),
		ev(next(), srcRDP6, "ams1", "2001:db8:5::20", 3389, false, "malicious", "", geoNL, "NL", "RDP_SCANNER"),
		ev(next(), srcCensys, "fra1", "192.0.2.11", 443, true, "benign", "Censys", geoCensys, "DE", "CENSYS"),
		ev(next(), srcCensys, "ams1", "192.0.2.21", 80, true, "benign", "Censys", geoCensys, "NL", "CENSYS"),
		ev(next(), v4a, "fra1", "192.0.2.12", 8080, true, "unknown", "", geoDE, "DE", "HTTP_SCANNER"),
	}
	// a brute-force attempt with credentials, and an HTTP request with a payload
	f.events[3].Username, f.events[3].Password = "root", "123456"
	f.events[11].Payload = []byte("GET /wp-login.php HTTP/1.1\r\nHost: 192.0.2.12\r\nUser-Agent: zgrab/0.x\r\n\r\n")
	f.events[11].HTTPMethod, f.events[11].HTTPPath, f.events[11].UserAgent = "GET", "/wp-login.php", "zgrab/0.x"
	return f
}

// batches splits the fixture in a few batches, as scanners and sensors send it.
func (f fixture) batches() []*record.Batch {
	return []*record.Batch{
		{ID: record.NewID(), Producer: "scanner/a", Services: f.services[:5]},
		{ID: record.NewID(), Producer: "scanner/b", Services: f.services[5:]},
		{ID: record.NewID(), Producer: "sensor/fra1", Events: f.events[:6]},
		{ID: record.NewID(), Producer: "sensor/ams1", Events: f.events[6:]},
	}
}

// eventsFrom are the fixture's events from one source.
func (f fixture) eventsFrom(src netip.Addr) []record.Event {
	var out []record.Event
	for _, e := range f.events {
		if e.Src == src {
			out = append(out, e)
		}
	}
	return out
}

// topCounts counts values and orders them as the store does: most
// frequent first, ties by value.
func topCounts(vals []string, limit int) []store.FacetValue {
	n := map[string]int64{}
	for _, v := range vals {
		if v != "" {
			n[v]++
		}
	}
	out := make([]store.FacetValue, 0, len(n))
	for v, c := range n {
		out = append(out, store.FacetValue{Value: v, Count: c})
	}
	slices.SortFunc(out, func(a, b store.FacetValue) int {
		if a.Count != b.Count {
			return int(b.Count - a.Count)
		}
		// numeric columns (ports, ASNs) tie in numeric order
		x, errx := strconv.ParseInt(a.Value, 10, 64)
		y, erry := strconv.ParseInt(b.Value, 10, 64)
		if errx == nil && erry == nil {
			return cmp.Compare(x, y)
		}
		return strings.Compare(a.Value, b.Value)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// --- requests ---

// response is a recorded response.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) String() string {
	b := string(r.body)
	if len(b) > 600 {
		b = b[:600] + "..."
	}
	return fmt.Sprintf("%d %s", r.code, b)
}

// json decodes the body into v.
func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response is not JSON (%v): %s", err, r)
	}
}

// obj decodes the body as a JSON object.
func (r response) obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.json(t, &m)
	return m
}

// req is a request to make.
type req struct {
	method string
	path   string // with the query string
	body   []byte
	header map[string]string
	remote string // RemoteAddr, default 192.0.2.1:1234
}

func do(h http.Handler, q req) response {
	if q.method == "" {
		q.method = http.MethodGet
	}
	var body io.Reader
	if q.body != nil {
		body = bytes.NewReader(q.body)
	}
	r := httptest.NewRequest(q.method, q.path, body)
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	if q.remote != "" {
		r.RemoteAddr = q.remote
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return response{code: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

func get(h http.Handler, path string) response { return do(h, req{path: path}) }

func bearer(secret string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + secret}
}

// qs builds a query string from name, value pairs.
func qs(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

// errorBody decodes an error response and checks it has a message.
func errorBody(t testing.TB, r response) api.ErrorBody {
	t.Helper()
	var e api.ErrorBody
	r.json(t, &e)
	if e.Error == "" {
		t.Fatalf("error response without a message: %s", r)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q", ct)
	}
	return e
}
