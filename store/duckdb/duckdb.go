// Package duckdb is the embedded store: one DuckDB database file in the data
// directory. One connection writes (appenders inside a transaction per
// ingest call); the pool's other connections read, isolated by DuckDB's
// MVCC.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/vantagehq/vantage/store"
)

// Options tune the database.
type Options struct {
	Threads     int    // DuckDB worker threads (default: all cores)
	MemoryLimit string // e.g. "4GB" (default: DuckDB's, 80% of RAM)
	Retention   store.Retention
	Log         *slog.Logger
	// ReadOnly opens an existing store for reading only (DuckDB's
	// access_mode=READ_ONLY): no schema changes, no profile refresher, and
	// writes fail. Another process may read it too, but none may hold it
	// for writing (a running server): then Open fails with ErrInUse.
	ReadOnly bool
}

// ErrInUse is returned by Open when another process holds the database
// (DuckDB allows one writer process, or any number of readers).
var ErrInUse = errors.New("the store is in use by another process")

// DB is the DuckDB store.
type DB struct {
	path      string
	connector *duckdb.Connector
	db        *sql.DB
	w         *sql.Conn // the main writer: services, profiles, expiry, purges
	wmu       sync.Mutex
	// mainWriter is w as an ingest writer; eventWriters are the writers of
	// ingest calls with only events (nil when read-only)
	mainWriter   *writer
	eventWriters chan *writer
	seqs         seqs

	threadsMu      sync.Mutex
	oneThreadCalls int // ingest calls running DuckDB on one thread

	opts Options
	log  *slog.Logger

	threads int // DuckDB's thread count for queries (Options.Threads or all cores)

	profileSeq int64 // events up to this seq are folded into profiles (under wmu)

	profiled atomic.Pointer[sources] // which addresses may have a profile

	closing     chan struct{}
	refreshDone chan struct{}
}

var _ store.Store = (*DB)(nil)

// Open opens (creating if needed) the store in dir.
func Open(ctx context.Context, dir string, opts Options) (*DB, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(dir, "vantage.duckdb")
	dsn := path
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no store in %s: %w", dir, err)
		}
		dsn += "?access_mode=READ_ONLY"
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store directory: %w", err)
	}
	// the init function runs for every new connection of the pool, long
	// after Open returned: it must not use Open's context
	connector, err := duckdb.NewConnector(dsn, func(execer driver.ExecerContext) error {
		for _, s := range settings(opts) {
			if _, err := execer.ExecContext(context.Background(), s, nil); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, openErr(path, err)
	}
	s := &DB{path: path, connector: connector, db: sql.OpenDB(connector), opts: opts, log: opts.Log}
	s.db.SetMaxIdleConns(8)
	if s.w, err = s.db.Conn(ctx); err != nil {
		s.Close()
		return nil, openErr(path, err)
	}
	if !opts.ReadOnly {
		for _, stmt := range schema {
			if _, err := s.w.ExecContext(ctx, stmt); err != nil {
				s.Close()
				return nil, fmt.Errorf("create schema (%s...): %w", firstLine(stmt), err)
			}
		}
		if err := s.prepareWriter(ctx); err != nil {
			s.Close()
			return nil, err
		}
		s.mainWriter = &writer{conn: s.w, view: "incoming"}
		if err := s.openEventWriters(ctx); err != nil {
			s.Close()
			return nil, openErr(path, err)
		}
	}
	if err := s.w.QueryRowContext(ctx, `SELECT current_setting('threads')`).Scan(&s.threads); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store %s: threads: %w", dir, err)
	}
	if err := s.loadSeqs(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.loadSources(ctx, nil); err != nil {
		s.Close()
		return nil, err
	}
	if !opts.ReadOnly {
		s.closing, s.refreshDone = make(chan struct{}), make(chan struct{})
		go s.refresher()
	}
	return s, nil
}

// openErr says ErrInUse when DuckDB could not lock the file.
func openErr(path string, err error) error {
	if m := err.Error(); strings.Contains(m, "Could not set lock") || strings.Contains(m, "Conflicting lock") {
		return fmt.Errorf("open store %s: %w (%v)", path, ErrInUse, err)
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

func settings(opts Options) []string {
	out := []string{
		// fewer, larger checkpoints: the WAL is fsynced at every commit anyway
		`SET checkpoint_threshold = '256MB'`,
		// inserts need not keep their order: lets DuckDB parallelise more
		`SET preserve_insertion_order = false`,
	}
	if opts.Threads > 0 {
		out = append(out, fmt.Sprintf(`SET threads = %d`, opts.Threads))
	}
	if opts.MemoryLimit != "" {
		out = append(out, fmt.Sprintf(`SET memory_limit = '%s'`, strings.ReplaceAll(opts.MemoryLimit, "'", "")))
	}
	return out
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Close closes the database; the WAL makes an unclean stop safe too.
func (s *DB) Close() error {
	if s.closing != nil {
		close(s.closing)
		<-s.refreshDone
		s.closing = nil
	}
	var errs []error
	if s.eventWriters != nil {
		// every writer back in the pool: no ingest call is running
		for range cap(s.eventWriters) {
			errs = append(errs, (<-s.eventWriters).conn.Close())
		}
		s.eventWriters = nil
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	if s.connector != nil {
		errs = append(errs, s.connector.Close())
	}
	return errors.Join(errs...)
}

// raw runs fn with the main writer's driver connection.
func (s *DB) raw(fn func(driver.Conn) error) error {
	return s.w.Raw(func(c any) error { return fn(c.(driver.Conn)) })
}

// eventWriterCount is how many ingest calls with only events insert at
// once. Two: on this project's 2-core machine a third finds no core to run
// on (BenchmarkConcurrentInsert measures one writer against two).
const eventWriterCount = 2

func (s *DB) openEventWriters(ctx context.Context) error {
	ws := make(chan *writer, eventWriterCount)
	for i := range eventWriterCount {
		c, err := s.db.Conn(ctx)
		if err != nil {
			for range i {
				(<-ws).conn.Close()
			}
			return fmt.Errorf("event writer: %w", err)
		}
		ws <- &writer{conn: c, view: fmt.Sprint("incoming", i)}
	}
	s.eventWriters = ws
	return nil
}
