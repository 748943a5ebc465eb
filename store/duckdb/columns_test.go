//go:build duckdb_arrow

package duckdb

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/memory/mallocator"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// TestIngestReleasesColumns: the columns live in C memory (arrowMem), which
// no garbage collector frees: after ingest calls that store events and
// services, skip a redelivered batch and fail on a cancelled context,
// every byte is given back.
func TestIngestReleasesColumns(t *testing.T) {
	checked := memory.NewCheckedAllocator(mallocator.NewMallocator())
	saved := arrowMem
	arrowMem = checked
	defer func() { arrowMem = saved }()

	s := openTest(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	now := time.Now().UTC()
	b1 := &record.Batch{ID: record.NewID(), Events: synthEvents(rng, 3000, now), Services: synthServices(0, 500, now)}
	b2 := &record.Batch{ID: record.NewID(), Events: synthEvents(rng, 10, now)}
	if n, err := s.Ingest(ctx, []*record.Batch{b1}); err != nil || n != 1 {
		t.Fatalf("ingest: %d, %v", n, err)
	}
	if checked.CurrentAlloc() != 0 {
		t.Fatalf("%d bytes of columns held after a stored batch", checked.CurrentAlloc())
	}
	// b1 again: its columns are built, then rebuilt for b2 alone
	if n, err := s.Ingest(ctx, []*record.Batch{b1, b2}); err != nil || n != 1 {
		t.Fatalf("redelivery: %d, %v", n, err)
	}
	if checked.CurrentAlloc() != 0 {
		t.Fatalf("%d bytes of columns held after a redelivery", checked.CurrentAlloc())
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Ingest(cancelled, []*record.Batch{{ID: record.NewID(), Events: synthEvents(rng, 10, now)}}); err == nil {
		t.Fatal("ingest with a cancelled context stored")
	}
	checked.AssertSize(t, 0)
}

// TestIngestWhileQuerying: large ingest calls run on one DuckDB thread
// (oneThread sets the global thread count and sets it back) while queries
// with facets run beside them: every query answers, every event is
// stored, and the queries get their threads back.
func TestIngestWhileQuerying(t *testing.T) {
	s := openTest(t) // 2 threads
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 5))
	now := time.Now().UTC()
	fs, err := query.ParseFacets("src.country,tag", query.Events)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	queried := make(chan error, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				if n == 0 {
					queried <- errors.New("no query ran")
					return
				}
				queried <- nil
				return
			default:
			}
			if _, err := s.SearchEvents(ctx, store.Search{Query: "dst.port:23 OR dst.port:80", Now: now, Limit: 10, Facets: fs}); err != nil {
				queried <- err
				return
			}
			n++
		}
	}()
	const calls, perCall = 6, 20000
	for i := range calls {
		batch := &record.Batch{ID: record.NewID(), Events: synthEvents(rng, perCall, now)}
		if n, err := s.Ingest(ctx, []*record.Batch{batch}); err != nil || n != 1 {
			t.Fatalf("ingest %d: %d, %v", i, n, err)
		}
	}
	close(stop)
	if err := <-queried; err != nil {
		t.Fatalf("a query beside the ingest: %v", err)
	}
	var events int64
	var threads int
	s.db.QueryRow("SELECT count(*) FROM events").Scan(&events)
	s.db.QueryRow("SELECT current_setting('threads')").Scan(&threads)
	if events != calls*perCall {
		t.Errorf("%d events stored, want %d", events, calls*perCall)
	}
	if threads != 2 {
		t.Errorf("DuckDB left with %d threads, want the store's 2", threads)
	}
}

// TestColumnValues: what each kind of column stores, read back by SQL.
// Zero numbers, empty strings, empty lists and empty payloads are NULL
// (unknown), a service's port 0 and a false handshake are values, and
// text that is not UTF-8 is made valid.
func TestColumnValues(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 28, 1, 2, 3, 456789000, time.UTC)
	src, dst := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.130")
	full := record.Event{ID: record.HashID("full"), Time: at, Sensor: "fra1", Src: src, SrcPort: 40000, Dst: dst, DstPort: 23,
		Transport: "tcp", TTL: 52, IPID: 54321, TCPFlags: 2, TCPWindow: 1024, TCPSeq: 7, TCPOptions: "M1460", Handshake: true,
		Payload: []byte("GET /\xff"), HTTPPath: "/a\xffb", Tags: []string{"", "ZMAP", "TCP_SYN"}, Classification: "benign",
		SrcGeo: record.Geo{Country: "US", ASN: 64500, Org: "Org"}}
	bare := record.Event{ID: record.HashID("bare"), Time: at, Src: src, Dst: dst, Transport: "icmp", Tags: []string{""}}
	svc := record.Service{ID: record.HashID("svc"), Time: at, IP: src, Port: 0, Transport: "udp", State: "open"}
	if _, err := s.Ingest(ctx, []*record.Batch{{ID: record.NewID(), Events: []record.Event{full, bare}, Services: []record.Service{svc}}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ query, want string }{
		{`SELECT concat_ws('|', ts, sensor, src_port, dst_port, ttl, ip_id, tcp_flags, tcp_window, tcp_seq, tcp_options, handshake,
			octet_length(payload), http_path, tags, classification, src_country, src_asn, src_org) FROM events WHERE transport = 'tcp'`,
			"2026-11-28 01:02:03.456789|fra1|40000|23|52|54321|2|1024|7|M1460|true|6|/a\uFFFDb|[ZMAP, TCP_SYN]|benign|US|64500|Org"},
		{`SELECT concat_ws('|', sensor IS NULL, src_port IS NULL, dst_port IS NULL, ttl IS NULL, tcp_seq IS NULL, tcp_options IS NULL,
			handshake, payload IS NULL, tags IS NULL, src_asn IS NULL, seq IS NULL) FROM events WHERE transport = 'icmp'`,
			"true|true|true|true|true|true|false|true|true|true|false"},
		{`SELECT concat_ws('|', port, ttl IS NULL, http_status IS NULL, tls_not_after IS NULL) FROM services`, "0|true|true|true"},
	} {
		var got string
		if err := s.db.QueryRowContext(ctx, c.query).Scan(&got); err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		if got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.query, got, c.want)
		}
	}
}

// TestTimesInAnyZone: times are stored as the UTC instants they are,
// whatever DuckDB's time zone (the machine's, by default): a column built
// as a zoned Arrow timestamp was cast to the session's wall clock.
func TestTimesInAnyZone(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.w.ExecContext(ctx, "SET TimeZone = 'America/New_York'"); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 1, 2, 3, 456789000, time.UTC)
	ip := netip.MustParseAddr("192.0.2.7")
	ev := record.Event{ID: record.NewID(), Time: at, Src: ip, Dst: ip, Transport: "icmp"}
	svc := record.Service{ID: record.NewID(), Time: at, IP: ip, Port: 80, Transport: "tcp", State: "open",
		TLS: &record.TLS{NotAfter: at}}
	// with a service, the call runs on the main writer, whose zone was set
	if _, err := s.Ingest(ctx, []*record.Batch{{ID: record.NewID(), Events: []record.Event{ev}, Services: []record.Service{svc}}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SELECT epoch_us(ts) FROM events",
		"SELECT epoch_us(ts) FROM services",
		"SELECT epoch_us(tls_not_after) FROM services",
		"SELECT epoch_us(first_seen) FROM services",
	} {
		var got int64
		if err := s.db.QueryRowContext(ctx, q).Scan(&got); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got != at.UnixMicro() {
			t.Errorf("%s = %v, want %v", q, time.UnixMicro(got).UTC(), at)
		}
	}
}
