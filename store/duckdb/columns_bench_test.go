//go:build duckdb_arrow

package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/vantagehq/vantage/internal/cputime"
	"github.com/vantagehq/vantage/record"
)

// BenchmarkEventColumns is DuckDB's share of an event's ingest (Arrow
// insert and commit, on one thread as in a large ingest call) by which of
// the events table's columns are stored: the whole table, two leaner
// layouts that keep what the live views and most searches read, and the
// whole table without one group of columns. It measures what a leaner
// events table would save, before anyone builds one.
func BenchmarkEventColumns(b *testing.B) {
	hot := []string{"id", "ts", "seq", "sensor", "src_hi", "src_lo", "src_port", "dst_hi", "dst_lo", "dst_port",
		"transport", "tags", "classification", "actor", "src_country", "src_asn", "src_org", "dst_country", "payload"}
	views := []string{"ts", "seq", "sensor", "src_hi", "src_lo", "dst_lo", "dst_port", "tags", "classification",
		"src_country", "src_asn", "dst_country", "payload"}
	only := func(cols []string) func(string) bool { return func(c string) bool { return slices.Contains(cols, c) } }
	without := func(cols ...string) func(string) bool {
		return func(c string) bool { return !slices.Contains(cols, c) }
	}
	const n = 150000
	for _, layout := range []struct {
		name string
		keep func(column string) bool
	}{
		{"all", without()},
		{"hot", only(hot)},
		{"views", only(views)},
		{"without-payload_text", without("payload_text")},
		{"without-random-headers", without("ttl", "ip_id", "tcp_seq", "src_port")},
		{"without-rare", without("icmp_type", "icmp_code", "tcp_flags", "tcp_window", "tcp_options", "handshake",
			"http_method", "sni", "username", "password", "ja3", "hassh")},
	} {
		keep := layout.keep
		b.Run("columns="+layout.name, func(b *testing.B) {
			s := openTest(b)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(2, 2))
			cols := buildColumns([]*record.Batch{{Events: synthEvents(rng, n, time.Now().UTC())}})
			defer cols.release()
			var fields []arrow.Field
			var arrays []arrow.Array
			for i, f := range cols.events.Schema().Fields() {
				if keep(f.Name) {
					fields = append(fields, f)
					arrays = append(arrays, cols.events.Column(i))
				}
			}
			rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrays, n)
			defer rec.Release()
			names := make([]string, len(fields))
			for i, f := range fields {
				names[i] = f.Name
			}
			if _, err := s.w.ExecContext(ctx, "CREATE TABLE lean AS SELECT "+strings.Join(names, ", ")+" FROM events LIMIT 0"); err != nil {
				b.Fatal(err)
			}
			defer s.oneThread(ctx, s.w)()
			b.ResetTimer()
			cpu0 := cputime.Self()
			for range b.N {
				if _, err := s.w.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
					b.Fatal(err)
				}
				if err := s.raw(func(conn driver.Conn) error { return insertArrow(ctx, conn, rec, "incoming_lean", "lean") }); err != nil {
					b.Fatal(err)
				}
				if _, err := s.w.ExecContext(ctx, "COMMIT"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cputime.Self()-cpu0).Microseconds())/float64(b.N*n), "cpu-µs/event")
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkBuildColumns is the Go side of an ingest call: records into
// Arrow columns, for 150,000 events or 20,000 grabbed services.
func BenchmarkBuildColumns(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	now := time.Now().UTC()
	for _, c := range []struct {
		name  string
		batch *record.Batch
	}{
		{"events", &record.Batch{Events: synthEvents(rng, 150000, now)}},
		{"services", &record.Batch{Services: grabbedServices(20000, now)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			cpu0 := cputime.Self()
			for range b.N {
				buildColumns([]*record.Batch{c.batch}).release()
			}
			n := b.N * c.batch.Len()
			b.ReportMetric(float64((cputime.Self()-cpu0).Nanoseconds())/float64(n), "cpu-ns/record")
		})
	}
}

// grabbedServices are services as a grabber sends them: HTTP with headers,
// a banner, CPEs and protocol details.
func grabbedServices(n int, now time.Time) []record.Service {
	out := synthServices(0, n, now)
	for i := range out {
		s := &out[i]
		s.Protocol, s.Product, s.Version = "http", "nginx", "1.22.1"
		s.CPE = []string{"cpe:2.3:a:f5:nginx:1.22.1:*:*:*:*:*:*:*"}
		s.Banner = []byte("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n\r\n")
		s.HTTP = &record.HTTP{Status: 200, Title: "Welcome to nginx!", Server: "nginx/1.22.1",
			Headers: []record.Header{{Name: "Server", Value: "nginx/1.22.1"}, {Name: "Content-Type", Value: "text/html"}}, BodySHA256: "ab12"}
		s.Data = map[string]string{"rule": "http.nginx"}
	}
	return out
}

// BenchmarkConcurrentInsert is DuckDB's insert and commit of 150,000 events
// per connection, from one connection and from two at once (each in its
// own transaction, DuckDB at one thread): whether a second writer would
// lift the serial insert's cap on the ingest rate, and at what CPU cost.
func BenchmarkConcurrentInsert(b *testing.B) {
	const n = 150000
	for _, conns := range []int{1, 2} {
		b.Run(fmt.Sprint("conns=", conns), func(b *testing.B) {
			s := openTest(b)
			ctx := context.Background()
			defer s.oneThread(ctx, s.w)()
			recs := make([]arrow.RecordBatch, conns)
			for i := range recs {
				rng := rand.New(rand.NewPCG(uint64(i), 2))
				cols := buildColumns([]*record.Batch{{Events: synthEvents(rng, n, time.Now().UTC())}})
				defer cols.release()
				recs[i] = events.with(cols.events, "seq", 1)
				defer recs[i].Release()
			}
			writers := []*sql.Conn{s.w}
			for len(writers) < conns {
				c, err := s.db.Conn(ctx)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				writers = append(writers, c)
			}
			b.ResetTimer()
			cpu0 := cputime.Self()
			for range b.N {
				var wg sync.WaitGroup
				for i, w := range writers {
					wg.Go(func() {
						err := w.Raw(func(c any) error {
							conn := c.(driver.Conn)
							if err := execAll(ctx, conn, "BEGIN TRANSACTION"); err != nil {
								return err
							}
							if err := insertArrow(ctx, conn, recs[i], fmt.Sprint("incoming_concurrent", i), "events"); err != nil {
								return err
							}
							return execAll(ctx, conn, "COMMIT")
						})
						if err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			total := b.N * n * conns
			b.ReportMetric(float64((cputime.Self()-cpu0).Microseconds())/float64(total), "cpu-µs/event")
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
