package duckdb

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
)

func (s *DB) prepareWriter(ctx context.Context) error {
	for _, stmt := range []string{
		`CREATE TEMP TABLE IF NOT EXISTS stage_services AS SELECT * FROM services LIMIT 0`,
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
func (s *DB) Ingest(ctx context.Context, batches []*record.Batch) (int, error) {
	// Columns are built before taking the writer, so a second caller
	// builds while the first inserts; a batch found to be stored already
	// (rare: a redelivery) means building again for the rest.
	cols := buildEvents(batches)
	defer func() { cols.release() }()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	fresh, err := s.newBatches(ctx, batches)
	if err != nil || len(fresh) == 0 {
		return 0, err
	}
	if len(fresh) != len(batches) {
		cols.release()
		cols = buildEvents(fresh)
	}
	if _, err := s.w.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return 0, fmt.Errorf("ingest: %w", err)
	}
	s.seq++
	if err := s.ingest(ctx, fresh, cols); err != nil {
		s.seq-- // nothing of this call is stored
		if _, rerr := s.w.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
			s.log.Error("rollback after a failed ingest", "err", rerr)
		}
		return 0, fmt.Errorf("ingest %d batches: %w", len(fresh), err)
	}
	if _, err := s.w.ExecContext(ctx, "COMMIT"); err != nil {
		return 0, fmt.Errorf("ingest: commit: %w", err)
	}
	return len(fresh), nil
}

// newBatches returns the batches not stored yet (and each batch once, if
// the same one is given twice).
func (s *DB) newBatches(ctx context.Context, batches []*record.Batch) ([]*record.Batch, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	args := make([]any, len(batches))
	marks := make([]string, len(batches))
	for i, b := range batches {
		args[i] = uuidArg(b.ID)
		marks[i] = "?"
	}
	rows, err := s.w.QueryContext(ctx, "SELECT id FROM batches WHERE id IN ("+strings.Join(marks, ",")+")", args...)
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

func (s *DB) ingest(ctx context.Context, batches []*record.Batch, cols *eventColumns) error {
	now := time.Now().UTC()
	return s.raw(func(conn driver.Conn) error {
		if err := cols.insert(ctx, conn, s.seq); err != nil {
			return err
		}
		// every observation goes through the stage once: from there into
		// the history as it is, and the newest per service into the
		// current state
		n := 0
		if err := appendAll(conn, "temp", "stage_services", func(a *duckdb.Appender) error {
			for _, b := range batches {
				for i := range b.Services {
					sv := &b.Services[i]
					if err := a.AppendRow(append(serviceRow(sv), ts(sv.Time), ts(sv.Time))...); err != nil {
						return err
					}
					n++
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if n > 0 {
			if err := execAll(ctx, conn, historyFromStage, upsertServices, "DELETE FROM stage_services"); err != nil {
				return err
			}
		}
		return appendAll(conn, "", "batches", func(a *duckdb.Appender) error {
			for _, b := range batches {
				if err := a.AppendRow(duckdb.UUID(b.ID), text(b.Producer), int32(b.Len()), now); err != nil {
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

// text makes a string safe for a VARCHAR column: NULL when empty, and
// invalid UTF-8 replaced (DuckDB's appender would store NULL otherwise).
func text(s string) any {
	if s == "" {
		return nil
	}
	if !utf8.ValidString(s) {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

func texts(ss []string) any {
	if len(ss) == 0 {
		return nil
	}
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if s != "" {
			out = append(out, strings.ToValidUTF8(s, "\uFFFD"))
		}
	}
	return out
}

func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func u8(v uint8) any {
	if v == 0 {
		return nil
	}
	return v
}

func u16(v uint16) any {
	if v == 0 {
		return nil
	}
	return v
}

// searchText is the lower-cased, printable projection of binary data that
// free-text search scans: control bytes become spaces, invalid UTF-8 the
// replacement character. The raw bytes stay in the BLOB column.
func searchText(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		switch {
		case r == utf8.RuneError && n == 1:
			sb.WriteRune(utf8.RuneError)
		case r < 0x20 || r == 0x7f:
			sb.WriteByte(' ')
		default:
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// uuidArg binds an ID to a UUID parameter (the driver values *UUID, not UUID).
func uuidArg(id record.ID) *duckdb.UUID {
	u := duckdb.UUID(id)
	return &u
}

func hilo(a netip.Addr) (uint64, uint64) { return query.AddrToHiLo(a) }

// serviceRow is a service in the column order of serviceColumns.
func serviceRow(s *record.Service) []driver.Value {
	hi, lo := hilo(s.IP)
	var details any
	if s.Protocol != "" || len(s.Banner) > 0 || s.HTTP != nil || s.TLS != nil || s.SSH != nil {
		// the whole observation, for the IP page; a bare SYN-ACK adds
		// nothing to keep, so the last grab's details survive it
		details, _ = json.Marshal(s)
	}
	row := []driver.Value{
		duckdb.UUID(s.ID), ts(s.Time), text(s.ScanID),
		hi, lo, s.Port, text(s.Transport), text(s.State),
		u8(s.TTL), u16(s.Window),
		text(s.Protocol), text(s.Product), text(s.Version), text(query.VersionKey(s.Version)), texts(s.CPE),
		blob(s.Banner), searchText(s.Banner),
	}
	if h := s.HTTP; h != nil {
		var fav any
		if h.FaviconHash != 0 {
			fav = h.FaviconHash
		}
		var status any
		if h.Status > 0 && h.Status < 1000 {
			status = uint16(h.Status)
		}
		row = append(row, status, text(h.Title), text(h.Server), fav)
	} else {
		row = append(row, nil, nil, nil, nil)
	}
	if t := s.TLS; t != nil {
		row = append(row, text(t.Subject), text(t.Issuer), texts(t.SANs), text(t.SHA256), text(t.JA3S), ts(t.NotAfter))
	} else {
		row = append(row, nil, nil, nil, nil, nil, nil)
	}
	if h := s.SSH; h != nil {
		row = append(row, text(h.HASSH), text(h.HostKeySHA256))
	} else {
		row = append(row, nil, nil)
	}
	return append(row,
		text(s.Geo.Country), s.Geo.ASN, text(s.Geo.Org), text(s.Geo.Label),
		texts(s.Tags), texts(s.Vulns), details)
}

// The current state takes the newest observation; what a bare SYN-ACK
// cannot know (protocol, product, banner ...) is kept from earlier grabs.
// An observation older than the stored one changes nothing but first_seen.
var historyFromStage = `INSERT INTO service_history SELECT ` + strings.ReplaceAll(serviceColumnNames(), "\n", " ") + ` FROM stage_services`

var upsertServices = `INSERT INTO services SELECT * FROM stage_services
	QUALIFY row_number() OVER (PARTITION BY ip_lo, ip_hi, port, transport ORDER BY ts DESC) = 1
ON CONFLICT (ip_lo, ip_hi, port, transport) DO UPDATE SET
	first_seen = least(services.first_seen, excluded.first_seen),
	last_seen = greatest(services.last_seen, excluded.last_seen),
	id = CASE WHEN excluded.ts >= services.ts THEN excluded.id ELSE services.id END,
	ts = greatest(services.ts, excluded.ts),
	scan_id = CASE WHEN excluded.ts >= services.ts THEN excluded.scan_id ELSE services.scan_id END,
	state = CASE WHEN excluded.ts >= services.ts THEN excluded.state ELSE services.state END,
	ttl = CASE WHEN excluded.ts >= services.ts THEN coalesce(excluded.ttl, services.ttl) ELSE services.ttl END,
	tcp_window = CASE WHEN excluded.ts >= services.ts THEN coalesce(excluded.tcp_window, services.tcp_window) ELSE services.tcp_window END,
	protocol = ` + newer("protocol") + `, product = ` + newer("product") + `, version = ` + newer("version") + `,
	version_key = ` + newer("version_key") + `, cpe = ` + newer("cpe") + `,
	banner = ` + newer("banner") + `, banner_text = ` + newer("banner_text") + `,
	http_status = ` + newer("http_status") + `, http_title = ` + newer("http_title") + `,
	http_server = ` + newer("http_server") + `, http_favicon = ` + newer("http_favicon") + `,
	tls_subject = ` + newer("tls_subject") + `, tls_issuer = ` + newer("tls_issuer") + `, tls_san = ` + newer("tls_san") + `,
	tls_sha256 = ` + newer("tls_sha256") + `, tls_ja3s = ` + newer("tls_ja3s") + `, tls_not_after = ` + newer("tls_not_after") + `,
	ssh_hassh = ` + newer("ssh_hassh") + `, ssh_hostkey = ` + newer("ssh_hostkey") + `,
	country = ` + newer("country") + `, asn = ` + newer("asn") + `, org = ` + newer("org") + `, label = ` + newer("label") + `,
	tags = ` + newer("tags") + `, vulns = ` + newer("vulns") + `, details = ` + newer("details")

// newer takes the incoming value when the incoming observation is not
// older and has one, else keeps the stored value.
func newer(col string) string {
	return fmt.Sprintf("CASE WHEN excluded.ts >= services.ts THEN coalesce(excluded.%[1]s, services.%[1]s) ELSE services.%[1]s END", col)
}
