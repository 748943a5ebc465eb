package ingest

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/internal/cputime"
	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/store/duckdb"
	"github.com/vantagehq/vantage/vuln"
)

type fixedGeo struct{}

func (fixedGeo) Lookup(a netip.Addr) record.Geo {
	if a.Is4() && a.As4()[0] == 198 {
		return record.Geo{Country: "DE"}
	}
	return record.Geo{Country: "US", ASN: 64500, Org: "Example"}
}

// openBusStore opens an embedded bus and a DuckDB store in a temporary
// directory; the caller closes them.
func openBusStore(t testing.TB) (*bus.Bus, *duckdb.DB) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Config{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := duckdb.Open(ctx, dir+"/store", duckdb.Options{})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	return b, st
}

// publishEvents publishes n events from pool (each with an ID of its
// own) through a batching producer, as a sensor does.
func publishEvents(t testing.TB, bs *bus.Bus, pool []record.Event, n int) {
	t.Helper()
	batcher := record.NewBatcher(record.BatcherConfig{Producer: "bench", Queue: 64, Send: func(ctx context.Context, bt *record.Batch) error {
		return bs.Publish(ctx, bus.Subject(bus.StreamEvents, "bench"), bt)
	}})
	for j := 0; j < n; j++ {
		e := pool[j%len(pool)]
		e.ID = record.NewID()
		batcher.AddEvent(e)
	}
	if err := batcher.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func setup(t testing.TB) (*bus.Bus, *duckdb.DB, *Ingester, context.CancelFunc, chan error) {
	t.Helper()
	ctx := context.Background()
	b, st := openBusStore(t)
	in := New(Config{Bus: b, Store: st, Geo: fixedGeo{}})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
		b.Close()
	})
	return b, st, in, cancel, done
}

func synth(rng *rand.Rand, n int, now time.Time) []record.Event {
	out := make([]record.Event, n)
	tags := []string{"TCP_SYN", "ZMAP", "HTTP_SCANNER", "MIRAI"}
	for i := range out {
		k := uint32(rng.IntN(20000)) * 2654435761
		out[i] = record.Event{
			ID: record.NewID(), Time: now, Sensor: "s1",
			Src:     netip.AddrFrom4([4]byte{byte(1 + k%220), byte(k >> 8), byte(k >> 16), byte(k >> 24)}),
			SrcPort: uint16(rng.IntN(65536)), Dst: netip.AddrFrom4([4]byte{198, 51, 100, byte(128 + rng.IntN(128))}),
			DstPort: 23, Transport: "tcp", TTL: 50, IPID: uint16(i), TCPFlags: 2, TCPWindow: 1024, TCPSeq: rng.Uint32(),
			Tags: []string{tags[rng.IntN(len(tags))]},
		}
	}
	return out
}

func waitStored(t testing.TB, st store.Store, events int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r, err := st.SearchEvents(context.Background(), store.Search{Limit: 0})
		if err == nil && r.Total >= events {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	u, _ := st.Usage(context.Background())
	t.Fatalf("after %v: %d of %d events stored", timeout, u.Tables["events"].Rows, events)
}

func TestPublishToQueryable(t *testing.T) {
	b, st, in, _, _ := setup(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 1))
	batcher := record.NewBatcher(record.BatcherConfig{Producer: "sensor/t", Send: func(ctx context.Context, bt *record.Batch) error {
		return b.Publish(ctx, bus.Subject(bus.StreamEvents, "sensor/t"), bt)
	}})
	for _, e := range synth(rng, 5000, time.Now().UTC()) {
		batcher.AddEvent(e)
	}
	svc := record.Service{ScanID: "s", IP: netip.MustParseAddr("198.18.0.7"), Port: 80, Transport: "tcp", State: "open", Time: time.Now().UTC()}
	svc.ID = record.ServiceID(svc.ScanID, svc.IP, svc.Port, svc.Transport)
	if err := b.Publish(ctx, bus.Subject(bus.StreamResults, "scanner/t"), &record.Batch{ID: record.NewID(), Services: []record.Service{svc}}); err != nil {
		t.Fatal(err)
	}
	if err := batcher.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitStored(t, st, 5000, 30*time.Second)
	h, err := st.Host(ctx, svc.IP)
	for i := 0; err != nil && i < 100; i++ { // the results stream is consumed on its own
		time.Sleep(50 * time.Millisecond)
		h, err = st.Host(ctx, svc.IP)
	}
	if err != nil || len(h.Services) != 1 || h.Services[0].Geo.Country != "DE" {
		t.Fatalf("host: %+v %v", h, err)
	}
	s := in.Stats()
	if s.Events != 5000 || s.Services != 1 || s.Rejected != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// benchEvents is how many events an ingest benchmark sends: a million, or
// INGEST_BENCH_EVENTS. A longer run says more about the sustained rate: a
// run starts with the first call's columns built before DuckDB has work,
// and ends with DuckDB alone on the last call.
func benchEvents(b *testing.B) int {
	n := 1_000_000
	if v := os.Getenv("INGEST_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("INGEST_BENCH_EVENTS=%q: want a positive count", v)
		}
	}
	return n
}

func BenchmarkPublishToQueryable(b *testing.B) {
	bs, st, in, _, _ := setup(b)
	rng := rand.New(rand.NewPCG(2, 2))
	pool := synth(rng, 100000, time.Now().UTC())
	b.ResetTimer()
	cpu0 := cputime.Self()
	var total int64
	n := benchEvents(b)
	for i := 0; i < b.N; i++ {
		publishEvents(b, bs, pool, n)
		total += int64(n)
		waitStored(b, st, total, 5*time.Minute)
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
	// CPU of the whole process (bus, ingest, DuckDB's threads, and the
	// producer) per event: on this 2-core machine, 300k events/s needs
	// at most 6.67 µs, whatever else runs beside the benchmark
	b.ReportMetric(float64((cputime.Self()-cpu0).Microseconds())/float64(total), "cpu-µs/event")
	// the store's share: seconds inside Store.Ingest per second of the run
	b.ReportMetric(in.Stats().StoreSeconds/b.Elapsed().Seconds(), "store-busy")
}

// benchBusStore opens a bus and a store that close with the benchmark,
// with the pool of events to publish and how many.
func benchBusStore(b *testing.B) (*bus.Bus, *duckdb.DB, []record.Event, int) {
	bs, st := openBusStore(b)
	b.Cleanup(func() {
		st.Close()
		bs.Close()
	})
	rng := rand.New(rand.NewPCG(2, 2))
	return bs, st, synth(rng, 100000, time.Now().UTC()), benchEvents(b)
}

// BenchmarkPublish is the producer's side alone: events batched, encoded
// and published to the embedded bus, acknowledged there, with no ingester.
// Beside BenchmarkPublishToQueryable it says what an in-process producer
// costs.
func BenchmarkPublish(b *testing.B) {
	bs, _, pool, n := benchBusStore(b)
	b.ResetTimer()
	cpu0 := cputime.Self()
	for range b.N {
		publishEvents(b, bs, pool, n)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((cputime.Self()-cpu0).Microseconds())/float64(n*b.N), "cpu-µs/event")
}

// BenchmarkIngestBacklog is the server's side of the ingest rate alone:
// the events wait on the bus (published before the clock starts, as by
// sensors on other machines), then the ingester drains them into the
// store until it counts them all. Beside BenchmarkPublishToQueryable, it
// says how much of that benchmark's CPU is the producer's.
func BenchmarkIngestBacklog(b *testing.B) {
	ctx := context.Background()
	bs, st, pool, n := benchBusStore(b)
	var total int64
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		publishEvents(b, bs, pool, n)
		total += int64(n)
		cpu0 := cputime.Self()
		b.StartTimer()
		in := New(Config{Bus: bs, Store: st, Geo: fixedGeo{}})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- in.Run(rctx) }()
		waitStored(b, st, total, 5*time.Minute)
		b.StopTimer()
		cpu += cputime.Self() - cpu0
		cancel()
		<-done
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/event")
}

// TestVulnsFromCPE: a service whose producer named a CPE but no vulns is
// stored with the CVEs of the NVD feed, and `vuln:CVE-...` finds it with
// its country as a facet: the defender's global question in one query.
func TestVulnsFromCPE(t *testing.T) {
	db, _, err := vuln.Load("../vuln/testdata/nvd.json", "../vuln/testdata/kev.json")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, st := openBusStore(t)
	defer b.Close()
	defer st.Close()
	in := New(Config{Bus: b, Store: st, Geo: fixedGeo{}, Vulns: db})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(rctx) }()
	defer func() { cancel(); <-done }()
	var svcs []record.Service
	for _, c := range []struct{ ip, cpe string }{
		{"198.18.0.1", "cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*"}, // regreSSHion: 8.5p1 <= v < 9.8p1
		{"198.18.0.2", "cpe:2.3:a:openbsd:openssh:9.8p1:*:*:*:*:*:*:*"}, // fixed
		{"203.0.113.3", "cpe:2.3:a:openbsd:openssh:8.5p1:*:*:*:*:*:*:*"},
		{"198.18.0.4", "cpe:2.3:a:apache:http_server:2.4.49:*:*:*:*:*:*:*"}, // path traversal, known exploited
	} {
		s := record.Service{ScanID: "v", IP: netip.MustParseAddr(c.ip), Port: 22, Transport: "tcp", State: "open", Time: time.Now().UTC(),
			Protocol: "ssh", Product: "OpenSSH", CPE: []string{c.cpe}}
		s.ID = record.ServiceID("v", s.IP, 22, "tcp")
		svcs = append(svcs, s)
	}
	if err := b.Publish(ctx, bus.Subject(bus.StreamResults, "scanner/v"), &record.Batch{ID: record.NewID(), Services: svcs}); err != nil {
		t.Fatal(err)
	}
	var res *store.ServiceResult
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		fs, _ := query.ParseFacets("country", query.Services)
		if res, err = st.SearchServices(ctx, store.Search{Query: "vuln:CVE-2024-6387", Limit: 10, Facets: fs}); err == nil && res.Total == 2 {
			break
		}
	}
	if err != nil || res == nil || res.Total != 2 {
		t.Fatalf("vuln:CVE-2024-6387: %+v %v", res, err)
	}
	countries := map[string]int64{}
	for _, f := range res.Facets["country"] {
		countries[f.Value] = f.Count
	}
	if countries["DE"] != 1 || countries["US"] != 1 {
		t.Errorf("facets %v, want DE 1 and US 1", countries)
	}
	// known exploited: tagged KEV, and only those
	kev, err := st.SearchServices(ctx, store.Search{Query: "tag:KEV", Limit: 10})
	if err != nil || kev.Total != 1 || kev.Services[0].IP != netip.MustParseAddr("198.18.0.4") {
		t.Errorf("tag:KEV: %+v %v; want only 198.18.0.4 (Apache 2.4.49)", kev, err)
	}
	h, err := st.Host(ctx, netip.MustParseAddr("198.18.0.2"))
	if err != nil || len(h.Services) != 1 || len(h.Services[0].Vulns) != 0 {
		t.Errorf("the fixed version got vulns: %+v %v", h, err)
	}
}
