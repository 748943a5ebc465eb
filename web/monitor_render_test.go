package web

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/monitor"
	"github.com/vantagehq/vantage/notify"
)

// TestMonitorAlertsRender draws alerts of every evidence kind, built by
// hand (the monitor raises them only from rescans and the sensors): the
// change before → after, CVEs with the known-exploited ones marked, the
// end-of-life date, how each notifier fared, and the buttons.
func TestMonitorAlertsRender(t *testing.T) {
	s, err := New(Config{API: http.NotFoundHandler(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("198.51.100.20")
	day := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	before := &monitor.ServiceState{Port: 443, Transport: "tcp", Protocol: "http", Product: "nginx", Version: "1.22.1"}
	after := &monitor.ServiceState{Port: 443, Transport: "tcp", Protocol: "http", Product: "nginx", Version: "1.18.0",
		CertSubject: "CN=www.example.com", CertSHA256: "abcdef0123456789abcdef", CertNotAfter: day}
	alerts := []monitor.Alert{
		{ID: "a1", Watchlist: "edge", Kind: monitor.Vulnerable, Severity: "critical", Title: "Vulnerable version on 198.51.100.20:443",
			IP: ip, Port: 443, Transport: "tcp", State: monitor.Open, Count: 3, FirstSeen: day, LastSeen: day.Add(time.Hour),
			Evidence: monitor.Evidence{After: after, Search: "ip:198.51.100.20 port:443",
				CVEs: []monitor.CVE{{ID: "CVE-2021-23017", Score: 9.8, KEV: true}, {ID: "CVE-2019-20372", Score: 5.3}}},
			Deliveries: []notify.Result{{Name: "log", OK: true}, {Name: "webhook https://hooks.example/x", Error: "HTTP 500"}}},
		{ID: "a2", Watchlist: "edge", Kind: monitor.VersionChanged, Severity: "low", Title: "Version changed",
			IP: ip, Port: 443, Transport: "tcp", State: monitor.Open, Count: 1, FirstSeen: day, LastSeen: day,
			Evidence: monitor.Evidence{Before: before, After: after}},
		{ID: "a3", Watchlist: "edge", Kind: monitor.EndOfLife, Severity: "medium", Title: "End-of-life version",
			IP: ip, Port: 443, Transport: "tcp", State: monitor.Open, Count: 1, FirstSeen: day, LastSeen: day, Muted: true,
			Evidence: monitor.Evidence{After: after, EOL: &monitor.EOLInfo{Product: "nginx", Cycle: "1.18", EOL: day, Source: "https://nginx.org/en/download.html"}}},
		{ID: "a4", Watchlist: "edge", Kind: monitor.ServiceGone, Severity: "info", Title: "Service gone",
			IP: ip, Port: 22, Transport: "tcp", State: monitor.Open, Count: 1, FirstSeen: day, LastSeen: day,
			Evidence: monitor.Evidence{Before: &monitor.ServiceState{Port: 22, Transport: "tcp", Protocol: "ssh"}}},
	}
	d := monitorData{View: monitor.Open, Total: 7, Kinds: monitor.Kinds}
	for _, a := range alerts {
		d.Alerts = append(d.Alerts, viewAlert(a))
	}
	d.Lists = []listView{{View: monitor.View{Watchlist: monitor.Watchlist{Name: "edge", CIDRs: []string{"198.51.100.0/24"},
		Ports: monitor.DefaultPorts, Every: monitor.Duration(24 * time.Hour), Rate: 1000}}}}
	rec := httptest.NewRecorder()
	s.render(rec, httptest.NewRequest("GET", "/monitor", nil), 200, "monitor", s.page("Monitor", "monitor", d))
	page := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("%d\n%s", rec.Code, page)
	}
	row := func(id string) string { return cut(page, `<tr data-id="`+id+`"`, "</tr>") }
	for id, wants := range map[string][]string{
		"a1": {`class="pill sev-critical"`, `<span class="cve" data-kev="true">CVE-2021-23017 (9.8) <abbr class="kev"`, `<span class="cve" data-kev="false">CVE-2019-20372 (5.3)</span>`,
			`http (nginx 1.18.0), certificate CN=www.example.com abcdef012345 until 2025-03-04`, `href="/search?q=ip%3A198.51.100.20&#43;port%3A443"`,
			`<span class="bad">log ok; webhook https://hooks.example/x failed: HTTP 500</span>`, `<a href="/ip/198.51.100.20">198.51.100.20:443/tcp</a>`,
			`data-action="ack"`, ">Mute host:port</button>", `<td class="n">3</td>`},
		"a2": {`class="pill sev-low"`, `<li class="change">http (nginx 1.22.1) → http (nginx 1.18.0), certificate`},
		"a3": {`nginx 1.18: end of life 2025-03-04 (<a href="https://nginx.org/en/download.html">source</a>)`, `<span class="sub">muted: not sent</span>`, `<span class="pill">muted</span>`},
		"a4": {`<li class="change">ssh → gone</li>`, `class="pill sev-info"`, `<span class="bad">not sent yet</span>`},
	} {
		r := row(id)
		for _, w := range wants {
			if !strings.Contains(r, w) {
				t.Errorf("alert %s lacks %q:\n%s", id, w, r)
			}
		}
	}
	if !strings.Contains(page, `data-total="7">7, the first 4 shown`) {
		t.Error("the count does not say the list is cut")
	}
	if i, j := strings.Index(page, `data-id="a1"`), strings.Index(page, `data-id="a4"`); i < 0 || j < i {
		t.Error("the alerts are not in the API's order")
	}
	if !strings.Contains(page, "<td>24h</td>") || !strings.Contains(page, "the server's log only") || !strings.Contains(page, "the default ports, 1000 probes/s") {
		t.Errorf("the watchlist row:\n%s", cut(page, `<tr data-name="edge">`, "</tr>"))
	}
	for _, bad := range []string{" style=\"", "<script>", "onclick="} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
	// the edit form takes a stored watchlist back without its defaults
	f := formOf(monitor.Watchlist{Name: "edge", ASNs: []uint32{64500}, Ports: monitor.DefaultPorts, Every: monitor.Duration(6 * time.Hour),
		Rate: monitor.DefaultRate, Webhooks: []monitor.Webhook{{URL: "https://a.example", Secret: "(set)"}, {URL: "https://b.example"}}})
	if f.ASNs != "AS64500" || f.Ports != "" || f.Every != "6h" || f.Rate != "" || f.WebhookURL != "https://a.example" || !f.SecretSet || f.MoreHooks != 1 {
		t.Errorf("form of a watchlist: %+v", f)
	}
	wl, err := (&watchlistForm{Name: "x", CIDRs: "192.0.2.0/24, 198.51.100.0/24\n", ASNs: "as1,AS2", Orgs: "A, Inc.\nB", Every: "7d", Rate: "10"}).watchlist()
	if err != nil || len(wl.CIDRs) != 2 || len(wl.ASNs) != 2 || len(wl.Orgs) != 2 || time.Duration(wl.Every) != 7*24*time.Hour || wl.Rate != 10 {
		t.Errorf("watchlist of a form: %+v %v", wl, err)
	}
	for _, bad := range []watchlistForm{{ASNs: "ASX"}, {Every: "soon"}, {Rate: "-3"}} {
		if _, err := bad.watchlist(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func cut(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}
