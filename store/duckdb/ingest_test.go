package duckdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/cputime"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

func openTest(t testing.TB) *DB {
	t.Helper()
	s, err := Open(context.Background(), t.TempDir(), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// synthEvents makes n events from a pool of sources over the last hour.
func synthEvents(rng *rand.Rand, n int, now time.Time) []record.Event {
	tags := []string{"TCP_SYN", "ZMAP", "HTTP_SCANNER", "SSH_BRUTEFORCE", "MIRAI", "RDP_SCANNER", "LOG4SHELL"}
	countries := []string{"US", "CN", "DE", "RU", "BR", "NL", "FR", "IN"}
	out := make([]record.Event, n)
	for i := range out {
		// sources repeat, as scanners send many packets each: 20,000 of them
		k := uint32(rng.IntN(20000)) * 2654435761
		src := netip.AddrFrom4([4]byte{byte(1 + k%220), byte(k >> 8), byte(k >> 16), byte(k >> 24)})
		out[i] = record.Event{
			ID: record.NewID(), Time: now.Add(-time.Duration(rng.Int64N(int64(time.Hour)))), Sensor: fmt.Sprintf("s%d", rng.IntN(4)),
			Src: src, SrcPort: uint16(rng.IntN(65536)), Dst: netip.AddrFrom4([4]byte{198, 51, 100, byte(128 + rng.IntN(128))}),
			DstPort: uint16([]int{22, 23, 80, 443, 3389, 8080}[rng.IntN(6)]), Transport: "tcp", TTL: uint8(40 + rng.IntN(200)),
			IPID: uint16(rng.IntN(65536)), TCPFlags: 2, TCPWindow: 65535, TCPSeq: rng.Uint32(), TCPOptions: "M1460",
			Tags: []string{tags[rng.IntN(len(tags))]}, Classification: []string{"unknown", "malicious", "benign"}[rng.IntN(3)],
			SrcGeo: record.Geo{Country: countries[rng.IntN(len(countries))], ASN: uint32(rng.IntN(60000)), Org: "Org"}, DstCountry: "DE",
		}
		if rng.IntN(4) == 0 {
			out[i].Payload = []byte("GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: zgrab\r\n\r\n\xff\xfe")
			out[i].HTTPPath, out[i].UserAgent, out[i].HTTPMethod = "/", "zgrab", "GET"
		}
	}
	return out
}

func TestIngestIdempotent(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 1))
	now := time.Now().UTC()
	b1 := &record.Batch{ID: record.NewID(), Producer: "t", Events: synthEvents(rng, 100, now)}
	b2 := &record.Batch{ID: record.NewID(), Producer: "t", Events: synthEvents(rng, 50, now)}
	n, err := s.Ingest(ctx, []*record.Batch{b1, b1})
	if err != nil || n != 1 {
		t.Fatalf("first ingest: %d, %v", n, err)
	}
	n, err = s.Ingest(ctx, []*record.Batch{b1, b2})
	if err != nil || n != 1 {
		t.Fatalf("second ingest: %d, %v", n, err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var events, profileEvents int64
	s.db.QueryRow("SELECT count(*) FROM events").Scan(&events)
	s.db.QueryRow("SELECT sum(events) FROM profiles").Scan(&profileEvents)
	if events != 150 || profileEvents != 150 {
		t.Fatalf("events %d, profile events %d; want 150 each", events, profileEvents)
	}
	// the payload survives byte for byte, invalid UTF-8 included
	var payload []byte
	s.db.QueryRow("SELECT payload FROM events WHERE payload IS NOT NULL LIMIT 1").Scan(&payload)
	if len(payload) == 0 || payload[len(payload)-1] != 0xfe {
		t.Fatalf("payload %q", payload)
	}
}

func BenchmarkIngestEvents(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(2, 2))
	now := time.Now().UTC()
	const perBatch, perCall = 1000, 150
	pool := make([]*record.Batch, 0, 50)
	for i := 0; i < 150; i++ {
		pool = append(pool, &record.Batch{ID: record.NewID(), Events: synthEvents(rng, perBatch, now)})
	}
	b.ResetTimer()
	cpu0 := cputime.Self()
	total := 0
	for i := 0; i < b.N; i++ {
		var call []*record.Batch
		for j := 0; j < perCall; j++ {
			src := pool[(i*perCall+j)%len(pool)]
			call = append(call, &record.Batch{ID: record.NewID(), Events: src.Events})
		}
		if _, err := s.Ingest(ctx, call); err != nil {
			b.Fatal(err)
		}
		total += perBatch * perCall
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((cputime.Self()-cpu0).Microseconds())/float64(total), "cpu-µs/event")
}

func synthServices(from, n int, now time.Time) []record.Service {
	out := make([]record.Service, n)
	for i := range out {
		k := uint32(from + i)
		ip := netip.AddrFrom4([4]byte{byte(1 + k%200), byte(k >> 8), byte(k >> 16), byte(k >> 24)})
		out[i] = record.Service{ID: record.NewID(), Time: now, ScanID: "s", IP: ip, Port: 80, Transport: "tcp", State: "open",
			Geo: record.Geo{Country: "DE", ASN: 64500, Org: "Org"}}
	}
	return out
}

// BenchmarkIngestServices stores scan results into a store that already
// holds 500,000 services, half of the new ones seen before.
func BenchmarkIngestServices(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	now := time.Now().UTC()
	call := func(from int) []*record.Batch {
		var bs []*record.Batch
		for j := 0; j < 50; j++ {
			bs = append(bs, &record.Batch{ID: record.NewID(), Services: synthServices(from+j*1000, 1000, now)})
		}
		return bs
	}
	for i := 0; i < 10; i++ {
		if _, err := s.Ingest(ctx, call(i*50000)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	total := 0
	for i := 0; i < b.N; i++ {
		// from 475,000: the first half overlaps what is stored
		if _, err := s.Ingest(ctx, call(475000+i*25000)); err != nil {
			b.Fatal(err)
		}
		total += 50000
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "services/s")
}

// Empty strings in lists (a producer's tag "", a CPE "") are dropped: the
// source's profile and lookups still answer, with the tags that say
// something.
func TestIngestEmptyListElements(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	src := netip.MustParseAddr("203.0.113.77")
	ev := record.Event{ID: record.NewID(), Time: time.Now().UTC(), Sensor: "s1", Src: src, Dst: netip.MustParseAddr("198.51.100.200"),
		DstPort: 22, Transport: "tcp", Tags: []string{"", "TCP_SYN", ""}}
	svc := record.Service{ID: record.NewID(), Time: time.Now().UTC(), ScanID: "t", IP: src, Port: 22, Transport: "tcp", State: "open",
		Tags: []string{""}, CPE: []string{"", "cpe:2.3:a:openbsd:openssh:9.6p1:*:*:*:*:*:*:*"}}
	if _, err := s.Ingest(ctx, []*record.Batch{{ID: record.NewID(), Producer: "t", Events: []record.Event{ev}, Services: []record.Service{svc}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := s.Profile(ctx, src, 10)
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	if len(p.Tags) != 1 || p.Tags[0] != "TCP_SYN" {
		t.Errorf("profile tags %q", p.Tags)
	}
	h, err := s.Host(ctx, src)
	if err != nil || len(h.Services) != 1 || len(h.Services[0].Tags) != 0 {
		t.Fatalf("host %+v %v", h, err)
	}
	res, err := s.SearchServices(ctx, store.Search{Query: "cpe:cpe:2.3:a:openbsd:openssh:9.6p1:*:*:*:*:*:*:*", Limit: 1})
	if err != nil || res.Total != 1 {
		t.Errorf("search by the CPE: %+v %v", res, err)
	}
}

// TestConcurrentIngest: calls with only events run on two writers at once,
// beside a call with services and profile refreshes. Every event is stored
// once (a batch given to two calls at once included), every one is folded
// into the profiles exactly once though later calls commit before earlier
// ones, and the queries get DuckDB's threads back.
func TestConcurrentIngest(t *testing.T) {
	s := openTest(t) // 2 threads
	ctx := context.Background()
	now := time.Now().UTC()
	const workers, calls = 4, 12
	shared := &record.Batch{ID: record.NewID(), Events: synthEvents(rand.New(rand.NewPCG(9, 9)), 500, now)}
	ingest := func(b *record.Batch) error {
		// a batch given to two calls at once is stored by one; the other
		// fails on the batch's key or finds it stored, and a retry then
		// stores nothing
		for try := 0; ; try++ {
			_, err := s.Ingest(ctx, []*record.Batch{b})
			if err == nil || try == 3 {
				return err
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*calls+2)
	var want atomic.Int64
	want.Add(int64(len(shared.Events)))
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range calls {
				n := 200 + rng.IntN(800)
				if i%4 == 0 {
					n = oneThreadRows + 1000 // on one DuckDB thread
				}
				b := &record.Batch{ID: record.NewID(), Events: synthEvents(rng, n, now)}
				if i == calls/2 {
					b = shared
				} else {
					want.Add(int64(n))
				}
				if err := ingest(b); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		svc := synthServices(0, 100, now)
		if _, err := s.Ingest(ctx, []*record.Batch{{ID: record.NewID(), Services: svc}}); err != nil {
			errs <- err
		}
	})
	stop := make(chan struct{})
	synced := make(chan int, 1)
	go func() {
		n := 0
		defer func() { synced <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.Sync(ctx); err != nil {
				errs <- err
				return
			}
			n++
		}
	}()
	wg.Wait()
	close(stop)
	if n := <-synced; n < 2 {
		t.Errorf("the profiles were refreshed %d times during the ingest; the test needs them refreshed meanwhile", n)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var events, profileEvents, services int64
	var threads int
	s.db.QueryRow("SELECT count(*) FROM events").Scan(&events)
	s.db.QueryRow("SELECT sum(events) FROM profiles").Scan(&profileEvents)
	s.db.QueryRow("SELECT count(*) FROM services").Scan(&services)
	s.db.QueryRow("SELECT current_setting('threads')").Scan(&threads)
	if events != want.Load() || profileEvents != events {
		t.Errorf("%d events stored and %d in the profiles, want %d each", events, profileEvents, want.Load())
	}
	if services != 100 {
		t.Errorf("%d services, want 100", services)
	}
	if threads != 2 {
		t.Errorf("DuckDB left with %d threads, want the store's 2", threads)
	}
}

// TestSeqs: the refresher's bound stays below a call that has not ended,
// whatever order the calls end in.
func TestSeqs(t *testing.T) {
	q := seqs{last: 10}
	a, b, c := q.begin(), q.begin(), q.begin()
	for _, step := range []struct {
		end   int64
		ended int64
	}{
		{0, 10}, {b, 10}, {a, 12}, {c, 13},
	} {
		if step.end != 0 {
			q.end(step.end)
		}
		if got := q.ended(); got != step.ended {
			t.Fatalf("after ending %d: ended() = %d, want %d", step.end, got, step.ended)
		}
	}
}

// TestIngestReadOnly: a store opened for reading refuses to ingest, with an
// error rather than a panic, and stores nothing.
func TestIngestReadOnly(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	ro, err := Open(ctx, dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	now := time.Now().UTC()
	ip := netip.MustParseAddr("192.0.2.1")
	for _, b := range []*record.Batch{
		{ID: record.NewID(), Events: []record.Event{{ID: record.NewID(), Time: now, Src: ip, Dst: ip, Transport: "icmp"}}},
		{ID: record.NewID(), Services: []record.Service{{ID: record.NewID(), Time: now, IP: ip, Port: 80, Transport: "tcp", State: "open"}}},
	} {
		if n, err := ro.Ingest(ctx, []*record.Batch{b}); !errors.Is(err, ErrReadOnly) || n != 0 {
			t.Errorf("ingest into a read-only store: %d, %v; want 0, ErrReadOnly", n, err)
		}
	}
}
