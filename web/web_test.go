package web_test

// The pages are tested against the real API over a real DuckDB store with
// a small data set ingested through store.Ingest; nothing is mocked. The
// browser tests (test/netlab/web_test.go) drive the same pages in Chromium
// against a server filled by the lab.

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/store/duckdb"
	"github.com/vantagehq/vantage/web"
)

var (
	srcShodan = netip.MustParseAddr("198.51.100.7")
	srcBrute  = netip.MustParseAddr("203.0.113.66")
	srcMirai  = netip.MustParseAddr("203.0.113.99")
	host      = netip.MustParseAddr("192.0.2.44")
)

// site opens a store in a temporary directory, ingests the fixture and
// serves the UI over the API.
func site(t *testing.T) (*httptest.Server, time.Time) {
	t.Helper()
	return siteWith(t, 0)
}

func siteWith(t *testing.T, refresh time.Duration) (*httptest.Server, time.Time) {
	t.Helper()
	return siteConfig(t, refresh, nil)
}

// siteConfig is siteWith with a change to the API's configuration.
func siteConfig(t *testing.T, refresh time.Duration, edit func(*api.Config)) (*httptest.Server, time.Time) {
	t.Helper()
	ctx := context.Background()
	st, err := duckdb.Open(ctx, t.TempDir()+"/store", duckdb.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC().Truncate(time.Second)
	var events []record.Event
	add := func(n int, src netip.Addr, cc, dstCC, class, actor string, port uint16, tags ...string) {
		for i := 0; i < n; i++ {
			events = append(events, record.Event{ID: record.NewID(), Time: now.Add(-time.Duration(i+1) * 7 * time.Second),
				Sensor: "s-" + dstCC, Src: src, SrcPort: uint16(40000 + i), Dst: netip.MustParseAddr("192.0.2.200"), DstPort: port,
				Transport: "tcp", Handshake: true, Tags: tags, Classification: class, Actor: actor,
				SrcGeo: record.Geo{Country: cc, ASN: 64500, Org: "Org " + cc}, DstCountry: dstCC})
		}
	}
	add(40, srcShodan, "US", "DE", "benign", "SHODAN", 443, "SHODAN", "TCP_SYN")
	add(25, srcBrute, "RU", "DE", "malicious", "", 22, "SSH_BRUTEFORCE", "TCP_SYN")
	add(12, srcMirai, "CN", "JP", "malicious", "", 23, "MIRAI", "TELNET_SCANNER")
	events[41].Payload = []byte("SSH-2.0-libssh_0.9\r\n\x00\xff")
	ssh := record.Service{ID: record.ServiceID("scan-1", host, 22, "tcp"), Time: now.Add(-time.Hour), ScanID: "scan-1", IP: host,
		Port: 22, Transport: "tcp", State: "open", Protocol: "ssh", Product: "OpenSSH", Version: "8.9p1",
		CPE: []string{"cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*"}, Banner: []byte("SSH-2.0-OpenSSH_8.9p1 Debian\r\n"),
		Geo: record.Geo{Country: "DE", ASN: 64501, Org: "Example GmbH"}}
	web80 := ssh
	web80.ID, web80.Port, web80.Protocol, web80.Product, web80.Version, web80.CPE = record.ServiceID("scan-1", host, 80, "tcp"), 80, "http", "nginx", "1.24.0", nil
	web80.HTTP = &record.HTTP{Status: 200, Title: "<script>alert(1)</script> Welcome", Server: "nginx/1.24.0"}
	other := ssh
	other.IP, other.ID, other.Geo = srcMirai, record.ServiceID("scan-1", srcMirai, 22, "tcp"), record.Geo{Country: "CN", Org: "Org CN"}
	batches := []*record.Batch{
		{ID: record.NewID(), Producer: "sensor/t", Events: events},
		{ID: record.NewID(), Producer: "scanner/t", Services: []record.Service{ssh, web80, other}},
	}
	if _, err := st.Ingest(ctx, batches); err != nil {
		t.Fatal(err)
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Store: st, Anonymous: true}
	if edit != nil {
		edit(&cfg)
	}
	s, err := web.New(web.Config{API: api.New(cfg), Version: "test", Refresh: refresh})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, now
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	code, body := get(t, u)
	if code != 200 {
		t.Fatalf("%s: %d %s", u, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatal(err)
	}
}

// attrs collects data-KEY="..." data-count="N" pairs of elements matching
// a prefix pattern.
func attrs(html, pattern string) map[string]int64 {
	out := map[string]int64{}
	for _, m := range regexp.MustCompile(pattern).FindAllStringSubmatch(html, -1) {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		out[m[1]] = n
	}
	return out
}

func buckets(t *testing.T, base, q string) map[string]int64 {
	var res struct {
		Buckets []store.Bucket `json:"buckets"`
	}
	getJSON(t, base+"/api/v1/sensors/stats?"+q, &res)
	out := map[string]int64{}
	for _, b := range res.Buckets {
		out[b.Key] = b.Count
	}
	return out
}

func equal(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestOverviewCarriesTheAPINumbers: the map, the ranked list, the tag
// cloud and the matrix show exactly what the API answers.
func TestOverviewCarriesTheAPINumbers(t *testing.T) {
	srv, _ := site(t)
	code, page := get(t, srv.URL+"/")
	if code != 200 {
		t.Fatalf("overview: %d\n%s", code, page)
	}
	countries := buckets(t, srv.URL, "by=src_country&window=15m&limit=300")
	if want := map[string]int64{"US": 40, "RU": 25, "CN": 12}; !equal(countries, want) {
		t.Fatalf("API countries %v, the fixture has %v", countries, want)
	}
	onMap := attrs(page, `<path d="[^"]*" class="c l[1-5]" data-cc="([A-Z]{2})" data-count="(\d+)"`)
	if !equal(onMap, countries) {
		t.Errorf("map coloured %v, API %v", onMap, countries)
	}
	if listed := attrs(page, `<tr data-cc="([A-Z]{2})" data-count="(\d+)"`); !equal(listed, countries) {
		t.Errorf("ranked list %v, API %v", listed, countries)
	}
	tags := buckets(t, srv.URL, "by=tag&window=1h&limit=60")
	if cloud := attrs(page, `data-tag="([A-Z0-9_]+)" data-count="(\d+)"`); !equal(cloud, tags) || len(tags) != 5 {
		t.Errorf("tag cloud %v, API %v", cloud, tags)
	}
	if !strings.Contains(page, `class="tag malicious z`) || !strings.Contains(page, `class="tag benign z`) {
		t.Error("tags are not coloured by intention")
	}
	var matrix struct {
		Cells []store.Cell `json:"cells"`
	}
	getJSON(t, srv.URL+"/api/v1/sensors/matrix?window=1h", &matrix)
	want := map[string]int64{}
	for _, c := range matrix.Cells {
		want[c.Src+">"+c.Dst] = c.Count
	}
	got := map[string]int64{}
	for k, v := range attrs(page, `data-src="([A-Z]{2}" data-dst="[A-Z]{2})" data-count="(\d+)"`) {
		if v > 0 {
			got[strings.ReplaceAll(strings.ReplaceAll(k, `" data-dst="`, ">"), `"`, "")] = v
		}
	}
	if !equal(got, want) || len(want) != 3 {
		t.Errorf("matrix %v, API %v", got, want)
	}
	if n := strings.Count(page, "<polyline"); n != 5 {
		t.Errorf("timeline has %d lines, want the top 5 tags", n)
	}
	// the live fragment is the same panels
	code, live := get(t, srv.URL+"/live?window=1h")
	if code != 200 || !strings.Contains(live, `id="panels"`) || strings.Contains(live, "<html") {
		t.Errorf("live: %d %.200s", code, live)
	}
	if code, body := get(t, srv.URL+"/?window=3y"); code != 400 || !strings.Contains(body, "choose one of") {
		t.Errorf("bad window: %d", code)
	}
}

func TestSearchFacetsNarrowAndErrorsPoint(t *testing.T) {
	srv, _ := site(t)
	code, page := get(t, srv.URL+"/search?q="+url.QueryEscape("port:22"))
	if code != 200 || !strings.Contains(page, `data-total="2"`) {
		t.Fatalf("search port:22: %d %s", code, page)
	}
	m := regexp.MustCompile(`<a href="([^"]+)" data-value="DE" data-count="1"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no country facet linking DE:\n%s", page)
	}
	href := html.UnescapeString(m[1])
	u, _ := url.Parse(href)
	if q := u.Query().Get("q"); q != "port:22 country:DE" {
		t.Errorf("the facet narrows to %q", q)
	}
	code, page = get(t, srv.URL+href)
	if code != 200 || !strings.Contains(page, `data-total="1"`) || !strings.Contains(page, `data-ip="192.0.2.44"`) {
		t.Errorf("narrowed search: %d", code)
	}
	if !strings.Contains(html.UnescapeString(page), "/api/v1/search?format=csv&q=port%3A22+country%3ADE") {
		t.Error("no CSV export link for the query")
	}
	// an error points at its column
	code, page = get(t, srv.URL+"/search?q="+url.QueryEscape("port:22 AND (product:nginx"))
	if code != 400 || !strings.Contains(page, `aria-invalid="true"`) {
		t.Fatalf("bad query: %d", code)
	}
	col := regexp.MustCompile(`data-column="(\d+)"`).FindStringSubmatch(page)
	if col == nil || col[1] == "0" {
		t.Fatalf("no column in the error:\n%s", page)
	}
	if !strings.Contains(page, `<pre class="caret">`) {
		t.Error("no caret under the query")
	}
	// events search
	code, page = get(t, srv.URL+"/search?t=events&q="+url.QueryEscape("tag:MIRAI"))
	if code != 200 || !strings.Contains(page, `data-total="12"`) {
		t.Errorf("events search: %d", code)
	}
	// a title is text, never markup
	_, page = get(t, srv.URL+"/search?q=port:80")
	if strings.Contains(page, "<script>alert") {
		t.Error("a banner's markup reached the page unescaped")
	}
}

func TestIPPage(t *testing.T) {
	srv, _ := site(t)
	code, page := get(t, srv.URL+"/ip/192.0.2.44")
	if code != 200 {
		t.Fatalf("%d %s", code, page)
	}
	for _, want := range []string{`data-port="22" data-transport="tcp" data-product="OpenSSH"`, "cpe:2.3:a:openbsd:openssh:8.9p1",
		"SSH-2.0-OpenSSH_8.9p1 Debian", "Not seen by the sensors", "AS64501 Example GmbH"} {
		if !strings.Contains(page, want) {
			t.Errorf("host page lacks %q", want)
		}
	}
	code, page = get(t, srv.URL+"/ip/"+srcBrute.String())
	if code != 200 {
		t.Fatalf("%d", code)
	}
	for _, want := range []string{`id="verdict" class="pill malicious"`, `data-tag="SSH_BRUTEFORCE"`, "22/tcp × ", `\x00\xff`, "Why malicious"} {
		if !strings.Contains(page, want) {
			t.Errorf("sensor page lacks %q", want)
		}
	}
	// both: a scanned host that also scans
	_, page = get(t, srv.URL+"/ip/"+srcMirai.String())
	if !strings.Contains(page, `data-product="OpenSSH"`) || !strings.Contains(page, `data-tag="MIRAI"`) {
		t.Error("a host with services and sensor events shows only one side")
	}
	if code, _ := get(t, srv.URL+"/ip/192.0.2.1"); code != 404 {
		t.Errorf("unknown address: %d, want 404", code)
	}
	if code, _ := get(t, srv.URL+"/ip/not-an-ip"); code != 400 {
		t.Errorf("bad address: %d, want 400", code)
	}
	resp, err := http.Get(srv.URL + "/ip?ip=192.0.2.44")
	if err != nil || resp.Request.URL.Path != "/ip/192.0.2.44" {
		t.Errorf("the IP box does not lead to the page: %v", err)
	}
}

// TestPagesAreSelfContained: no page loads anything from elsewhere, none
// needs inline script or style (the CSP forbids both), and the API still
// answers under the UI.
func TestPagesAreSelfContained(t *testing.T) {
	srv, _ := site(t)
	for _, p := range []string{"/", "/search", "/search?q=port:22", "/ip/192.0.2.44", "/about", "/optout", "/monitor"} {
		code, page := get(t, srv.URL+p)
		if code != 200 {
			t.Errorf("%s: %d", p, code)
			continue
		}
		for _, bad := range []string{"http://", "https://fonts", "<script>", " style=\"", "onclick="} {
			if bad == "http://" {
				// links out are fine in text (about page); sources are not
				if regexp.MustCompile(`(src|href)="http[^"]*\.(js|css|png|svg|woff2?)"`).MatchString(page) {
					t.Errorf("%s loads an asset from elsewhere", p)
				}
				continue
			}
			if strings.Contains(page, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
	}
	for _, p := range []string{"/static/style.css", "/static/app.js", "/static/world.json", "/healthz", "/api/v1/fields?target=services"} {
		if code, _ := get(t, srv.URL+p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	if !strings.Contains(mustGet(t, srv.URL+"/about"), "CC BY 4.0") {
		t.Error("the about page lacks the attributions")
	}
}

func mustGet(t *testing.T, u string) string {
	_, b := get(t, u)
	return b
}

// TestWorldMapCoversCountries: the embedded map names the countries a
// scanning map needs.
func TestWorldMapCoversCountries(t *testing.T) {
	srv, _ := site(t)
	var m struct {
		Countries []struct{ ID, D string }
	}
	getJSON(t, srv.URL+"/static/world.json", &m)
	have := map[string]bool{}
	for _, c := range m.Countries {
		if c.D == "" {
			t.Errorf("%s has no shape", c.ID)
		}
		have[c.ID] = true
	}
	var missing []string
	for _, cc := range strings.Fields("US CN RU DE NL GB FR BR IN JP KR SG HK TW VN ID IR UA CA AU ZA MX AR TR PL SE") {
		if !have[cc] {
			missing = append(missing, cc)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 || len(m.Countries) < 200 {
		t.Errorf("map has %d countries; missing %v", len(m.Countries), missing)
	}
}

// TestIPExposure: a host with services shows the API's exposure score,
// level, formula and parts, and links to how it is computed; an address
// with no services shows none.
func TestIPExposure(t *testing.T) {
	srv, _ := site(t)
	var ex api.ExposureView
	getJSON(t, srv.URL+"/api/v1/exposure/192.0.2.44", &ex)
	if len(ex.Parts) == 0 || ex.Score == 0 {
		t.Fatalf("the fixture's host scores %+v", ex)
	}
	code, page := get(t, srv.URL+"/ip/192.0.2.44")
	if code != 200 {
		t.Fatalf("%d", code)
	}
	for _, want := range []string{fmt.Sprintf(`id="exposure" data-score="%d" data-level="%s"`, ex.Score, ex.Level),
		fmt.Sprintf(`<span class="big" id="exposure-score">%d</span>`, ex.Score), `<span class="pill lvl-` + ex.Level + `" id="exposure-level">`,
		`<code id="exposure-formula">` + html.EscapeString(ex.Formula) + `</code>`, `href="/about#exposure"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the IP page lacks %q", want)
		}
	}
	rows := regexp.MustCompile(`<tr data-kind="([a-z]+)" data-points="([0-9.]+)"><td>[a-z]+</td><td>(\d*)/?[a-z]*</td>`).FindAllStringSubmatch(page, -1)
	if len(rows) != len(ex.Parts) {
		t.Fatalf("%d parts on the page, %d in the API", len(rows), len(ex.Parts))
	}
	for i, p := range ex.Parts {
		if rows[i][1] != p.Kind || rows[i][2] != strconv.FormatFloat(p.Points, 'f', -1, 64) || rows[i][3] != strconv.Itoa(int(p.Port)) {
			t.Errorf("part %d: page %v, API %+v", i, rows[i][1:], p)
		}
		if !strings.Contains(page, html.EscapeString(p.What)) {
			t.Errorf("part %d's what %q is not on the page", i, p.What)
		}
	}
	if _, page := get(t, srv.URL+"/ip/"+srcBrute.String()); strings.Contains(page, `id="exposure"`) {
		t.Error("an address without services has an exposure score")
	}
	if !strings.Contains(mustGet(t, srv.URL+"/about"), `<h2 id="exposure">`) {
		t.Error("the about page does not explain the score")
	}
}
