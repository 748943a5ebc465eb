package clickhouse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/chtest"
	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/store/storetest"
)

// topology is one node, or two shards behind Distributed tables.
type topology struct {
	name    string
	cluster string
	nodes   int
}

var topologies = []topology{{"single", "", 1}, {"two shards", "two", 2}}

// open starts the servers of a topology and opens a store on them (each
// call a new database, so tests sharing servers do not see each other).
func open(t testing.TB, servers []*chtest.Server, cluster, db string) *DB {
	t.Helper()
	s, err := Open(context.Background(), servers[0].URL(db, cluster), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func start(t testing.TB, tp topology) []*chtest.Server {
	t.Helper()
	if tp.nodes == 1 {
		return []*chtest.Server{chtest.Start(t)}
	}
	return chtest.StartCluster(t, tp.cluster, tp.nodes)
}

// TestSuite: the shared query suite answers exactly as the DuckDB store
// does (both are held to storetest/testdata/answers.json), on one node and
// on two shards.
func TestSuite(t *testing.T) {
	for _, tp := range topologies {
		t.Run(tp.name, func(t *testing.T) {
			servers := start(t, tp)
			s := open(t, servers, tp.cluster, "suite")
			storetest.Run(t, s)
			if tp.nodes > 1 { // the rows are spread over both shards
				for i, c := range s.shards {
					var n uint64
					if err := c.QueryRow(context.Background(), "SELECT count() FROM events_local").Scan(&n); err != nil || n == 0 {
						t.Errorf("shard %d holds %d events (%v)", i+1, n, err)
					}
				}
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want Config
		err  bool
	}{
		{"clickhouse://127.0.0.1:9000/vantage", Config{Addr: "127.0.0.1:9000", Database: "vantage", User: "default"}, false},
		{"clickhouse://u:p@h/db?cluster=two", Config{Addr: "h:9000", Database: "db", User: "u", Password: "p", Cluster: "two"}, false},
		{"clickhouse://h:9000", Config{Addr: "h:9000", Database: "vantage", User: "default"}, false},
		{"http://h:8123/db", Config{}, true},
		{"clickhouse:///db", Config{}, true},
		{"clickhouse://h/db;DROP", Config{}, true},
		{"clickhouse://h/db?cluster=a'b", Config{}, true},
		{"clickhouse://h/db?secure=1", Config{}, true},
	} {
		got, err := ParseURL(tc.url)
		if (err != nil) != tc.err || !tc.err && got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v (error %v)", tc.url, got, err, tc.want, tc.err)
		}
	}
}

// TestStore covers ingest, idempotence, binary data, reopening (schema
// creation is idempotent), purge and expiry on each topology.
func TestStore(t *testing.T) {
	for _, tp := range topologies {
		t.Run(tp.name, func(t *testing.T) {
			servers := start(t, tp)
			ctx := context.Background()
			s := open(t, servers, tp.cluster, "vantage")
			now := time.Now().UTC()
			rng := rand.New(rand.NewPCG(1, 2))
			b1 := &record.Batch{ID: record.NewID(), Producer: "sensor/t\xff", Events: synthEvents(rng, 300, now)}
			b2 := &record.Batch{ID: record.NewID(), Producer: "sensor/t", Events: synthEvents(rng, 200, now)}
			svc := record.Service{ID: record.NewID(), Time: now, ScanID: "s", IP: netip.MustParseAddr("2001:db8::1"), Port: 8443,
				Transport: "tcp", State: "open", Protocol: "weird", Banner: storetest.Binary}
			b3 := &record.Batch{ID: record.NewID(), Services: []record.Service{svc}}

			steps := []struct {
				name    string
				batches []*record.Batch
				stored  int
				events  int64
			}{
				{"first", []*record.Batch{b1, b1}, 1, 300},
				{"redelivery and new", []*record.Batch{b1, b2, b3}, 2, 500},
				{"all again", []*record.Batch{b3, b2, b1}, 0, 500},
			}
			for _, st := range steps {
				n, err := s.Ingest(ctx, st.batches)
				if err != nil || n != st.stored {
					t.Fatalf("%s: stored %d, %v; want %d", st.name, n, err, st.stored)
				}
				rows, distinct, err := s.CountEventIDs(ctx)
				if err != nil || rows != st.events || distinct != st.events {
					t.Fatalf("%s: %d events, %d distinct (%v); want %d", st.name, rows, distinct, err, st.events)
				}
			}

			// binary data byte for byte: payloads, banners
			want := map[record.ID][]byte{}
			for _, b := range []*record.Batch{b1, b2} {
				for _, e := range b.Events {
					want[e.ID] = e.Payload
				}
			}
			res, err := s.SearchEvents(ctx, store.Search{Query: "has:payload", Limit: 1000})
			if err != nil || res.Total == 0 {
				t.Fatalf("payload events: %v, %v", res, err)
			}
			for _, e := range res.Events {
				if !bytes.Equal(e.Payload, want[e.ID]) {
					t.Fatalf("payload of %s: %q, want %q", e.ID, e.Payload, want[e.ID])
				}
			}
			h, err := s.Host(ctx, svc.IP)
			if err != nil || len(h.Services) != 1 || !bytes.Equal(h.Services[0].Banner, storetest.Binary) {
				t.Fatalf("host %s: %+v, %v", svc.IP, h, err)
			}
			r, err := s.SearchServices(ctx, store.Search{Query: `banner:"\u00ff"`, Limit: 10})
			_ = r // free text on the banner's projection: the query compiles and runs
			if err != nil {
				t.Fatal(err)
			}

			// reopening finds the schema and the data
			s2 := open(t, servers, tp.cluster, "vantage")
			if n, err := s2.Ingest(ctx, []*record.Batch{b1}); err != nil || n != 0 {
				t.Fatalf("after reopening: stored %d, %v", n, err)
			}
			u, err := s2.Usage(ctx)
			if err != nil || u.Tables["events"].Rows != 500 || u.Tables["services"].Rows != 1 || u.Tables["batches"].Rows != 3 || u.Bytes <= 0 {
				t.Fatalf("usage %+v, %v", u, err)
			}

			// expiry: events older than 30 minutes (half of them, by synthEvents' spread)
			s2.opts.Retention = store.Retention{Events: 30 * time.Minute}
			var older uint64
			if err := s2.q.QueryRow(ctx, "SELECT count() FROM events WHERE ts_us < ?", micros(now.Add(-30*time.Minute))).Scan(&older); err != nil {
				t.Fatal(err)
			}
			if _, err := s2.Expire(ctx, now); err != nil {
				t.Fatal(err)
			}
			if rows, _, _ := s2.CountEventIDs(ctx); rows != 500-int64(older) || older == 0 {
				t.Fatalf("after expiry %d events; want %d", rows, 500-older)
			}
			// purge
			if n, err := s2.Purge(ctx, []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")}); err != nil || n != 2 {
				t.Fatalf("purge: %d, %v; want 2 (the service and its history)", n, err)
			}
			if _, err := s2.Host(ctx, svc.IP); err != store.ErrNotFound {
				t.Fatalf("host after purge: %v", err)
			}
		})
	}
}

// TestInterruptedBatch: a batch whose rows were stored but whose "stored"
// marker was not (the server went away in between) is stored once when
// it comes again.
func TestInterruptedBatch(t *testing.T) {
	servers := start(t, topologies[0])
	ctx := context.Background()
	s := open(t, servers, "", "vantage")
	rng := rand.New(rand.NewPCG(3, 4))
	b := &record.Batch{ID: record.NewID(), Producer: "p", Events: synthEvents(rng, 100, time.Now().UTC())}
	b.Services = []record.Service{{ID: record.NewID(), Time: time.Now().UTC(), IP: netip.MustParseAddr("203.0.113.5"), Port: 80, Transport: "tcp", State: "open"}}
	if err := s.markBatches(ctx, []*record.Batch{b}, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.insertRows(ctx, []*record.Batch{b}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Ingest(ctx, []*record.Batch{b}); err != nil || n != 1 {
		t.Fatalf("stored %d, %v", n, err)
	}
	rows, distinct, err := s.CountEventIDs(ctx)
	if err != nil || rows != 100 || distinct != 100 {
		t.Fatalf("%d events, %d distinct, %v; want 100", rows, distinct, err)
	}
	var hist uint64
	if err := s.q.QueryRow(ctx, "SELECT count() FROM service_history").Scan(&hist); err != nil || hist != 1 {
		t.Fatalf("history %d, %v; want 1", hist, err)
	}
}

// TestQueriesAreBound: values of a query never become SQL.
func TestQueriesAreBound(t *testing.T) {
	servers := start(t, topologies[0])
	ctx := context.Background()
	s := open(t, servers, "", "vantage")
	for _, q := range []string{`product:"x' OR 1=1 --"`, `org:"\\' OR '1'='1"`, `banner:"'); DROP TABLE events; --"`, `tag:"a\\'b"`} {
		for _, target := range []query.Target{query.Services, query.Events} {
			var err error
			if target == query.Services {
				_, err = s.SearchServices(ctx, store.Search{Query: q, Limit: 5})
			} else {
				_, err = s.SearchEvents(ctx, store.Search{Query: q, Limit: 5})
			}
			if err != nil && !isQueryError(err) {
				t.Errorf("%s on %s: %v", q, target, err)
			}
		}
	}
	if u, err := s.Usage(ctx); err != nil || len(u.Tables) != 5 {
		t.Fatalf("usage after the queries: %+v, %v", u, err)
	}
}

func isQueryError(err error) bool {
	var qe *query.Error
	return asErr(err, &qe)
}

// synthEvents makes n events from a pool of sources over the last hour,
// a quarter with payloads of invalid UTF-8 and NUL bytes.
func synthEvents(rng *rand.Rand, n int, now time.Time) []record.Event {
	tags := []string{"TCP_SYN", "ZMAP", "HTTP_SCANNER", "SSH_BRUTEFORCE", "MIRAI"}
	countries := []string{"US", "CN", "DE", "RU", "BR"}
	out := make([]record.Event, n)
	for i := range out {
		k := uint32(rng.IntN(20000)) * 2654435761
		out[i] = record.Event{
			ID: record.NewID(), Time: now.Add(-time.Duration(rng.Int64N(int64(time.Hour)))), Sensor: fmt.Sprintf("s%d", rng.IntN(4)),
			Src:     netip.AddrFrom4([4]byte{byte(1 + k%220), byte(k >> 8), byte(k >> 16), byte(k >> 24)}),
			SrcPort: uint16(rng.IntN(65536)), Dst: netip.AddrFrom4([4]byte{198, 51, 100, byte(128 + rng.IntN(128))}),
			DstPort: uint16([]int{22, 23, 80, 443}[rng.IntN(4)]), Transport: "tcp", TTL: uint8(40 + rng.IntN(200)),
			IPID: uint16(rng.IntN(65536)), TCPFlags: 2, TCPWindow: 65535, TCPSeq: rng.Uint32(), TCPOptions: "M1460",
			Tags: []string{tags[rng.IntN(len(tags))]}, Classification: []string{"unknown", "malicious", "benign"}[rng.IntN(3)],
			SrcGeo: record.Geo{Country: countries[rng.IntN(len(countries))], ASN: uint32(rng.IntN(60000)), Org: "Org"}, DstCountry: "DE",
		}
		if rng.IntN(4) == 0 {
			p := make([]byte, 1+rng.IntN(64))
			for j := range p {
				p[j] = byte(rng.IntN(256))
			}
			p[0] = 0
			out[i].Payload = p
		}
	}
	return out
}

func asErr(err error, target **query.Error) bool { return errors.As(err, target) }
