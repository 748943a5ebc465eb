package web_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/internal/browser"
	"github.com/vantagehq/vantage/monitor"
)

// TestInChromium drives the pages in a real headless Chromium: the
// overview's map, tag cloud and matrix carry the API's numbers and are
// drawn; the panels refresh themselves; a query is typed, a facet
// clicked, a bad query shows its column, an IP page opens from a result;
// the overview fits a phone. Screenshots go to $VANTAGE_TEST_OUT/web.
func TestInChromium(t *testing.T) {
	p := browser.Open(t, "web", 2*time.Minute)
	srv, _ := siteWith(t, time.Second)

	// the overview
	p.Do("overview", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("svg.world")))
	onMap := p.Counts(`Object.fromEntries([...document.querySelectorAll('svg.world path.c:not(.l0)')].map(p => [p.dataset.cc, +p.dataset.count]))`)
	if api := buckets(t, srv.URL, "by=src_country&window=15m&limit=300"); !equal(onMap, api) {
		t.Errorf("map in the browser %v, API %v", onMap, api)
	}
	// coloured for real: a country with events is not painted like one without
	fills := p.Counts(`(() => { const f = s => getComputedStyle(document.querySelector(s)).fill; return {same: f('path[data-cc="US"]') === f('path[data-cc="FR"]') ? 1 : 0}; })()`)
	if fills["same"] != 0 {
		t.Error("the US (events) and France (none) are filled alike")
	}
	box := p.Counts(`(() => { const r = document.querySelector('svg.world').getBoundingClientRect(); return {w: Math.round(r.width), h: Math.round(r.height)}; })()`)
	if box["w"] < 500 || box["h"] < 300 {
		t.Errorf("the map is drawn %dx%d px", box["w"], box["h"])
	}
	cloud := p.Counts(`Object.fromEntries([...document.querySelectorAll('#tagcloud a.tag')].map(a => [a.dataset.tag, +a.dataset.count]))`)
	if api := buckets(t, srv.URL, "by=tag&window=1h&limit=60"); !equal(cloud, api) {
		t.Errorf("tag cloud in the browser %v, API %v", cloud, api)
	}
	cells := p.Counts(`Object.fromEntries([...document.querySelectorAll('#matrix td[data-count]')].filter(td => +td.dataset.count > 0).map(td => [td.dataset.src + '>' + td.dataset.dst, +td.dataset.count]))`)
	if want := (map[string]int64{"US>DE": 40, "RU>DE": 25, "CN>JP": 12}); !equal(cells, want) {
		t.Errorf("matrix in the browser %v, want %v", cells, want)
	}
	timing := p.Counts(`(() => { const n = performance.getEntriesByType('navigation')[0]; return {load: Math.round(n.loadEventEnd), dom: Math.round(n.domContentLoadedEventEnd)}; })()`)
	t.Logf("overview: DOM ready %d ms, load %d ms after navigation start", timing["dom"], timing["load"])
	p.Screenshot("overview")

	// live: the script reloads the panels (Refresh is 1 s here)
	before := p.String(`document.getElementById('panels').dataset.updated + '|' + document.querySelectorAll('#panels').length`)
	p.String(`document.getElementById('panels').setAttribute('data-old', '1'), 'marked'`)
	p.WaitFor("a refresh of the panels", `!document.querySelector('#panels[data-old]') && !!document.querySelector('#panels svg.world')`)
	t.Logf("panels refreshed (before: %s)", before)

	// search: type a query, see results, click a facet
	p.Do("search", chromedp.Navigate(srv.URL+"/search"), chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "port:22"), chromedp.Submit(chromedp.ID("q")))
	p.WaitFor("results", `!!document.getElementById('total')`)
	if n := p.String(`document.getElementById('total').dataset.total`); n != "2" {
		t.Errorf("port:22 gives %s services, want 2", n)
	}
	p.Screenshot("search")
	p.Do("click the DE facet", chromedp.Click(chromedp.CSS(`section.facet[data-field="country"] a[data-value="DE"]`)))
	p.WaitFor("the narrowed search", `location.search.includes('country')`)
	p.WaitFor("its results", `!!document.getElementById('total')`)
	if q, n := p.String(`document.getElementById('q').value`), p.String(`document.getElementById('total').dataset.total`); q != "port:22 country:DE" || n != "1" {
		t.Errorf("after the facet: query %q, %s results; want port:22 country:DE, 1", q, n)
	}
	// a bad query shows where it is wrong
	p.Do("bad query", chromedp.SetValue(chromedp.ID("q"), "port:22 (product:nginx"), chromedp.Submit(chromedp.ID("q")))
	p.WaitFor("the error", `!!document.getElementById('qerr')`)
	col := p.String(`document.getElementById('qerr').dataset.column`)
	caret := p.String(`(document.querySelector('#qerr pre.caret') || {}).textContent || ''`)
	if col == "" || col == "0" || !strings.Contains(caret, "^") {
		t.Errorf("the error has column %q and caret %q", col, caret)
	}
	t.Logf("bad query error at column %s:\n%s", col, caret)
	if at := p.String(`document.activeElement.id + ':' + document.activeElement.selectionStart`); at != "q:"+fmt.Sprint(mustAtoi(t, col)-1) {
		t.Errorf("after the error the cursor is at %s, want in the query at column %s", at, col)
	}
	p.Screenshot("search-error")

	// an IP page from a result
	p.Do("search again", chromedp.Navigate(srv.URL+"/search?q=port:22"), chromedp.WaitVisible(chromedp.ID("services")))
	p.Do("open an IP", chromedp.Click(chromedp.CSS(`#services a[href="/ip/192.0.2.44"]`)))
	p.WaitFor("the IP page", `location.pathname === '/ip/192.0.2.44' && !!document.querySelector('article.service')`)
	if s := p.String(`[...document.querySelectorAll('article.service')].map(a => a.dataset.port + '/' + a.dataset.product).join(',')`); s != "22/OpenSSH,80/nginx" {
		t.Errorf("services on the IP page: %s", s)
	}
	var ex api.ExposureView
	getJSON(t, srv.URL+"/api/v1/exposure/192.0.2.44", &ex)
	if score, parts := p.String(`document.getElementById('exposure-score').textContent`), p.Counts(`({n: document.querySelectorAll('#exposure-parts tbody tr').length})`)["n"]; score != strconv.Itoa(ex.Score) || parts != int64(len(ex.Parts)) {
		t.Errorf("the IP page's exposure: score %q, %d parts; the API: %d, %d parts", score, parts, ex.Score, len(ex.Parts))
	}
	p.Screenshot("ip-services")
	p.Do("a scanner's page", chromedp.Navigate(srv.URL+"/ip/203.0.113.99"), chromedp.WaitVisible(chromedp.ID("verdict")))
	if v, tags := p.String(`document.getElementById('verdict').textContent`), p.String(`[...document.querySelectorAll('#iptags a')].map(a => a.dataset.tag).sort().join(',')`); v != "malicious" || tags != "MIRAI,TELNET_SCANNER" {
		t.Errorf("sensor side: verdict %q, tags %q", v, tags)
	}
	p.Screenshot("ip-sensors")
	p.Do("about", chromedp.Navigate(srv.URL+"/about"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	p.Screenshot("about")

	// every field has a label; the keyboard alone reaches an IP page
	for _, page := range []string{"/", "/search?q=port:22", "/optout"} {
		p.Do("labels "+page, chromedp.Navigate(srv.URL+page), chromedp.WaitVisible(chromedp.CSS("main")))
		if bare := p.String(`[...document.querySelectorAll('input:not([type=hidden])')].filter(i => !i.labels.length && !i.getAttribute('aria-label')).map(i => i.name || i.id).join(',')`); bare != "" {
			t.Errorf("%s: fields without a label: %s", page, bare)
		}
	}
	p.Do("keyboard", chromedp.Navigate(srv.URL+"/about"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	for i := 0; i < 12 && p.String(`document.activeElement.id`) != "ipbox"; i++ {
		p.Do("tab", chromedp.KeyEvent("\t"))
	}
	if id := p.String(`document.activeElement.id`); id != "ipbox" {
		t.Fatalf("twelve tabs did not reach the IP box (focus on %q)", id)
	}
	p.Do("type an address", chromedp.KeyEvent("192.0.2.44\r"))
	p.WaitFor("the IP page from the keyboard", `location.pathname === '/ip/192.0.2.44'`)

	// a phone: nothing wider than the screen
	p.Do("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("svg.world")))
	if w := p.Counts(`({w: document.documentElement.scrollWidth})`)["w"]; w > 392 {
		t.Errorf("the overview is %d px wide on a 390 px phone", w)
	}
	p.Screenshot("overview-phone")
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// TestOptOutInChromium: a person fills the opt-out form for a range they
// cannot prove from here, sees the token and the link to the state; an
// operator signs in on the admin page and approves it; the person's link
// then says approved. Screenshots of each step.
func TestOptOutInChromium(t *testing.T) {
	p := browser.Open(t, "web", time.Minute)
	base, admin := optoutSiteKey(t)
	p.Do("the form", chromedp.Navigate(base+"/optout"), chromedp.WaitVisible(chromedp.ID("cidrs")),
		chromedp.SetValue(chromedp.ID("cidrs"), "198.51.100.0/24"), chromedp.SendKeys(chromedp.ID("contact"), "noc@example.net"))
	p.Screenshot("optout-form")
	p.Do("send", chromedp.Submit(chromedp.ID("contact")), chromedp.WaitVisible(chromedp.ID("optout-state")))
	if st, tok := p.String(`document.getElementById('optout-state').dataset.state`), p.String(`(document.getElementById('optout-token')||{}).textContent||''`); st != "pending" || !strings.HasPrefix(tok, "vantage-optout-") {
		t.Fatalf("after sending: state %q, token %q", st, tok)
	}
	link := p.String(`document.getElementById('optout-link').getAttribute('href')`)
	p.Screenshot("optout-pending")

	p.Do("admin sign-in", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), admin), chromedp.Submit(chromedp.ID("key")), chromedp.WaitVisible(chromedp.ID("requests")))
	if cookie := p.String(`document.cookie`); strings.Contains(cookie, "vantage_key") {
		t.Error("a script can read the key cookie")
	}
	p.Do("approve", chromedp.Click(chromedp.CSS(`#requests tr[data-state="pending"] button[data-action="approve"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#requests tr[data-state="approved"]`)))
	if v := p.String(`document.getElementById('list-version').textContent`); !strings.Contains(v, "version 1") {
		t.Errorf("list after approval: %q", v)
	}
	p.Screenshot("admin")
	p.Do("the person's link", chromedp.Navigate(base+link), chromedp.WaitVisible(chromedp.ID("optout-state")))
	if st := p.String(`document.getElementById('optout-state').dataset.state`); st != "approved" {
		t.Errorf("the person's page says %q after the approval", st)
	}
	p.Screenshot("optout-approved")
}

// TestMonitorInChromium: an operator signs in on the monitor page with a
// monitor key, adds a watchlist with the form and sees it in the table
// (and in the API); every field has a label; the alert the monitor raises
// for an address of the watchlist seen scanning is acknowledged with its
// button.
func TestMonitorInChromium(t *testing.T) {
	p := browser.Open(t, "web", 2*time.Minute)
	e := monitorSite(t)
	p.Do("sign in", chromedp.Navigate(e.base+"/monitor"), chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), e.keys[api.ScopeMonitor]), chromedp.Submit(chromedp.ID("key")),
		chromedp.WaitVisible(chromedp.ID("watchlists")))
	if bare := p.String(`[...document.querySelectorAll('main input:not([type=hidden]), main textarea, main select')].filter(i => !i.labels.length && !i.getAttribute('aria-label')).map(i => i.name || i.id).join(',')`); bare != "" {
		t.Errorf("fields without a label: %s", bare)
	}
	p.Do("fill the form", chromedp.SendKeys(chromedp.ID("wl-name"), "lab"),
		chromedp.SendKeys(chromedp.ID("wl-cidrs"), "203.0.113.64/28\n192.0.2.44"),
		chromedp.SendKeys(chromedp.ID("wl-domains"), "example.com"), chromedp.SendKeys(chromedp.ID("wl-every"), "6h"),
		chromedp.SendKeys(chromedp.ID("wl-hook"), e.hook.URL+"/hook"), chromedp.SendKeys(chromedp.ID("wl-secret"), "s3cret"))
	p.Screenshot("monitor-form")
	p.Do("save", chromedp.Click(chromedp.ID("wl-save")), chromedp.WaitVisible(chromedp.CSS(`#watchlists tr[data-name="lab"]`)))
	if cidrs := p.String(`document.querySelector('#watchlists tr[data-name="lab"] .cidrs').textContent`); cidrs != "192.0.2.44/32, 203.0.113.64/28" {
		t.Errorf("the table shows CIDRs %q", cidrs)
	}
	var lists monitorList
	if e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/monitors", &lists); len(lists.Watchlists) != 1 || lists.Watchlists[0].Name != "lab" ||
		time.Duration(lists.Watchlists[0].Every) != 6*time.Hour {
		t.Errorf("the API has %+v", lists)
	}
	// the monitor finds 203.0.113.66 in the sensors' events: an alert
	var alerts alertList
	for deadline := time.Now().Add(30 * time.Second); alerts.Total == 0; time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no alert after 30 s")
		}
		e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/alerts?state=open", &alerts)
	}
	id := alerts.Alerts[0].ID
	p.Do("reload", chromedp.Navigate(e.base+"/monitor"), chromedp.WaitVisible(chromedp.CSS(`#alerts tr[data-id="`+id+`"]`)))
	p.Screenshot("monitor-alert")
	p.Do("acknowledge", chromedp.Click(chromedp.CSS(`#alerts tr[data-id="`+id+`"] button[data-action="ack"]`)),
		chromedp.WaitVisible(chromedp.ID("monitor-done")))
	var a monitor.Alert
	if e.api(t, e.keys[api.ScopeMonitor], "GET", "/api/v1/alerts/"+id, &a); a.State != monitor.Acked {
		t.Errorf("after the button the alert is %q", a.State)
	}
	if n := p.Counts(`({n: document.querySelectorAll('#alerts tr[data-id="` + id + `"]').length})`)["n"]; n != 0 {
		t.Error("the acknowledged alert is still listed as open")
	}
	p.Do("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(e.base+"/monitor"), chromedp.WaitVisible(chromedp.ID("watchlists")))
	if w := p.Counts(`({w: document.documentElement.scrollWidth})`)["w"]; w > 392 {
		t.Errorf("the monitor page is %d px wide on a 390 px phone", w)
	}
	p.Screenshot("monitor-phone")
}
