//go:build duckdb_arrow

package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/vantagehq/vantage/internal/cputime"
	"github.com/vantagehq/vantage/record"
)

// BenchmarkEventColumns is DuckDB's share of an event's ingest (Arrow
// insert and commit, on one thread as in a large ingest call) by how many
// of the events table's columns are stored: the whole table, and two
// leaner layouts that keep what the live views and most searches read. It
// measures what a leaner events table would save, before anyone builds one.
func BenchmarkEventColumns(b *testing.B) {
	hot := []string{"id", "ts", "seq", "sensor", "src_hi", "src_lo", "src_port", "dst_hi", "dst_lo", "dst_port",
		"transport", "tags", "classification", "actor", "src_country", "src_asn", "src_org", "dst_country", "payload"}
	views := []string{"ts", "seq", "sensor", "src_hi", "src_lo", "dst_lo", "dst_port", "tags", "classification",
		"src_country", "src_asn", "dst_country", "payload"}
	const n = 150000
	for _, keep := range [][]string{nil, hot, views} {
		name := "all"
		if keep != nil {
			name = fmt.Sprint(len(keep))
		}
		b.Run("columns="+name, func(b *testing.B) {
			s := openTest(b)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(2, 2))
			cols := buildColumns([]*record.Batch{{Events: synthEvents(rng, n, time.Now().UTC())}})
			defer cols.release()
			var fields []arrow.Field
			var arrays []arrow.Array
			for i, f := range cols.events.Schema().Fields() {
				if keep == nil || slices.Contains(keep, f.Name) {
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
			defer s.oneThread(ctx)()
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
