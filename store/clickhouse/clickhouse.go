// Package clickhouse is the store at scale: ClickHouse over its native
// protocol (github.com/ClickHouse/clickhouse-go/v2), on one node or on the
// shards of a cluster behind Distributed tables. It runs on ClickHouse
// 18.16 (Debian's) and uses only SQL that version runs; docs/clickhouse.md
// says what a modern ClickHouse would add.
//
// The URL is clickhouse://[user[:password]@]host:port/database[?cluster=NAME].
// With a cluster, the store reads the cluster's shards from system.clusters,
// creates the tables on each shard itself (ON CLUSTER needs ZooKeeper,
// which a cluster without replication does not have), writes each row
// straight to its shard's local table (so an acknowledged write is on its
// shard, not in a Distributed table's send queue), and reads through
// Distributed tables that span them.
//
// Tables (schema.go):
//   - events: MergeTree, one row per sensor event, ordered by source
//     address and time (an IP lookup reads one range), partitioned by day
//     (a time window skips the days outside it).
//   - service_history: MergeTree, every observation of a service.
//   - services: ReplacingMergeTree(ver), the current state of each (address,
//     port, transport). Ingest reads the stored state of the services it
//     writes, merges in Go exactly as the DuckDB store merges in SQL, and
//     inserts the merged row with a higher ver; reads use FINAL, which
//     keeps the row of the highest ver per key (and applies WHERE after
//     that, so a search never matches a replaced row). The alternative,
//     argMax per column at query time, aggregates every service for every
//     search; FINAL merges only the rows of the parts that are read.
//   - profiles are not a table: the sensors' view of a source is an
//     aggregate over its events, which the sort key makes one index range.
//   - batches: ReplacingMergeTree(state): which bus batches are stored.
//   - meta: the schema version.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vantagehq/vantage/store"
)

// Options tune the store.
type Options struct {
	Retention store.Retention
	Log       *slog.Logger
	// DialTimeout bounds connecting (default 5s).
	DialTimeout time.Duration
}

// DB is the ClickHouse store.
type DB struct {
	url     string
	db      string // database name
	cluster string // "" on one node
	q       driver.Conn
	shards  []driver.Conn // one per shard, in shard order; q's node alone without a cluster
	opts    Options
	log     *slog.Logger

	wmu sync.Mutex // one ingest (and mutation) at a time
}

var _ store.Store = (*DB)(nil)

// Config is a parsed store URL.
type Config struct {
	Addr     string // host:port of the native protocol
	Database string
	User     string
	Password string
	Cluster  string
}

// ParseURL parses clickhouse://[user[:password]@]host[:port]/database[?cluster=NAME].
func ParseURL(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Config{}, fmt.Errorf("clickhouse url: %w", err)
	}
	if u.Scheme != "clickhouse" {
		return Config{}, fmt.Errorf("clickhouse url %q: the scheme must be clickhouse", s)
	}
	c := Config{Addr: u.Host, Database: strings.Trim(u.Path, "/"), Cluster: u.Query().Get("cluster"), User: "default"}
	if c.Addr == "" {
		return c, fmt.Errorf("clickhouse url %q: no host", s)
	}
	if u.Port() == "" {
		c.Addr += ":9000"
	}
	if c.Database == "" {
		c.Database = "vantage"
	}
	for _, name := range []string{c.Database, c.Cluster} {
		if !identifier(name) && name != "" {
			return c, fmt.Errorf("clickhouse url %q: %q is not a plain name (letters, digits, _)", s, name)
		}
	}
	if u.User != nil {
		c.User = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	for k := range u.Query() {
		if k != "cluster" {
			return c, fmt.Errorf("clickhouse url %q: unknown parameter %q (only cluster)", s, k)
		}
	}
	return c, nil
}

// identifier: names that go into SQL text (database, cluster) are plain.
func identifier(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Open connects to ClickHouse, creating the database and tables (or
// migrating them) as needed: idempotent, so every start may do it.
func Open(ctx context.Context, rawURL string, opts Options) (*DB, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	s := &DB{url: rawURL, db: c.Database, cluster: c.Cluster, opts: opts, log: opts.Log}
	boot, err := s.connect(ctx, c, c.Addr, "default")
	if err != nil {
		return nil, err
	}
	addrs := []string{c.Addr}
	if c.Cluster != "" {
		if addrs, err = clusterShards(ctx, boot, c.Cluster); err != nil {
			boot.Close()
			return nil, err
		}
	}
	boot.Close()
	for _, a := range addrs {
		conn, err := s.connect(ctx, c, a, "default")
		if err == nil {
			err = conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+c.Database)
			conn.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("clickhouse %s: create database: %w", a, err)
		}
		if conn, err = s.connect(ctx, c, a, c.Database); err != nil {
			s.Close()
			return nil, err
		}
		s.shards = append(s.shards, conn)
	}
	if s.q, err = s.connect(ctx, c, c.Addr, c.Database); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *DB) connect(ctx context.Context, c Config, addr, db string) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: db, Username: c.User, Password: c.Password},
		Protocol:    clickhouse.Native,
		DialTimeout: s.opts.DialTimeout,
		// a query may wait for a mutation or a merge; the caller's context bounds it
		ReadTimeout:     5 * time.Minute,
		MaxOpenConns:    16,
		MaxIdleConns:    8,
		ConnMaxLifetime: time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse %s: %w", addr, err)
	}
	return conn, nil
}

// clusterShards lists the first replica of each shard of a cluster.
func clusterShards(ctx context.Context, conn driver.Conn, cluster string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT shard_num, host_address, port FROM system.clusters
		WHERE cluster = ? AND replica_num = 1 ORDER BY shard_num`, cluster)
	if err != nil {
		return nil, fmt.Errorf("clickhouse cluster %s: %w", cluster, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var shard uint32
		var host string
		var port uint16
		if err := rows.Scan(&shard, &host, &port); err != nil {
			return nil, fmt.Errorf("clickhouse cluster %s: %w", cluster, err)
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		out = append(out, fmt.Sprintf("%s:%d", host, port))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("clickhouse: no cluster %q in system.clusters (define it in remote_servers)", cluster)
	}
	return out, nil
}

// Close closes the connections.
func (s *DB) Close() error {
	var errs []error
	for _, c := range s.shards {
		errs = append(errs, c.Close())
	}
	s.shards = nil
	if s.q != nil {
		errs = append(errs, s.q.Close())
		s.q = nil
	}
	return errors.Join(errs...)
}

// local is the name of a table's shard-local part.
func (s *DB) local(table string) string {
	if s.cluster == "" {
		return table
	}
	return table + "_local"
}

// Sync is a no-op: an acknowledged insert is visible to every query (it
// went synchronously to its shard), and profiles are computed from the
// events when asked.
func (s *DB) Sync(ctx context.Context) error { return nil }

// shardOf picks the shard of an address (the same on every run and node).
func (s *DB) shardOf(hi, lo uint64) int {
	if len(s.shards) == 1 {
		return 0
	}
	h := (lo ^ hi*0x9E3779B97F4A7C15) * 0xBF58476D1CE4E5B9
	return int((h >> 33) % uint64(len(s.shards)))
}
