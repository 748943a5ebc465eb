package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The layout follows the DuckDB store's (store/duckdb/schema.go), with what
// ClickHouse 18.16 needs instead:
//   - addresses are two UInt64 (hi and lo of the IPv4-mapped IPv6 address);
//   - DateTime has whole seconds: every time has a DateTime column, which
//     queries compare and partitions use, and an Int64 of microseconds
//     beside it (ts_us, first_us, last_us), which answers return and
//     ordering and cursors use, so an answer is exact to the microsecond;
//   - banners and payloads are String, which holds any bytes (the native
//     protocol sends them as they are); their lower-cased printable
//     projections (banner_text, payload_text) are what free text searches;
//   - a number that DuckDB stores as NULL when it is zero is Nullable here
//     too, so a facet, an existence test and a comparison count the same
//     rows; a text that is empty is '' (DuckDB's NULL: every query treats
//     the two alike), a list that is empty is [];
//   - ids are FixedString(16), compared byte-wise like DuckDB's UUIDs.

const schemaVersion = 1

const serviceColumns = `
	id FixedString(16), ts DateTime, ts_us Int64, scan_id String,
	ip_hi UInt64, ip_lo UInt64, port UInt16, transport String, state String,
	ttl Nullable(UInt8), tcp_window Nullable(UInt16),
	protocol String, product String, version String, version_key String, cpe Array(String),
	banner String, banner_text String,
	http_status Nullable(UInt16), http_title String, http_server String, http_favicon Nullable(Int32),
	tls_subject String, tls_issuer String, tls_san Array(String), tls_sha256 String, tls_ja3s String,
	tls_not_after Nullable(DateTime),
	ssh_hassh String, ssh_hostkey String,
	country String, asn Nullable(UInt32), org String, label String,
	tags Array(String), vulns Array(String),
	details String`

const eventColumns = `
	id FixedString(16), batch FixedString(16), ts DateTime, ts_us Int64, sensor String,
	src_hi UInt64, src_lo UInt64, src_port Nullable(UInt16),
	dst_hi UInt64, dst_lo UInt64, dst_port Nullable(UInt16),
	transport String, icmp_type Nullable(UInt8), icmp_code Nullable(UInt8),
	ttl Nullable(UInt8), ip_id Nullable(UInt16), tcp_flags Nullable(UInt8), tcp_window Nullable(UInt16), tcp_seq Nullable(UInt32),
	tcp_options String, handshake UInt8,
	payload String, payload_text String,
	http_method String, http_path String, user_agent String, ja3 String, hassh String, sni String,
	username String, password String,
	tags Array(String), classification String, actor String,
	src_country String, src_asn Nullable(UInt32), src_org String, dst_country String`

// shardTables are created on every shard: with a cluster as NAME_local,
// with a Distributed table NAME over them.
var shardTables = []struct{ name, def string }{
	{"events", `(` + eventColumns + `) ENGINE = MergeTree() PARTITION BY toYYYYMMDD(ts) ORDER BY (src_lo, src_hi, ts_us)`},
	{"service_history", `(` + serviceColumns + `, batch FixedString(16))
		ENGINE = MergeTree() PARTITION BY toYYYYMM(ts) ORDER BY (ip_lo, ip_hi, port, transport, ts_us)`},
	{"services", `(` + serviceColumns + `,
		first_seen DateTime, first_us Int64, last_seen DateTime, last_us Int64, ver UInt64)
		ENGINE = ReplacingMergeTree(ver) ORDER BY (ip_lo, ip_hi, port, transport)`},
}

// nodeTables are plain tables of each node (batches is used on the first).
var nodeTables = []string{
	`CREATE TABLE IF NOT EXISTS meta (key String, value String, ver UInt64)
		ENGINE = ReplacingMergeTree(ver) ORDER BY key`,
	// state 0: being stored (a retry must first remove what a failed
	// attempt may have left), 1: stored
	`CREATE TABLE IF NOT EXISTS batches (id String, producer String, records UInt32, stored DateTime, state UInt8)
		ENGINE = ReplacingMergeTree(state) ORDER BY id`,
}

// migrations[i] brings the schema from version i to i+1. Every statement
// is idempotent, so an interrupted migration runs again whole.
var migrations = []func(s *DB) []string{
	func(s *DB) []string {
		stmts := append([]string(nil), nodeTables...)
		for _, t := range shardTables {
			stmts = append(stmts, "CREATE TABLE IF NOT EXISTS "+s.local(t.name)+" "+t.def)
			if s.cluster != "" {
				stmts = append(stmts, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Distributed(%s, %s, %s)",
					t.name, s.local(t.name), s.cluster, s.db, s.local(t.name)))
			}
		}
		return stmts
	},
}

// migrate creates or upgrades the schema on every node.
func (s *DB) migrate(ctx context.Context) error {
	for i, conn := range s.shards {
		if err := conn.Exec(ctx, nodeTables[0]); err != nil {
			return fmt.Errorf("clickhouse shard %d: create meta: %w", i+1, err)
		}
		var v string
		if err := conn.QueryRow(ctx, `SELECT argMax(value, ver) FROM meta WHERE key = 'schema_version'`).Scan(&v); err != nil {
			return fmt.Errorf("clickhouse shard %d: schema version: %w", i+1, err)
		}
		have := 0
		if v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("clickhouse shard %d: schema version %q", i+1, v)
			}
			have = n
		}
		if have > schemaVersion {
			return fmt.Errorf("clickhouse shard %d: schema version %d is newer than this program's %d", i+1, have, schemaVersion)
		}
		for ; have < schemaVersion; have++ {
			for _, st := range migrations[have](s) {
				if err := conn.Exec(ctx, st); err != nil {
					return fmt.Errorf("clickhouse shard %d: migrate to %d (%s): %w", i+1, have+1, firstLine(st), err)
				}
			}
			// a batch insert: 18.16 waits for data blocks after INSERT ... VALUES over the native protocol
			if err := insert(ctx, conn, "meta", "key, value, ver",
				[][]any{{"schema_version", strconv.Itoa(have + 1), uint64(time.Now().UnixNano())}}); err != nil {
				return fmt.Errorf("clickhouse shard %d: record schema version: %w", i+1, err)
			}
		}
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// columnNames lists the names in a column list.
func columnNames(cols string) []string {
	var out []string
	for _, def := range strings.Split(cols, ",") {
		if f := strings.Fields(def); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}
