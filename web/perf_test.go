package web_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/internal/browser"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store/duckdb"
	"github.com/vantagehq/vantage/web"
)

// TestOverviewWithManyEvents measures, in Chromium, how long the overview
// takes from navigation start to the load event (the server's five API
// queries, the HTML and the drawing) over a store of many events, spread
// over the last 24 hours from 200,000 sources in 30 countries. The goal is
// under one second with 10M events:
//
//	VANTAGE_UI_EVENTS=10000000 go test -tags duckdb_arrow -run TestOverviewWithManyEvents -v -timeout 30m ./web
//
// By default it loads 300,000 (seconds, for CI). It reports; it does not
// assert a time (this machine's load varies too much for that).
func TestOverviewWithManyEvents(t *testing.T) {
	n := 300_000
	if v := os.Getenv("VANTAGE_UI_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("VANTAGE_UI_EVENTS=%q: want a count", v)
		}
	}
	p := browser.Open(t, "web", 5*time.Minute)
	st, err := duckdb.Open(context.Background(), t.TempDir()+"/store", duckdb.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	load(t, st, n)
	t.Logf("loaded %d events in %.1f s", n, time.Since(start).Seconds())
	site, err := web.New(web.Config{API: api.New(api.Config{Store: st, Anonymous: true}), Version: "perf", Refresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(site)
	defer srv.Close()
	var loads []float64
	for i := 0; i < 6; i++ {
		p.Do("overview", chromedp.Navigate(srv.URL+"/?window=1h"), chromedp.WaitVisible(chromedp.CSS("svg.world")))
		ms := p.Counts(`({ms: Math.round(performance.getEntriesByType('navigation')[0].loadEventEnd)})`)["ms"]
		if i > 0 { // the first warms DuckDB's caches, as any running server has
			loads = append(loads, float64(ms))
		}
	}
	total := p.String(`document.querySelector('#countries caption').textContent`)
	slices.Sort(loads)
	verdict := "met"
	if loads[len(loads)/2] >= 1000 {
		verdict = "MISSED"
	}
	t.Logf("overview over %d events (%s in the last hour): load event after %.0f ms median, %.0f ms max of %d loads (goal < 1000 ms: %s)",
		n, total, loads[len(loads)/2], loads[len(loads)-1], len(loads), verdict)
	p.Screenshot(fmt.Sprintf("overview-%d-events", n))
}

// load stores n events over the last 24 hours, in time order, in calls of
// 160 batches of 1000 as the ingester groups them.
func load(t *testing.T, st *duckdb.DB, n int) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	now := time.Now().UTC()
	countries := []string{"US", "CN", "RU", "DE", "NL", "GB", "FR", "BR", "IN", "JP", "KR", "SG", "HK", "TW", "VN",
		"ID", "IR", "UA", "CA", "AU", "ZA", "MX", "AR", "TR", "PL", "SE", "IT", "ES", "TH", "EG"}
	tags := []string{"TCP_SYN", "ZMAP", "MASSCAN", "NMAP", "HTTP_SCANNER", "SSH_BRUTEFORCE", "MIRAI", "TELNET_SCANNER",
		"RDP_SCANNER", "SHODAN", "CENSYS", "LOG4SHELL", "SIP_SCANNER", "REDIS_SCANNER", "ICMP_ECHO_REQUEST"}
	step := 24 * time.Hour / time.Duration(n)
	for done := 0; done < n; {
		var call []*record.Batch
		for j := 0; j < 160 && done < n; j++ {
			evs := make([]record.Event, min(1000, n-done))
			for k := range evs {
				src := uint32(rng.IntN(200_000))
				kk := src * 2654435761
				evs[k] = record.Event{ID: record.NewID(), Time: now.Add(-24*time.Hour + time.Duration(done+k)*step), Sensor: fmt.Sprintf("s%d", src%8),
					Src: netip.AddrFrom4([4]byte{byte(1 + kk%220), byte(kk >> 8), byte(kk >> 16), byte(kk >> 24)}), SrcPort: uint16(rng.IntN(65536)),
					Dst: netip.AddrFrom4([4]byte{198, 51, 100, byte(128 + rng.IntN(128))}), DstPort: []uint16{22, 23, 80, 443, 445, 3389, 5060, 8080}[rng.IntN(8)],
					Transport: "tcp", TTL: 50, TCPFlags: 2, TCPWindow: 1024, Tags: []string{"TCP_SYN", tags[src%uint32(len(tags))]},
					Classification: []string{"unknown", "malicious", "benign"}[src%3],
					SrcGeo:         record.Geo{Country: countries[src%uint32(len(countries))], ASN: 64500 + src%500},
					DstCountry:     []string{"DE", "US", "SG"}[src%3]}
			}
			call = append(call, &record.Batch{ID: record.NewID(), Events: evs})
			done += len(evs)
		}
		if _, err := st.Ingest(ctx, call); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}
