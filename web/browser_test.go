package web_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vantagehq/vantage/internal/browser"
)

// TestInChromium drives the pages in a real headless Chromium: the
// overview's map, tag cloud and matrix carry the API's numbers and are
// drawn; the panels refresh themselves; a query is typed, a facet
// clicked, a bad query shows its column, an IP page opens from a result;
// the overview fits a phone. Screenshots go to $VANTAGE_TEST_OUT/web.
func TestInChromium(t *testing.T) {
	ctx := browser.Start(t)
	srv, _ := siteWith(t, time.Second)
	out := browser.OutDir(t, "web")
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(js string) map[string]int64 {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]int64](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	str := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	waitFor := func(what, js string) {
		t.Helper()
		// polled from here, not in the page: a navigation ends an in-page poll
		var err error
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			var ok bool
			if ok, err = chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err == nil && ok {
				return
			}
		}
		t.Fatalf("waiting for %s (%s): %v; page: %.300s", what, js, err, str(`document.body.innerText`))
	}

	// the overview
	run("overview", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("svg.world")))
	onMap := eval(`Object.fromEntries([...document.querySelectorAll('svg.world path.c:not(.l0)')].map(p => [p.dataset.cc, +p.dataset.count]))`)
	if api := buckets(t, srv.URL, "by=src_country&window=15m&limit=300"); !equal(onMap, api) {
		t.Errorf("map in the browser %v, API %v", onMap, api)
	}
	// coloured for real: a country with events is not painted like one without
	fills := eval(`(() => { const f = s => getComputedStyle(document.querySelector(s)).fill; return {same: f('path[data-cc="US"]') === f('path[data-cc="FR"]') ? 1 : 0}; })()`)
	if fills["same"] != 0 {
		t.Error("the US (events) and France (none) are filled alike")
	}
	box := eval(`(() => { const r = document.querySelector('svg.world').getBoundingClientRect(); return {w: Math.round(r.width), h: Math.round(r.height)}; })()`)
	if box["w"] < 500 || box["h"] < 300 {
		t.Errorf("the map is drawn %dx%d px", box["w"], box["h"])
	}
	cloud := eval(`Object.fromEntries([...document.querySelectorAll('#tagcloud a.tag')].map(a => [a.dataset.tag, +a.dataset.count]))`)
	if api := buckets(t, srv.URL, "by=tag&window=1h&limit=60"); !equal(cloud, api) {
		t.Errorf("tag cloud in the browser %v, API %v", cloud, api)
	}
	cells := eval(`Object.fromEntries([...document.querySelectorAll('#matrix td[data-count]')].filter(td => +td.dataset.count > 0).map(td => [td.dataset.src + '>' + td.dataset.dst, +td.dataset.count]))`)
	if want := (map[string]int64{"US>DE": 40, "RU>DE": 25, "CN>JP": 12}); !equal(cells, want) {
		t.Errorf("matrix in the browser %v, want %v", cells, want)
	}
	timing := eval(`(() => { const n = performance.getEntriesByType('navigation')[0]; return {load: Math.round(n.loadEventEnd), dom: Math.round(n.domContentLoadedEventEnd)}; })()`)
	t.Logf("overview: DOM ready %d ms, load %d ms after navigation start", timing["dom"], timing["load"])
	browser.Screenshot(t, ctx, out, "overview")

	// live: the script reloads the panels (Refresh is 1 s here)
	before := str(`document.getElementById('panels').dataset.updated + '|' + document.querySelectorAll('#panels').length`)
	str(`document.getElementById('panels').setAttribute('data-old', '1'), 'marked'`)
	waitFor("a refresh of the panels", `!document.querySelector('#panels[data-old]') && !!document.querySelector('#panels svg.world')`)
	t.Logf("panels refreshed (before: %s)", before)

	// search: type a query, see results, click a facet
	run("search", chromedp.Navigate(srv.URL+"/search"), chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "port:22"), chromedp.Submit(chromedp.ID("q")))
	waitFor("results", `!!document.getElementById('total')`)
	if n := str(`document.getElementById('total').dataset.total`); n != "2" {
		t.Errorf("port:22 gives %s services, want 2", n)
	}
	browser.Screenshot(t, ctx, out, "search")
	run("click the DE facet", chromedp.Click(chromedp.CSS(`section.facet[data-field="country"] a[data-value="DE"]`)))
	waitFor("the narrowed search", `location.search.includes('country')`)
	waitFor("its results", `!!document.getElementById('total')`)
	if q, n := str(`document.getElementById('q').value`), str(`document.getElementById('total').dataset.total`); q != "port:22 country:DE" || n != "1" {
		t.Errorf("after the facet: query %q, %s results; want port:22 country:DE, 1", q, n)
	}
	// a bad query shows where it is wrong
	run("bad query", chromedp.SetValue(chromedp.ID("q"), "port:22 (product:nginx"), chromedp.Submit(chromedp.ID("q")))
	waitFor("the error", `!!document.getElementById('qerr')`)
	col := str(`document.getElementById('qerr').dataset.column`)
	caret := str(`(document.querySelector('#qerr pre.caret') || {}).textContent || ''`)
	if col == "" || col == "0" || !strings.Contains(caret, "^") {
		t.Errorf("the error has column %q and caret %q", col, caret)
	}
	t.Logf("bad query error at column %s:\n%s", col, caret)
	if at := str(`document.activeElement.id + ':' + document.activeElement.selectionStart`); at != "q:"+fmt.Sprint(mustAtoi(t, col)-1) {
		t.Errorf("after the error the cursor is at %s, want in the query at column %s", at, col)
	}
	browser.Screenshot(t, ctx, out, "search-error")

	// an IP page from a result
	run("search again", chromedp.Navigate(srv.URL+"/search?q=port:22"), chromedp.WaitVisible(chromedp.ID("services")))
	run("open an IP", chromedp.Click(chromedp.CSS(`#services a[href="/ip/192.0.2.44"]`)))
	waitFor("the IP page", `location.pathname === '/ip/192.0.2.44' && !!document.querySelector('article.service')`)
	if s := str(`[...document.querySelectorAll('article.service')].map(a => a.dataset.port + '/' + a.dataset.product).join(',')`); s != "22/OpenSSH,80/nginx" {
		t.Errorf("services on the IP page: %s", s)
	}
	browser.Screenshot(t, ctx, out, "ip-services")
	run("a scanner's page", chromedp.Navigate(srv.URL+"/ip/203.0.113.99"), chromedp.WaitVisible(chromedp.ID("verdict")))
	if v, tags := str(`document.getElementById('verdict').textContent`), str(`[...document.querySelectorAll('#iptags a')].map(a => a.dataset.tag).sort().join(',')`); v != "malicious" || tags != "MIRAI,TELNET_SCANNER" {
		t.Errorf("sensor side: verdict %q, tags %q", v, tags)
	}
	browser.Screenshot(t, ctx, out, "ip-sensors")
	run("about", chromedp.Navigate(srv.URL+"/about"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	browser.Screenshot(t, ctx, out, "about")

	// every field has a label; the keyboard alone reaches an IP page
	for _, page := range []string{"/", "/search?q=port:22", "/optout"} {
		run("labels "+page, chromedp.Navigate(srv.URL+page), chromedp.WaitVisible(chromedp.CSS("main")))
		if bare := str(`[...document.querySelectorAll('input:not([type=hidden])')].filter(i => !i.labels.length && !i.getAttribute('aria-label')).map(i => i.name || i.id).join(',')`); bare != "" {
			t.Errorf("%s: fields without a label: %s", page, bare)
		}
	}
	run("keyboard", chromedp.Navigate(srv.URL+"/about"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	for i := 0; i < 12 && str(`document.activeElement.id`) != "ipbox"; i++ {
		run("tab", chromedp.KeyEvent("\t"))
	}
	if id := str(`document.activeElement.id`); id != "ipbox" {
		t.Fatalf("twelve tabs did not reach the IP box (focus on %q)", id)
	}
	run("type an address", chromedp.KeyEvent("192.0.2.44\r"))
	waitFor("the IP page from the keyboard", `location.pathname === '/ip/192.0.2.44'`)

	// a phone: nothing wider than the screen
	run("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("svg.world")))
	if w := eval(`({w: document.documentElement.scrollWidth})`)["w"]; w > 392 {
		t.Errorf("the overview is %d px wide on a 390 px phone", w)
	}
	browser.Screenshot(t, ctx, out, "overview-phone")
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
	ctx := browser.Start(t)
	base, admin := optoutSiteKey(t)
	out := browser.OutDir(t, "web")
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	str := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	run("the form", chromedp.Navigate(base+"/optout"), chromedp.WaitVisible(chromedp.ID("cidrs")),
		chromedp.SetValue(chromedp.ID("cidrs"), "198.51.100.0/24"), chromedp.SendKeys(chromedp.ID("contact"), "noc@example.net"))
	browser.Screenshot(t, ctx, out, "optout-form")
	run("send", chromedp.Submit(chromedp.ID("contact")), chromedp.WaitVisible(chromedp.ID("optout-state")))
	if st, tok := str(`document.getElementById('optout-state').dataset.state`), str(`(document.getElementById('optout-token')||{}).textContent||''`); st != "pending" || !strings.HasPrefix(tok, "vantage-optout-") {
		t.Fatalf("after sending: state %q, token %q", st, tok)
	}
	link := str(`document.getElementById('optout-link').getAttribute('href')`)
	browser.Screenshot(t, ctx, out, "optout-pending")

	run("admin sign-in", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), admin), chromedp.Submit(chromedp.ID("key")), chromedp.WaitVisible(chromedp.ID("requests")))
	if cookie := str(`document.cookie`); strings.Contains(cookie, "vantage_key") {
		t.Error("a script can read the key cookie")
	}
	run("approve", chromedp.Click(chromedp.CSS(`#requests tr[data-state="pending"] button[data-action="approve"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#requests tr[data-state="approved"]`)))
	if v := str(`document.getElementById('list-version').textContent`); !strings.Contains(v, "version 1") {
		t.Errorf("list after approval: %q", v)
	}
	browser.Screenshot(t, ctx, out, "admin")
	run("the person's link", chromedp.Navigate(base+link), chromedp.WaitVisible(chromedp.ID("optout-state")))
	if st := str(`document.getElementById('optout-state').dataset.state`); st != "approved" {
		t.Errorf("the person's page says %q after the approval", st)
	}
	browser.Screenshot(t, ctx, out, "optout-approved")
}
