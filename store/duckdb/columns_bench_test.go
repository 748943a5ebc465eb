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
	"github.com/duckdb/duckdb-go/v2"
)

// BenchmarkEventColumns is DuckDB's share of an event's ingest (Arrow
// insert and commit, on one thread) by how many of the events table's
// columns are stored: the whole table, and two leaner layouts that keep
// what the live views and most searches read. It measures what a leaner
// events table would save, before anyone builds one.
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
			evs := synthEvents(rng, n, time.Now().UTC())
			rows := make([]*eventRow, len(evs))
			for i := range evs {
				r := &eventRow{Event: &evs[i], text: searchText(evs[i].Payload)}
				r.sh, r.sl = hilo(evs[i].Src)
				r.dh, r.dl = hilo(evs[i].Dst)
				rows[i] = r
			}
			full := events.build(rows)
			defer full.Release()
			var fields []arrow.Field
			var cols []arrow.Array
			for i, f := range full.Schema().Fields() {
				if keep == nil || slices.Contains(keep, f.Name) {
					fields = append(fields, f)
					cols = append(cols, full.Column(i))
				}
			}
			schema := arrow.NewSchema(fields, nil)
			rec := array.NewRecordBatch(schema, cols, full.NumRows())
			defer rec.Release()
			names := make([]string, len(fields))
			for i, f := range fields {
				names[i] = f.Name
			}
			if _, err := s.w.ExecContext(ctx, "CREATE TABLE lean AS SELECT "+strings.Join(names, ", ")+" FROM events LIMIT 0"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				err := s.raw(func(conn driver.Conn) error {
					return s.oneThreadInsert(ctx, conn, schema, rec)
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*n), "cpu-µs/event")
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// oneThreadInsert inserts rec into the table lean in a transaction of its
// own, with DuckDB on one thread as a large ingest call runs.
func (s *DB) oneThreadInsert(ctx context.Context, conn driver.Conn, schema *arrow.Schema, rec arrow.RecordBatch) error {
	rdr, err := array.NewRecordReader(schema, []arrow.RecordBatch{rec})
	if err != nil {
		return err
	}
	defer rdr.Release()
	ar, err := duckdb.NewArrowFromConn(conn)
	if err != nil {
		return err
	}
	release, err := ar.RegisterView(rdr, "incoming_lean")
	if err != nil {
		return err
	}
	defer release()
	return execAll(ctx, conn, "SET threads = 1", "BEGIN TRANSACTION", "INSERT INTO lean SELECT * FROM incoming_lean", "COMMIT",
		fmt.Sprintf("SET threads = %d", s.threads))
}
