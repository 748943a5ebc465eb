package netlab_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vantagehq/vantage/internal/browser"
)

// checkWebUI drives the web UI of a server that vantage up --demo filled
// from the lab, in headless Chromium: the overview's map, tag cloud and
// matrix carry the numbers the API returns; a typed query gives the API's
// total and a clicked facet narrows it; an IP page shows the services the
// scan found and the verdict and tags the sensor gave; a bad query shows
// its column. Screenshots of each view go to $VANTAGE_TEST_OUT/netlab-web.
func checkWebUI(t *testing.T, base, key string) {
	p := browser.Open(t, "netlab-web", 3*time.Minute)
	base = strings.TrimSuffix(base, "/")
	api := func(path string) map[string]int64 {
		var b buckets
		apiGet(t, base, key, path, &b)
		return b.keys()
	}
	matrixAPI := func() map[string]int64 {
		var m struct {
			Cells []struct {
				Src, Dst string
				Count    int64
			} `json:"cells"`
		}
		apiGet(t, base, key, "/api/v1/sensors/matrix?window=1h", &m)
		out := map[string]int64{}
		for _, c := range m.Cells {
			out[c.Src+">"+c.Dst] += c.Count
		}
		return out
	}

	// The overview. The lab's traffic keeps arriving, so the page and the
	// API are compared at nearly the same moment, a few times if a round
	// of traffic lands between the two reads.
	var mapDOM, mapAPI, cloudDOM, cloudAPI, cellsDOM, cellsAPI map[string]int64
	for try := 1; try <= 6; try++ {
		p.Do("overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("svg.world")))
		mapDOM = p.Counts(`Object.fromEntries([...document.querySelectorAll('#countries tr[data-cc]')].map(r => [r.dataset.cc, +r.dataset.count]))`)
		cloudDOM = p.Counts(`Object.fromEntries([...document.querySelectorAll('#tagcloud a.tag')].map(a => [a.dataset.tag, +a.dataset.count]))`)
		cellsDOM = p.Counts(`Object.fromEntries([...document.querySelectorAll('#matrix td[data-count]')].filter(td => +td.dataset.count > 0).map(td => [td.dataset.src + '>' + td.dataset.dst, +td.dataset.count]))`)
		mapAPI, cloudAPI, cellsAPI = api("/api/v1/sensors/stats?by=src_country&window=15m&limit=300"), api("/api/v1/sensors/stats?by=tag&window=1h&limit=60"), matrixAPI()
		if same(mapDOM, mapAPI) && same(cloudDOM, cloudAPI) && same(cellsDOM, cellsAPI) {
			t.Logf("overview = API at try %d", try)
			break
		}
		time.Sleep(3 * time.Second)
	}
	if !same(mapDOM, mapAPI) {
		t.Errorf("countries on the page %v, API %v", mapDOM, mapAPI)
	}
	if !same(cloudDOM, cloudAPI) {
		t.Errorf("tag cloud %v, API %v", cloudDOM, cloudAPI)
	}
	if !same(cellsDOM, cellsAPI) {
		t.Errorf("matrix %v, API %v", cellsDOM, cellsAPI)
	}
	painted := p.Counts(`Object.fromEntries([...document.querySelectorAll('svg.world path.c:not(.l0)')].map(p => [p.dataset.cc, +p.dataset.count]))`)
	dst := map[string]bool{}
	for k := range cellsDOM {
		dst[k[strings.Index(k, ">")+1:]] = true
	}
	t.Logf("map: %d countries painted %v; cloud: %d tags; matrix: %d cells, %d target countries", len(painted), painted, len(cloudDOM), len(cellsDOM), len(dst))
	if len(painted) < 5 || len(dst) < 2 || len(cloudDOM) < 5 {
		t.Errorf("the overview shows too little of the lab: %d countries on the map, %d target countries, %d tags", len(painted), len(dst), len(cloudDOM))
	}
	timing := p.Counts(`(() => { const n = performance.getEntriesByType('navigation')[0]; return {load: Math.round(n.loadEventEnd)}; })()`)
	t.Logf("overview load event after %d ms", timing["load"])
	p.Screenshot("overview")

	// Search: type a query, compare with the API, click the first product facet.
	p.Do("search", chromedp.Navigate(base+"/search"), chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "port:22"), chromedp.Submit(chromedp.ID("q")))
	p.WaitFor("results", `!!document.getElementById('total')`)
	var count struct {
		Total  int64 `json:"total"`
		Facets map[string][]struct {
			Value string `json:"value"`
			Count int64  `json:"count"`
		} `json:"facets"`
	}
	apiGet(t, base, key, "/api/v1/count?q=port:22&facets=product", &count)
	if got := p.String(`document.getElementById('total').dataset.total`); got != fmt.Sprint(count.Total) || count.Total == 0 {
		t.Errorf("port:22 on the page: %s services; API: %d", got, count.Total)
	}
	p.Screenshot("search")
	if len(count.Facets["product"]) == 0 {
		t.Fatalf("no product facet for port:22 in the API")
	}
	top := count.Facets["product"][0]
	p.Do("click the product facet", chromedp.Click(chromedp.CSS(`section.facet[data-field="product"] li:first-child a`)))
	p.WaitFor("the narrowed search", `location.search.includes('product')`)
	p.WaitFor("its results", `!!document.getElementById('total')`)
	q, total := p.String(`document.getElementById('q').value`), p.String(`document.getElementById('total').dataset.total`)
	t.Logf("facet %q (%d): query %q, %s results", top.Value, top.Count, q, total)
	if !strings.HasPrefix(q, "port:22 product:") || total != fmt.Sprint(top.Count) {
		t.Errorf("after clicking product %q (%d): query %q, %s results", top.Value, top.Count, q, total)
	}
	// an IP page from a result: the scan's service is there
	ip := p.String(`document.querySelector('#services tr[data-ip]').dataset.ip`)
	p.Do("open "+ip, chromedp.Click(chromedp.CSS(`#services tr[data-ip] a`)))
	p.WaitFor("the IP page", `location.pathname === '/ip/`+ip+`' && !!document.querySelector('article.service')`)
	if ports := p.String(`[...document.querySelectorAll('article.service')].map(a => a.dataset.port + ' ' + a.dataset.product).join(',')`); !strings.Contains(ports, "22 "+top.Value) {
		t.Errorf("%s's page shows %q, want port 22 with %s", ip, ports, top.Value)
	}
	p.Screenshot("ip-services")

	// The sensors' side: events of malicious sources, then one source's page.
	p.Do("events", chromedp.Navigate(base+"/search?t=events&q="+url.QueryEscape("classification:malicious")), chromedp.WaitVisible(chromedp.ID("events")))
	src := p.String(`(document.querySelector('#events tr[data-src]') || {dataset: {}}).dataset.src || ''`)
	if src == "" {
		t.Fatal("no malicious events in the events search")
	}
	p.Screenshot("search-events")
	var view struct {
		Classification string   `json:"classification"`
		Tags           []string `json:"tags"`
	}
	apiGet(t, base, key, "/api/v1/sensors/ip/"+src, &view)
	p.Do("open "+src, chromedp.Navigate(base+"/ip/"+src), chromedp.WaitVisible(chromedp.ID("verdict")))
	verdict := p.String(`document.getElementById('verdict').textContent`)
	tags := p.String(`[...document.querySelectorAll('#iptags a')].map(a => a.dataset.tag).join(',')`)
	t.Logf("%s: verdict %s, tags %s; answer: %s", src, verdict, tags, p.String(`document.getElementById('answer').textContent`))
	if verdict != view.Classification || tags != strings.Join(view.Tags, ",") {
		t.Errorf("%s on the page: %s [%s]; API: %s %v", src, verdict, tags, view.Classification, view.Tags)
	}
	p.Screenshot("ip-sensors")

	// A bad query points at its column.
	p.Do("bad query", chromedp.Navigate(base+"/search"), chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "port:22 product:(nginx"), chromedp.Submit(chromedp.ID("q")))
	p.WaitFor("the error", `!!document.getElementById('qerr')`)
	if col := p.String(`document.getElementById('qerr').dataset.column`); col == "" || col == "0" {
		t.Errorf("the error has no column")
	} else {
		t.Logf("bad query: error at column %s: %s", col, p.String(`document.querySelector('#qerr p').textContent`))
	}
	p.Screenshot("search-error")
}

func same(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
