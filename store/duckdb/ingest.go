package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
)

func (s *DB) prepareWriter(ctx context.Context) error {
	for _, stmt := range []string{
		`CREATE TEMP TABLE IF NOT EXISTS stage_services AS SELECT * FROM services LIMIT 0`,
		`CREATE TEMP TABLE IF NOT EXISTS merged_services AS SELECT * FROM services LIMIT 0`,
	} {
		if _, err := s.w.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("prepare writer: %w", err)
		}
	}
	return nil
}

// Ingest stores batches in one transaction, skipping those stored before:
// a batch's ID goes into the batches table in the same transaction as its
// records, so a redelivered batch (the bus's at-least-once) is seen and
// skipped, and a crash before the commit stores nothing of it.
//
// A call with only events takes one of the event writers, so two such
// calls insert at once: DuckDB's insert and commit of one call is the
// longest serial step of the ingest path, and appends from two
// transactions never conflict. A call with services takes the main
// writer, whose merge into the current state must not race another.
func (s *DB) Ingest(ctx context.Context, batches []*record.Batch) (int, error) {
	if s.opts.ReadOnly {
		return 0, ErrReadOnly
	}
	// Columns are built before taking a writer, so a second caller
	// builds while the first inserts.
	cols := buildColumns(batches)
	defer cols.release()
	if cols.services == nil && s.eventWriters != nil {
		var w *writer
		select {
		case w = <-s.eventWriters:
		case <-ctx.Done():
			return 0, fmt.Errorf("ingest: %w", ctx.Err())
		}
		defer func() { s.eventWriters <- w }()
		return s.ingestOn(ctx, w, batches, cols)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.ingestOn(ctx, s.mainWriter, batches, cols)
}

// ErrReadOnly is returned by Ingest on a store opened with Options.ReadOnly.
var ErrReadOnly = errors.New("the store is open for reading only")

// writer is a connection that ingests, with the name its Arrow views take
// (views are per connection; distinct names keep that from mattering).
type writer struct {
	conn *sql.Conn
	view string
}

// ingestOn stores the batches not stored yet on the writer w; cols are the
// batches' columns, built again in place when some were stored before
// (rare: a redelivery).
func (s *DB) ingestOn(ctx context.Context, w *writer, batches []*record.Batch, cols *columns) (int, error) {
	fresh, err := newBatches(ctx, w.conn, batches)
	if err != nil || len(fresh) == 0 {
		return 0, err
	}
	if len(fresh) != len(batches) {
		cols.release()
		*cols = *buildColumns(fresh)
	}
	if cols.rows() >= oneThreadRows {
		defer s.oneThread(ctx, w.conn)()
	}
	if _, err := w.conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return 0, fmt.Errorf("ingest: %w", err)
	}
	// the number is taken inside the transaction: the refresher, which
	// reads only up to calls that have all ended, then sees this one's
	// rows once it ends
	seq := s.seqs.begin()
	defer s.seqs.end(seq)
	if err := s.ingest(ctx, w, seq, fresh, cols); err != nil {
		if _, rerr := w.conn.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
			s.log.Error("rollback after a failed ingest", "err", rerr)
		}
		return 0, fmt.Errorf("ingest %d batches: %w", len(fresh), err)
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return 0, fmt.Errorf("ingest: commit: %w", err)
	}
	return len(fresh), nil
}

// oneThreadRows is the size from which an ingest call runs on one DuckDB
// thread. DuckDB inserts from an Arrow scan in parallel, and on this
// project's 2-core machine that cost about a fifth more CPU per event than
// one thread, for the same wall time (BenchmarkIngestEvents: 5.6-6.1
// against 7.0-7.3 CPU µs per event), CPU that the bus and the column
// builders need: BenchmarkPublishToQueryable went from 166-192k to
// 185-214k events/s.
const oneThreadRows = 16 << 10

// oneThread sets DuckDB's thread count to one, until every caller has
// called the function it returns. The setting is global: queries running
// meanwhile get one thread, which under a large ingest on a small machine
// they would hardly get more of.
func (s *DB) oneThread(ctx context.Context, conn *sql.Conn) (restore func()) {
	if s.threads <= 1 {
		return func() {}
	}
	s.threadsMu.Lock()
	defer s.threadsMu.Unlock()
	if s.oneThreadCalls == 0 {
		if _, err := conn.ExecContext(ctx, "SET threads = 1"); err != nil {
			s.log.Warn("ingest on one thread", "err", err)
			return func() {}
		}
	}
	s.oneThreadCalls++
	return func() {
		s.threadsMu.Lock()
		defer s.threadsMu.Unlock()
		if s.oneThreadCalls--; s.oneThreadCalls > 0 {
			return
		}
		if _, err := conn.ExecContext(context.Background(), fmt.Sprintf("SET threads = %d", s.threads)); err != nil {
			s.log.Error("give the queries their threads back", "threads", s.threads, "err", err)
		}
	}
}

// seqs hands out the numbers of ingest calls (events.seq) and says up to
// which number every call has ended, committed or not: with two writers a
// later call may commit before an earlier one, and the profile refresher
// must not move its watermark past rows still to come.
type seqs struct {
	mu   sync.Mutex
	last int64   // the last number handed out
	open []int64 // numbers handed out whose calls have not ended, ascending
}

func (q *seqs) begin() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.last++
	q.open = append(q.open, q.last)
	return q.last
}

func (q *seqs) end(n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if i := slices.Index(q.open, n); i >= 0 {
		q.open = slices.Delete(q.open, i, i+1)
	}
}

// ended is the highest number up to which every call has ended.
func (q *seqs) ended() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.open) > 0 {
		return q.open[0] - 1
	}
	return q.last
}

// newBatches returns the batches not stored yet (and each batch once, if
// the same one is given twice).
func newBatches(ctx context.Context, conn *sql.Conn, batches []*record.Batch) ([]*record.Batch, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	args := make([]any, len(batches))
	marks := make([]string, len(batches))
	for i, b := range batches {
		args[i] = uuidArg(b.ID)
		marks[i] = "?"
	}
	rows, err := conn.QueryContext(ctx, "SELECT id FROM batches WHERE id IN ("+strings.Join(marks, ",")+")", args...)
	if err != nil {
		return nil, fmt.Errorf("ingest: look up batch ids: %w", err)
	}
	defer rows.Close()
	seen := map[record.ID]bool{}
	for rows.Next() {
		var id duckdb.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
		seen[record.ID(id)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	var fresh []*record.Batch
	for _, b := range batches {
		if !seen[b.ID] {
			seen[b.ID] = true
			fresh = append(fresh, b)
		}
	}
	return fresh, nil
}

func (s *DB) ingest(ctx context.Context, w *writer, seq int64, batches []*record.Batch, cols *columns) error {
	now := time.Now().UTC()
	return w.conn.Raw(func(c any) error {
		conn := c.(driver.Conn)
		if cols.events != nil {
			rec := events.with(cols.events, "seq", seq)
			err := insertArrow(ctx, conn, rec, w.view+"_events", "events")
			rec.Release()
			if err != nil {
				return err
			}
		}
		// every observation goes through the stage once: from there into
		// the history as it is, and the newest per service into the
		// current state
		if cols.services != nil {
			if err := insertArrow(ctx, conn, cols.services, w.view+"_services", "stage_services"); err != nil {
				return err
			}
			if err := execAll(ctx, conn, append([]string{historyFromStage}, mergeServices...)...); err != nil {
				return err
			}
		}
		return appendAll(conn, "", "batches", func(a *duckdb.Appender) error {
			for _, b := range batches {
				var producer any
				if b.Producer != "" {
					producer = strings.ToValidUTF8(b.Producer, "\uFFFD")
				}
				if err := a.AppendRow(duckdb.UUID(b.ID), producer, int32(b.Len()), now); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// execAll runs statements on the writer's driver connection (inside Raw,
// the sql.Conn itself is busy).
func execAll(ctx context.Context, conn driver.Conn, stmts ...string) error {
	ex := conn.(driver.ExecerContext)
	for _, st := range stmts {
		if _, err := ex.ExecContext(ctx, st, nil); err != nil {
			return fmt.Errorf("%s: %w", firstLine(st), err)
		}
	}
	return nil
}

// appendAll opens an appender on a table, lets fill append rows, and
// flushes them into the writer's open transaction.
func appendAll(conn driver.Conn, catalog, table string, fill func(*duckdb.Appender) error) error {
	a, err := duckdb.NewAppender(conn, catalog, "", table)
	if err != nil {
		return fmt.Errorf("appender for %s: %w", table, err)
	}
	if err := fill(a); err != nil {
		a.Close()
		return fmt.Errorf("append to %s: %w", table, err)
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("append to %s: %w", table, err)
	}
	return nil
}

// uuidArg binds an ID to a UUID parameter (the driver values *UUID, not UUID).
func uuidArg(id record.ID) *duckdb.UUID {
	u := duckdb.UUID(id)
	return &u
}

func hilo(a netip.Addr) (uint64, uint64) { return query.AddrToHiLo(a) }

// historyFromStage keeps every staged observation.
var historyFromStage = `INSERT INTO service_history SELECT ` + strings.ReplaceAll(serviceColumnNames(), "\n", " ") + ` FROM stage_services`

// mergeServices folds the staged observations into the current state in
// bulk: the newest observation per service, merged with the stored row,
// replaces it (one join over the table per ingest call, instead of an index
// probe per row). What a bare SYN-ACK cannot know (protocol, product,
// banner ...) is kept from earlier grabs; an observation older than the
// stored one changes nothing but first_seen.
var mergeServices = []string{
	`INSERT INTO merged_services SELECT ` + mergeColumns() + `
	FROM (SELECT * FROM stage_services
		QUALIFY row_number() OVER (PARTITION BY ip_lo, ip_hi, port, transport ORDER BY ts DESC) = 1) n
	LEFT JOIN services s ON s.ip_lo = n.ip_lo AND s.ip_hi = n.ip_hi AND s.port = n.port AND s.transport = n.transport`,
	`DELETE FROM services USING merged_services m WHERE services.ip_lo = m.ip_lo AND services.ip_hi = m.ip_hi
		AND services.port = m.port AND services.transport = m.transport`,
	`INSERT INTO services SELECT * FROM merged_services`,
	`DELETE FROM merged_services`,
	`DELETE FROM stage_services`,
}

func mergeColumns() string {
	var parts []string
	for _, c := range strings.Split(serviceColumnNames(), ", ") {
		switch c {
		case "ip_hi", "ip_lo", "port", "transport":
			parts = append(parts, "n."+c)
		case "ts":
			parts = append(parts, "greatest(n.ts, coalesce(s.ts, n.ts))")
		case "id", "scan_id", "state":
			parts = append(parts, fmt.Sprintf("CASE WHEN s.ts IS NULL OR n.ts >= s.ts THEN n.%[1]s ELSE s.%[1]s END", c))
		case "details":
			// a grab's details survive a later bare SYN-ACK (whose scan
			// fields the columns carry)
			parts = append(parts, `CASE WHEN s.ts IS NULL THEN n.details
				WHEN n.ts >= s.ts AND coalesce(n.protocol, n.product, n.banner_text, n.tls_sha256, n.ssh_hassh,
					n.http_status::VARCHAR) IS NOT NULL THEN n.details
				ELSE s.details END`)
		default:
			parts = append(parts, fmt.Sprintf("CASE WHEN s.ts IS NULL OR n.ts >= s.ts THEN coalesce(n.%[1]s, s.%[1]s) ELSE s.%[1]s END", c))
		}
	}
	parts = append(parts, "least(n.first_seen, coalesce(s.first_seen, n.first_seen))",
		"greatest(n.last_seen, coalesce(s.last_seen, n.last_seen))")
	return strings.Join(parts, ",\n\t\t")
}
