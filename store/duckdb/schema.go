package duckdb

import "strings"

// schema creates the tables. Addresses are two UBIGINT columns (the high
// and low half of the IPv4-mapped IPv6 address: IPv4 lives in lo with hi =
// 0), so CIDR queries are integer ranges and IPv6 costs nothing extra.
// Binary data (banners, payloads) is BLOB: DuckDB's appender silently
// stores NULL for a VARCHAR that is not valid UTF-8, and every text column
// is sanitised before it is appended for the same reason.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)`,

	// one row per stored bus batch: what makes Ingest idempotent
	`CREATE TABLE IF NOT EXISTS batches (
		id UUID PRIMARY KEY, producer VARCHAR, records INTEGER, stored TIMESTAMP)`,

	// every observation of a service, as scanners and grabbers sent it
	`CREATE TABLE IF NOT EXISTS service_history (` + serviceColumns + `)`,

	// the current state of each (address, port, transport): what search
	// sees. No primary key: a key index made every upsert an index probe
	// per row, and the ingester replaces rows in bulk instead (see
	// mergeServices)
	`CREATE TABLE IF NOT EXISTS services (` + serviceColumns + `,
		first_seen TIMESTAMP, last_seen TIMESTAMP)`,
	// DuckDB looks things up through an index only on its first column,
	// and only when the value is a constant in the SQL text: lookups by
	// address write the (already parsed) integers into the query
	`CREATE INDEX IF NOT EXISTS services_ip ON services (ip_lo)`,

	// seq is the ingest call that stored the row: the profile refresher
	// reads the events after its watermark
	`CREATE TABLE IF NOT EXISTS events (
		id UUID, ts TIMESTAMP, seq BIGINT, sensor VARCHAR,
		src_hi UBIGINT, src_lo UBIGINT, src_port USMALLINT,
		dst_hi UBIGINT, dst_lo UBIGINT, dst_port USMALLINT,
		transport VARCHAR, icmp_type UTINYINT, icmp_code UTINYINT,
		ttl UTINYINT, ip_id USMALLINT, tcp_flags UTINYINT, tcp_window USMALLINT, tcp_seq UINTEGER,
		tcp_options VARCHAR, handshake BOOLEAN,
		payload BLOB, payload_text VARCHAR,
		http_method VARCHAR, http_path VARCHAR, user_agent VARCHAR, ja3 VARCHAR, hassh VARCHAR, sni VARCHAR,
		username VARCHAR, password VARCHAR,
		tags VARCHAR[], classification VARCHAR, actor VARCHAR,
		src_country VARCHAR, src_asn UINTEGER, src_org VARCHAR, dst_country VARCHAR)`,

	// the sensors' view of each source address, kept up to date at ingest
	`CREATE TABLE IF NOT EXISTS profiles (
		src_lo UBIGINT, src_hi UBIGINT,
		first_seen TIMESTAMP, last_seen TIMESTAMP, events BIGINT,
		ports USMALLINT[], tags VARCHAR[], sensors VARCHAR[], dsts UBIGINT[],
		handshake BOOLEAN, classification VARCHAR, actor VARCHAR,
		country VARCHAR, asn UINTEGER, org VARCHAR,
		PRIMARY KEY (src_lo, src_hi))`,
	`CREATE INDEX IF NOT EXISTS profiles_ip ON profiles (src_lo)`,
}

const serviceColumns = `
		id UUID, ts TIMESTAMP, scan_id VARCHAR,
		ip_hi UBIGINT, ip_lo UBIGINT, port USMALLINT, transport VARCHAR, state VARCHAR,
		ttl UTINYINT, tcp_window USMALLINT,
		protocol VARCHAR, product VARCHAR, version VARCHAR, version_key VARCHAR, cpe VARCHAR[],
		banner BLOB, banner_text VARCHAR,
		http_status USMALLINT, http_title VARCHAR, http_server VARCHAR, http_favicon INTEGER,
		tls_subject VARCHAR, tls_issuer VARCHAR, tls_san VARCHAR[], tls_sha256 VARCHAR, tls_ja3s VARCHAR,
		tls_not_after TIMESTAMP,
		ssh_hassh VARCHAR, ssh_hostkey VARCHAR,
		country VARCHAR, asn UINTEGER, org VARCHAR, label VARCHAR,
		tags VARCHAR[], vulns VARCHAR[],
		details BLOB`

// serviceColumnNames lists the names in serviceColumns.
func serviceColumnNames() string {
	var names []string
	for _, def := range strings.Split(serviceColumns, ",") {
		if f := strings.Fields(def); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return strings.Join(names, ", ")
}
