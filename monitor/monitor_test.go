package monitor

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/enrich"
	"github.com/vantagehq/vantage/eol"
	"github.com/vantagehq/vantage/job"
	"github.com/vantagehq/vantage/notify"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store/duckdb"
	"github.com/vantagehq/vantage/vuln"
)

// env is a monitor over a real embedded bus and a real DuckDB store, with
// a webhook receiver; jobs are "run" by ingesting their results by hand.
type env struct {
	t     *testing.T
	ctx   context.Context
	m     *Monitor
	st    *duckdb.DB
	mu    sync.Mutex
	hooks []Alert
	url   string
	n     int // jobs so far
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	b, err := bus.Open(ctx, bus.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	st, err := duckdb.Open(ctx, t.TempDir(), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	jobs, err := job.Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, st: st}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var a Alert
		json.Unmarshal(body, &a)
		e.mu.Lock()
		e.hooks = append(e.hooks, a)
		e.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	// one known-exploited CVE for OpenSSH 8.9p1, none for the rest
	vulns := func(cpe string) []vuln.Vuln {
		if strings.Contains(cpe, ":openssh:8.9p1") {
			return []vuln.Vuln{{ID: "CVE-2099-0001", Score: 8.1, CVSS: "3.1", KEV: true}}
		}
		return nil
	}
	e.m, err = New(ctx, Config{Bus: b, Store: st, Jobs: jobs, Vulns: vulns, EOL: eol.Default(), IngestWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Put(ctx, Watchlist{Name: "corp", CIDRs: []string{"192.0.2.0/24"}, Webhooks: []Webhook{{URL: srv.URL, Secret: "k"}}}); err != nil {
		t.Fatal(err)
	}
	return e
}

func ssh(ip, version string) record.Service {
	return record.Service{IP: netip.MustParseAddr(ip), Port: 22, Transport: "tcp", State: "open", Protocol: "ssh",
		Product: "OpenSSH", Version: version, CPE: []string{"cpe:2.3:a:openbsd:openssh:" + version + ":*:*:*:*:*:*:*"}}
}

func web(ip string, port uint16, version string, notAfter time.Time) record.Service {
	s := record.Service{IP: netip.MustParseAddr(ip), Port: port, Transport: "tcp", State: "open", Protocol: "http",
		Product: "nginx", Version: version, CPE: []string{"cpe:2.3:a:f5:nginx:" + version + ":*:*:*:*:*:*:*"}}
	if !notAfter.IsZero() {
		s.TLS = &record.TLS{SHA256: "c0ffee", Subject: "CN=www.example.com", NotAfter: notAfter}
	}
	return s
}

// rescan stores a job's results and evaluates it, as the worker and the
// job watcher would.
func (e *env) rescan(svcs ...record.Service) string {
	e.t.Helper()
	e.n++
	id := "corp-test-" + string(rune('a'+e.n))
	started := time.Now().UTC()
	b := &record.Batch{ID: record.HashID("batch", id), Producer: "test"}
	for _, s := range svcs {
		s.ScanID, s.Time = id, time.Now().UTC()
		s.ID = record.ServiceID(id, s.IP, s.Port, s.Transport)
		b.Services = append(b.Services, s)
	}
	if _, err := e.st.Ingest(e.ctx, []*record.Batch{b}); err != nil {
		e.t.Fatal(err)
	}
	e.m.updateRun(e.ctx, "corp", func(r *RunState) bool { r.PendingJob = id; return true })
	e.m.evaluate(e.ctx, job.Status{Scan: job.Scan{ID: id, Origin: "monitor:corp"}, State: job.Done, Published: len(svcs), Started: started})
	if rs, _ := e.m.State(e.ctx, "corp"); rs.LastJob != id {
		e.t.Fatalf("job %s not evaluated: %+v", id, rs)
	}
	return id
}

func (e *env) sent() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, a := range e.hooks {
		out = append(out, a.Kind+" "+a.Where())
	}
	slices.Sort(out)
	e.hooks = nil
	return out
}

func kinds(as []Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Kind+" "+a.Where())
	}
	slices.Sort(out)
	return out
}

func TestMonitorAlertsDedupMuteAck(t *testing.T) {
	e := newEnv(t)
	soon := time.Now().Add(10 * 24 * time.Hour)

	// baseline: standing problems only, no changes
	e.rescan(ssh("192.0.2.1", "8.9p1"), web("192.0.2.2", 80, "1.18.0", time.Time{}), web("192.0.2.3", 443, "1.28.0", soon))
	want := []string{"cert_expiring 192.0.2.3:443/tcp", "end_of_life 192.0.2.2:80/tcp", "vulnerable 192.0.2.1:22/tcp"}
	if got := e.sent(); !slices.Equal(got, want) {
		t.Fatalf("baseline sent %q, want %q", got, want)
	}
	as, _ := e.m.Alerts(e.ctx, Filter{Kind: Vulnerable})
	if len(as) != 1 || as[0].Severity != "critical" || len(as[0].Evidence.CVEs) != 1 || !as[0].Evidence.CVEs[0].KEV {
		t.Errorf("vulnerable alert %+v", as)
	}
	if len(as) == 1 && (len(as[0].Deliveries) != 2 || !as[0].Deliveries[0].OK || !as[0].Deliveries[1].OK) {
		t.Errorf("deliveries %+v, want log and webhook ok", as[0].Deliveries)
	}

	// mute the SSH host; then it upgrades, and a new port opens elsewhere
	if _, err := e.m.Mute(e.ctx, Mute{IP: netip.MustParseAddr("192.0.2.1"), Reason: "patching"}); err != nil {
		t.Fatal(err)
	}
	e.rescan(ssh("192.0.2.1", "9.6p1"), web("192.0.2.2", 80, "1.18.0", time.Time{}), web("192.0.2.3", 443, "1.28.0", soon),
		web("192.0.2.4", 3389, "", time.Time{}))
	if got := e.sent(); !slices.Equal(got, []string{"new_service 192.0.2.4:3389/tcp"}) {
		t.Errorf("second rescan sent %q; want only the new service (the upgrade is muted, the rest deduplicated)", got)
	}
	all, _ := e.m.Alerts(e.ctx, Filter{Muted: true})
	if got := kinds(all); !slices.Equal(got, []string{"cert_expiring 192.0.2.3:443/tcp", "end_of_life 192.0.2.2:80/tcp",
		"new_service 192.0.2.4:3389/tcp", "version_changed 192.0.2.1:22/tcp", "vulnerable 192.0.2.1:22/tcp"}) {
		t.Errorf("stored alerts %q", got)
	}
	for _, a := range all {
		switch {
		case a.Kind == EndOfLife && a.Count != 2:
			t.Errorf("end_of_life count %d, want 2 (raised twice, stored once)", a.Count)
		case a.Kind == VersionChanged && !a.Muted:
			t.Error("the upgrade under a mute is not marked muted")
		}
	}
	unmuted, _ := e.m.Alerts(e.ctx, Filter{})
	if slices.ContainsFunc(unmuted, func(a Alert) bool { return a.Muted }) {
		t.Error("muted alerts listed without asking")
	}

	// acknowledged: stays acknowledged when found again
	var eolID string
	for _, a := range all {
		if a.Kind == EndOfLife {
			eolID = a.ID
		}
	}
	if a, err := e.m.Ack(e.ctx, eolID, "key:test"); err != nil || a.State != Acked || a.AckedBy != "key:test" {
		t.Fatalf("ack: %+v %v", a, err)
	}
	// a service that stops answering is gone at the second miss
	e.rescan(ssh("192.0.2.1", "9.6p1"), web("192.0.2.2", 80, "1.18.0", time.Time{}), web("192.0.2.3", 443, "1.28.0", soon))
	if got := e.sent(); len(got) != 0 {
		t.Errorf("first miss sent %q", got)
	}
	e.rescan(ssh("192.0.2.1", "9.6p1"), web("192.0.2.2", 80, "1.18.0", time.Time{}), web("192.0.2.3", 443, "1.28.0", soon))
	if got := e.sent(); !slices.Equal(got, []string{"service_gone 192.0.2.4:3389/tcp"}) {
		t.Errorf("second miss sent %q", got)
	}
	if a, _ := e.m.Alert(e.ctx, eolID); a.State != Acked || a.Count != 4 {
		t.Errorf("acknowledged alert after two more rescans: state %s count %d", a.State, a.Count)
	}
	hs, _ := e.m.Hosts(e.ctx, "corp")
	if len(hs) != 3 {
		t.Errorf("%d hosts remembered, want 3", len(hs))
	}
}

// One of the watchlist's addresses seen by the sensors raises one alert,
// counted again (not sent again) when it goes on.
func TestMonitorSeenScanning(t *testing.T) {
	e := newEnv(t)
	w, _ := e.m.Get(e.ctx, "corp")
	src := netip.MustParseAddr("192.0.2.66")
	events := func(n int) {
		b := &record.Batch{ID: record.HashID("events", time.Now().String()), Producer: "sensor/test"}
		for i := range n {
			ev := record.Event{Time: time.Now().UTC(), Sensor: "s1", Src: src, SrcPort: 40000, Dst: netip.MustParseAddr("198.51.100.200"),
				DstPort: uint16(22 + i), Transport: "tcp", Tags: []string{"ssh-scan"}}
			ev.ID = record.HashID("event", b.ID.String(), string(rune(i)))
			b.Events = append(b.Events, ev)
		}
		if _, err := e.st.Ingest(e.ctx, []*record.Batch{b}); err != nil {
			t.Fatal(err)
		}
		e.st.Sync(e.ctx)
	}
	e.m.checkSensors(e.ctx, w)
	if got := e.sent(); len(got) != 0 {
		t.Fatalf("nothing seen yet, sent %q", got)
	}
	events(3)
	e.m.checkSensors(e.ctx, w)
	if got := e.sent(); !slices.Equal(got, []string{"seen_scanning 192.0.2.66"}) {
		t.Fatalf("sent %q", got)
	}
	events(2)
	e.m.checkSensors(e.ctx, w)
	if got := e.sent(); len(got) != 0 {
		t.Errorf("sent again: %q", got)
	}
	as, _ := e.m.Alerts(e.ctx, Filter{Kind: SeenScanning})
	if len(as) != 1 || as[0].Count != 2 || as[0].Evidence.Events != 5 || as[0].Severity == "" {
		t.Errorf("alerts %+v", as)
	}
}

// TestMonitorASN: a watchlist's AS is rescanned whole, from the server's
// ASN data (a real enrich.Enricher over a small ASN file), while it stays
// under MaxASNAddresses; a larger one is watched through the hosts seen in
// it. The sensors watch the AS by the events' source AS.
func TestMonitorASN(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	csv := filepath.Join(dir, "asn-ipv4.csv")
	if err := os.WriteFile(csv, []byte("1.1.1.0,1.1.1.255,64496,Ours\n5.5.5.0,5.5.5.3,64496,Ours\n"+
		"2.0.0.0,2.31.255.255,64497,Huge\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	geo, err := enrich.Open(enrich.Config{ASNv4CSV: csv}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e.m.cfg.ASNPrefixes = geo.ASNPrefixes
	w, err := e.m.Put(e.ctx, Watchlist{Name: "as", ASNs: []uint32{64496, 64497}})
	if err != nil {
		t.Fatal(err)
	}
	targets, _, err := e.m.targets(e.ctx, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"1.1.1.0/24", "5.5.5.0/30"}; !slices.Equal(targets, want) {
		t.Errorf("targets %q, want %q (AS64497's 2M addresses are over the limit)", targets, want)
	}

	b := &record.Batch{ID: record.HashID("events", "as"), Producer: "sensor/test"}
	for i, src := range []string{"9.9.9.9", "8.8.4.4"} {
		ev := record.Event{Time: time.Now().UTC(), Sensor: "s1", Src: netip.MustParseAddr(src), SrcPort: 40000,
			Dst: netip.MustParseAddr("198.51.100.200"), DstPort: 23, Transport: "tcp", SrcGeo: record.Geo{ASN: uint32(64496 + 2*i)}}
		ev.ID = record.HashID("event", src)
		b.Events = append(b.Events, ev)
	}
	if _, err := e.st.Ingest(e.ctx, []*record.Batch{b}); err != nil {
		t.Fatal(err)
	}
	e.st.Sync(e.ctx)
	e.m.checkSensors(e.ctx, w)
	as, _ := e.m.Alerts(e.ctx, Filter{Kind: SeenScanning, Watchlist: "as"})
	if len(as) != 1 || as[0].IP != netip.MustParseAddr("9.9.9.9") {
		t.Errorf("seen_scanning alerts %+v, want one for 9.9.9.9 (in AS64496)", as)
	}
}

// TestMonitorRedeliver: a webhook delivery that failed after its retries
// is sent again at the next start (redeliver), with the alert's delivery
// ID, and recorded as delivered; an alert older than RedeliverWithin is
// left alone.
func TestMonitorRedeliver(t *testing.T) {
	e := newEnv(t)
	w, _ := e.m.Get(e.ctx, "corp")
	fresh := newAlert(w.Name, NewService, "medium", netip.MustParseAddr("192.0.2.7"), 8080, "tcp")
	fresh.Title = "new service on 192.0.2.7:8080"
	old := newAlert(w.Name, NewService, "medium", netip.MustParseAddr("192.0.2.8"), 8080, "tcp")
	old.Title = "new service on 192.0.2.8:8080"
	if n := e.m.raise(e.ctx, w, []*Alert{fresh, old}); n != 2 {
		t.Fatalf("raised %d", n)
	}
	if got := e.sent(); len(got) != 2 {
		t.Fatalf("first delivery: %q", got)
	}
	// the receiver was down: both webhook deliveries failed; one alert is
	// two days old
	hook := (&notify.Webhook{URL: e.url}).Name()
	for _, a := range []*Alert{fresh, old} {
		_, err := e.m.updateAlert(e.ctx, a.ID, func(x *Alert) bool {
			for i := range x.Deliveries {
				if x.Deliveries[i].Name == hook {
					x.Deliveries[i].OK, x.Deliveries[i].Error = false, "connection refused"
				}
			}
			if x.ID == old.ID {
				x.LastSeen = time.Now().Add(-48 * time.Hour)
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	e.m.redeliver(e.ctx)
	if got := e.sent(); !slices.Equal(got, []string{"new_service 192.0.2.7:8080/tcp"}) {
		t.Errorf("sent again %q, want only the fresh alert", got)
	}
	as, _ := e.m.Alerts(e.ctx, Filter{})
	for _, a := range as {
		for _, d := range a.Deliveries {
			if d.Name == hook && d.OK != (a.ID == fresh.ID) {
				t.Errorf("alert %s: delivery %+v", a.Where(), d)
			}
		}
	}
	// delivered now: nothing more to send at the next start
	e.m.redeliver(e.ctx)
	if got := e.sent(); len(got) != 0 {
		t.Errorf("sent a third time: %q", got)
	}
}
