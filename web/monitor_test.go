package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/job"
	"github.com/vantagehq/vantage/monitor"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// monitorEnv is the UI over an API with keys and a running monitor on a
// real bus (no scanner works its jobs: rescans stay queued).
type monitorEnv struct {
	base  string
	keys  map[string]string // by scope: admin, monitor, read
	st    store.Store
	hook  *httptest.Server // a webhook receiver
	hooks atomic.Int64     // POSTs it got
}

func monitorSite(t *testing.T) *monitorEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := bus.Open(ctx, bus.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := job.Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	keyKV, err := b.KV(ctx, "apikeys")
	if err != nil {
		t.Fatal(err)
	}
	keys := api.NewKeys(keyKV)
	e := &monitorEnv{keys: map[string]string{}}
	for _, scope := range []string{api.ScopeAdmin, api.ScopeMonitor, api.ScopeRead} {
		secret, _, err := keys.Create(ctx, scope+"-key", []string{scope}, 0)
		if err != nil {
			t.Fatal(err)
		}
		e.keys[scope] = secret
	}
	var mon *monitor.Monitor
	srv, _ := siteConfig(t, 0, func(c *api.Config) {
		mon, err = monitor.New(ctx, monitor.Config{Bus: b, Store: c.Store, Jobs: jobs, Tick: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.Keys, c.Monitor, e.st = keys, mon, c.Store
	})
	e.base = srv.URL
	e.hook = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		e.hooks.Add(1)
	}))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); mon.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait(); e.hook.Close(); b.Close() })
	return e
}

// api asks the API itself, with a key.
func (e *monitorEnv) api(t *testing.T, key, method, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, e.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

// visitor is a client with a cookie jar that sends forms from an origin.
type visitor struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newVisitor(t *testing.T, base string) *visitor {
	jar, _ := cookiejar.New(nil)
	return &visitor{t: t, base: base, c: &http.Client{Jar: jar}}
}

func (b *visitor) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// post sends a form from origin and follows the redirect; it returns the
// final status, body and path?query.
func (b *visitor) post(path string, v url.Values, origin string) (int, string, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Request.URL.RequestURI()
}

type monitorList struct {
	Watchlists []monitor.View `json:"watchlists"`
}

type alertList struct {
	Total  int             `json:"total"`
	Alerts []monitor.Alert `json:"alerts"`
}

type muteList struct {
	Mutes []monitor.Mute `json:"mutes"`
}

// TestMonitorPages: the monitor page signs in with a monitor key (a
// read-only one is refused), adds a watchlist through its form (the API
// then has it), shows the alert the monitor raises for one of its
// addresses seen scanning, acknowledges and mutes it, rescans (202),
// removes mutes and the watchlist, and refuses cross-site POSTs.
func TestMonitorPages(t *testing.T) {
	e := monitorSite(t)
	br := newVisitor(t, e.base)
	if code, body := br.get("/monitor"); code != 200 || !strings.Contains(body, `action="/monitor/login"`) || !strings.Contains(body, `href="/monitor" aria-current="page"`) {
		t.Fatalf("monitor without a key: %d\n%s", code, body)
	}
	// a key without the monitor scope is refused and not kept
	code, body, _ := br.post("/monitor/login", url.Values{"key": {e.keys[api.ScopeRead]}}, e.base)
	if code != 403 || !strings.Contains(body, `lacks the &#34;monitor&#34; scope`) {
		t.Fatalf("a read key: %d\n%s", code, body)
	}
	if code, body := br.get("/monitor"); code != 200 || !strings.Contains(body, `action="/monitor/login"`) {
		t.Fatalf("after a refused key the page shows %d, not the login form", code)
	}
	if code, body, _ := br.post("/monitor/login", url.Values{"key": {"wrong"}}, e.base); code != 401 || !strings.Contains(body, "invalid API key") {
		t.Errorf("a wrong key: %d", code)
	}
	if code, _, _ := br.post("/monitor/login", url.Values{"key": {e.keys[api.ScopeMonitor]}}, "https://evil.example"); code != 403 {
		t.Errorf("a cross-site login: %d", code)
	}
	code, body, at := br.post("/monitor/login", url.Values{"key": {e.keys[api.ScopeMonitor]}}, e.base)
	if code != 200 || at != "/monitor" || !strings.Contains(body, `id="watchlists"`) || !strings.Contains(body, "No watchlists yet") {
		t.Fatalf("after login (%s): %d\n%s", at, code, body)
	}
	// the public pages still work with a key that has only the monitor scope
	if code, body := br.get("/ip/192.0.2.44"); code != 200 || !strings.Contains(body, `data-product="OpenSSH"`) || !strings.Contains(body, `id="exposure"`) {
		t.Errorf("the IP page with a monitor-only key: %d\n%s", code, between(body, "<main", "</main>"))
	}

	// add a watchlist
	form := url.Values{"name": {"edge"}, "cidrs": {"203.0.113.64/28\n192.0.2.44"}, "asns": {"AS64501, 64502"},
		"orgs": {"Example, Inc.\nOther Org"}, "domains": {"example.com,\n*.example.net"}, "ports": {"22, 80,443"},
		"every": {"6h"}, "rate": {"50"}, "webhook_url": {e.hook.URL + "/hook"}, "webhook_secret": {"s3cret"}, "emails": {"soc@example.com"}}
	if code, _, _ := br.post("/monitor/watchlists", form, "https://evil.example"); code != 403 {
		t.Errorf("a cross-site add: %d", code)
	}
	var lists monitorList
	if e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/monitors", &lists); len(lists.Watchlists) != 0 {
		t.Fatalf("the cross-site add got through: %+v", lists)
	}
	code, body, at = br.post("/monitor/watchlists", form, e.base)
	if code != 200 || !strings.HasPrefix(at, "/monitor?done=") || !strings.Contains(body, `<tr data-name="edge">`) ||
		!strings.Contains(body, "192.0.2.44/32, 203.0.113.64/28") || !strings.Contains(body, "AS64501, AS64502") ||
		!strings.Contains(body, "Watchlist edge saved.") || !strings.Contains(body, "webhook "+e.hook.URL+"/hook <span class=\"sub\">(signed)</span>") {
		t.Fatalf("after adding (%s): %d\n%s", at, code, body)
	}
	e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/monitors", &lists)
	if len(lists.Watchlists) != 1 {
		t.Fatalf("API watchlists: %+v", lists)
	}
	wl := lists.Watchlists[0]
	if wl.Name != "edge" || strings.Join(wl.CIDRs, " ") != "192.0.2.44/32 203.0.113.64/28" || len(wl.ASNs) != 2 ||
		strings.Join(wl.Orgs, "|") != "Example, Inc.|Other Org" || strings.Join(wl.Domains, " ") != "example.com example.net" ||
		wl.Ports != "22,80,443" || time.Duration(wl.Every) != 6*time.Hour || wl.Rate != 50 ||
		len(wl.Webhooks) != 1 || wl.Webhooks[0].Secret != "(set)" || strings.Join(wl.Emails, " ") != "soc@example.com" {
		t.Errorf("the API has %+v", wl)
	}
	// a refused form keeps what was typed and says why
	bad := url.Values{"name": {"edge2"}, "cidrs": {"not-a-cidr"}, "domains": {"example.org"}}
	code, body, _ = br.post("/monitor/watchlists", bad, e.base)
	if code != 400 || !strings.Contains(body, `id="monitor-error"`) || !strings.Contains(body, "not-a-cidr") || !strings.Contains(body, `value="edge2"`) {
		t.Errorf("a bad watchlist: %d\n%s", code, body)
	}
	// replacing it from the edit form with the secret left empty keeps the secret
	code, body = br.get("/monitor?edit=edge")
	if code != 200 || !strings.Contains(body, `value="edge"`) || !strings.Contains(body, "one is stored: leave empty to keep it") {
		t.Errorf("the edit form: %d", code)
	}
	form.Set("webhook_secret", "")
	form.Set("every", "12h")
	br.post("/monitor/watchlists", form, e.base)
	e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/monitors", &lists)
	if wl := lists.Watchlists[0]; time.Duration(wl.Every) != 12*time.Hour || len(wl.Webhooks) != 1 || wl.Webhooks[0].Secret != "(set)" {
		t.Errorf("after replacing: %+v", wl)
	}

	// one of its addresses scans the sensors: the monitor raises an alert
	time.Sleep(1100 * time.Millisecond) // after the watchlist's creation, to the second
	ev := record.Event{ID: record.NewID(), Time: time.Now().UTC(), Sensor: "s-DE", Src: srcBrute, SrcPort: 45678,
		Dst: netip.MustParseAddr("192.0.2.200"), DstPort: 22, Transport: "tcp", Handshake: true, Tags: []string{"SSH_BRUTEFORCE"},
		Classification: "malicious", SrcGeo: record.Geo{Country: "RU", ASN: 64500, Org: "Org RU"}, DstCountry: "DE"}
	if _, err := e.st.Ingest(context.Background(), []*record.Batch{{ID: record.NewID(), Producer: "sensor/t", Events: []record.Event{ev}}}); err != nil {
		t.Fatal(err)
	}
	e.st.Sync(context.Background())
	var alerts alertList
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/alerts?state=open", &alerts)
		if alerts.Total > 0 && len(alerts.Alerts[0].Deliveries) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alert after 30 s: %+v", alerts)
		}
	}
	a := alerts.Alerts[0]
	if a.Kind != monitor.SeenScanning || a.IP != srcBrute || a.Severity != "critical" {
		t.Fatalf("alert %+v", a)
	}
	_, body = br.get("/monitor")
	row := between(body, `<tr data-id="`+a.ID+`"`, "</tr>")
	for _, want := range []string{`data-kind="seen_scanning" data-severity="critical" data-state="open"`, `class="pill sev-critical"`,
		`<a href="/ip/203.0.113.66">203.0.113.66</a>`, "SSH_BRUTEFORCE", `href="/search?q=src.ip%3A203.0.113.66&amp;t=events"`,
		"log ok; webhook " + e.hook.URL + "/hook ok", `data-action="ack"`, `data-action="mute"`, ">Mute host</button>"} {
		if !strings.Contains(row, want) {
			t.Errorf("the alert's row lacks %q:\n%s", want, row)
		}
	}
	if e.hooks.Load() == 0 {
		t.Error("the webhook got nothing")
	}

	// mute its host, from the alert
	if code, _, _ := br.post("/monitor/alerts/"+a.ID+"/mute", url.Values{"for": {"7d"}}, "https://evil.example"); code != 403 {
		t.Errorf("a cross-site mute: %d", code)
	}
	code, body, _ = br.post("/monitor/alerts/"+a.ID+"/mute", url.Values{"for": {"7d"}}, e.base)
	var mutes muteList
	e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/mutes", &mutes)
	if code != 200 || len(mutes.Mutes) != 1 || mutes.Mutes[0].IP != srcBrute || mutes.Mutes[0].Watchlist != "edge" ||
		mutes.Mutes[0].Until.Sub(time.Now()) < 6*24*time.Hour {
		t.Fatalf("after muting: %d %+v", code, mutes)
	}
	if !strings.Contains(body, `<tr data-id="`+mutes.Mutes[0].ID+`" data-ip="203.0.113.66" data-port="0">`) {
		t.Errorf("the page lacks the mute:\n%s", body)
	}
	// a mute by hand, then both removed
	if code, body, _ := br.post("/monitor/mutes", url.Values{"ip": {"192.0.2.44"}, "port": {"22"}, "for": {"ever"}, "reason": {"lab"}}, e.base); code != 200 || !strings.Contains(body, `data-ip="192.0.2.44" data-port="22"`) {
		t.Errorf("a mute by hand: %d", code)
	}
	if code, body, _ := br.post("/monitor/mutes", url.Values{"ip": {"nope"}}, e.base); code != 200 || !strings.Contains(body, `id="monitor-error"`) {
		t.Errorf("a bad mute shows no error: %d", code)
	}
	e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/mutes", &mutes)
	for _, m := range mutes.Mutes {
		br.post("/monitor/mutes/"+m.ID+"/remove", nil, e.base)
	}
	if e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/mutes", &mutes); len(mutes.Mutes) != 0 {
		t.Errorf("mutes left after removing: %+v", mutes)
	}

	// acknowledge it
	if code, _, _ := br.post("/monitor/alerts/"+a.ID+"/ack", nil, "https://evil.example"); code != 403 {
		t.Errorf("a cross-site ack: %d", code)
	}
	code, body, _ = br.post("/monitor/alerts/"+a.ID+"/ack", nil, e.base)
	var got monitor.Alert
	e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/alerts/"+a.ID, &got)
	if code != 200 || got.State != monitor.Acked || got.AckedBy == "" {
		t.Fatalf("after ack: %d %+v", code, got)
	}
	if strings.Contains(body, `<tr data-id="`+a.ID+`"`) {
		t.Error("an acknowledged alert is still among the open ones")
	}
	if _, body := br.get("/monitor?alerts=acked"); !strings.Contains(body, `<tr data-id="`+a.ID+`" data-kind="seen_scanning" data-severity="critical" data-state="acked">`) ||
		!strings.Contains(body, "acknowledged by key:") {
		t.Errorf("the acknowledged view lacks the alert:\n%s", body)
	}

	// rescan now: the API answers 202
	code, body, _ = br.post("/monitor/watchlists/edge/scan", nil, e.base)
	e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/monitors", &lists)
	pending := lists.Watchlists[0].State.PendingJob
	if code != 200 || !strings.HasPrefix(pending, "edge-now-") || !strings.Contains(body, "Rescan of edge queued: job "+pending) ||
		!strings.Contains(body, `<code class="pending">`+pending+`</code>`) {
		t.Errorf("rescan: %d, pending %q\n%s", code, pending, body)
	}
	if code, body, _ := br.post("/monitor/watchlists/nope/scan", nil, e.base); code != 200 || !strings.Contains(body, `id="monitor-error"`) {
		t.Errorf("rescanning an unknown watchlist shows no error: %d", code)
	}
	// remove it
	if code, _, _ := br.post("/monitor/watchlists/edge/remove", nil, "https://evil.example"); code != 403 {
		t.Errorf("a cross-site remove: %d", code)
	}
	code, body, _ = br.post("/monitor/watchlists/edge/remove", nil, e.base)
	if e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/monitors", &lists); code != 200 || len(lists.Watchlists) != 0 || strings.Contains(body, `<tr data-name="edge">`) {
		t.Errorf("after removing: %d %+v", code, lists)
	}
	// an admin key works too; signing out forgets the key
	if code, _, _ := br.post("/monitor/logout", nil, e.base); code != 200 {
		t.Errorf("logout: %d", code)
	}
	if _, body := br.get("/monitor"); !strings.Contains(body, `action="/monitor/login"`) {
		t.Error("still signed in after signing out")
	}
	if code, body, _ := br.post("/monitor/login", url.Values{"key": {e.keys[api.ScopeAdmin]}}, e.base); code != 200 || !strings.Contains(body, `id="watchlists"`) {
		t.Errorf("an admin key: %d", code)
	}
}

// TestMonitorNeedsTheMonitor: a server without the monitor says so.
func TestMonitorNeedsTheMonitor(t *testing.T) {
	srv, _ := site(t)
	req, _ := http.NewRequest("GET", srv.URL+"/monitor", nil)
	req.AddCookie(&http.Cookie{Name: "vantage_key", Value: "whatever"})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 404 || !strings.Contains(string(b), "this server runs no monitor") {
		t.Errorf("%d\n%s", resp.StatusCode, b)
	}
}

func between(s, from, to string) string {
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
