package clickhouse

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// Ingest stores batches, skipping those stored before. ClickHouse has no
// transactions, so a batch is stored in three steps: a marker "being
// stored" (batches, state 0), its rows, a marker "stored" (state 1). A
// batch found with only the first marker was interrupted (the server
// stopped, the connection broke): what it may have left in the events and
// the history is deleted (a mutation, waited for) before it is stored
// again. The current services need no cleaning: merging the same
// observation into a state twice gives the state once merged.
func (s *DB) Ingest(ctx context.Context, batches []*record.Batch) (int, error) {
	if len(batches) == 0 {
		return 0, nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	states, err := s.batchStates(ctx, batches)
	if err != nil {
		return 0, err
	}
	var fresh, interrupted []*record.Batch
	seen := map[record.ID]bool{}
	for _, b := range batches {
		st, ok := states[b.ID]
		if seen[b.ID] || ok && st == 1 {
			continue
		}
		seen[b.ID] = true
		fresh = append(fresh, b)
		if ok {
			interrupted = append(interrupted, b)
		}
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	if len(interrupted) > 0 {
		s.log.Warn("clickhouse: removing what interrupted batches left before storing them again", "batches", len(interrupted))
		if err := s.removeBatches(ctx, interrupted); err != nil {
			return 0, err
		}
	}
	now := time.Now().UTC()
	if err := s.markBatches(ctx, fresh, 0, now); err != nil {
		return 0, err
	}
	if err := s.insertRows(ctx, fresh); err != nil {
		return 0, fmt.Errorf("ingest %d batches: %w", len(fresh), err)
	}
	if err := s.markBatches(ctx, fresh, 1, now); err != nil {
		return 0, err
	}
	return len(fresh), nil
}

func hexID(id record.ID) string { return strings.ToUpper(id.String()) }

// batchStates returns the stored state of each known batch.
func (s *DB) batchStates(ctx context.Context, batches []*record.Batch) (map[record.ID]uint8, error) {
	out := map[record.ID]uint8{}
	for start := 0; start < len(batches); start += 1000 {
		chunk := batches[start:min(start+1000, len(batches))]
		marks := make([]string, len(chunk))
		args := make([]any, len(chunk))
		for i, b := range chunk {
			marks[i], args[i] = "?", hexID(b.ID)
		}
		rows, err := s.shards[0].Query(ctx, "SELECT id, max(state) FROM batches WHERE id IN ("+strings.Join(marks, ",")+") GROUP BY id", args...)
		if err != nil {
			return nil, fmt.Errorf("ingest: look up batch ids: %w", err)
		}
		for rows.Next() {
			var id string
			var st uint8
			if err := rows.Scan(&id, &st); err != nil {
				rows.Close()
				return nil, fmt.Errorf("ingest: %w", err)
			}
			var rid record.ID
			if rid.UnmarshalText([]byte(strings.ToLower(id))) == nil {
				out[rid] = st
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
	}
	return out, nil
}

func (s *DB) markBatches(ctx context.Context, batches []*record.Batch, state uint8, now time.Time) error {
	b, err := s.shards[0].PrepareBatch(ctx, "INSERT INTO batches (id, producer, records, stored, state)")
	if err != nil {
		return fmt.Errorf("ingest: mark batches: %w", err)
	}
	for _, bt := range batches {
		if err := b.Append(hexID(bt.ID), strings.ToValidUTF8(bt.Producer, "\uFFFD"), uint32(bt.Len()), now, state); err != nil {
			b.Abort()
			return fmt.Errorf("ingest: mark batches: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("ingest: mark batches: %w", err)
	}
	return nil
}

// removeBatches deletes the events and history rows of batches on every
// shard and waits until the deletions are done.
func (s *DB) removeBatches(ctx context.Context, batches []*record.Batch) error {
	ids := make([]string, len(batches))
	for i, b := range batches {
		ids[i] = "'" + hexID(b.ID) + "'" // hex digits only
	}
	for i, conn := range s.shards {
		for _, t := range []string{"events", "service_history"} {
			if err := s.mutate(ctx, conn, s.local(t), "DELETE WHERE hex(batch) IN ("+strings.Join(ids, ",")+")"); err != nil {
				return fmt.Errorf("ingest: clean up interrupted batches on shard %d: %w", i+1, err)
			}
		}
	}
	return nil
}

// mutate runs ALTER TABLE table <what> and waits until it is done
// (18.16 has no mutations_sync).
func (s *DB) mutate(ctx context.Context, conn driver.Conn, table, what string, args ...any) error {
	if err := conn.Exec(ctx, "ALTER TABLE "+table+" "+what, args...); err != nil {
		return err
	}
	for {
		// (18.16's system.mutations has no failure reason: a mutation that
		// cannot finish is waited for until ctx ends)
		var pending uint64
		if err := conn.QueryRow(ctx, `SELECT count() FROM system.mutations
			WHERE database = currentDatabase() AND table = ? AND is_done = 0`, table).Scan(&pending); err != nil {
			return err
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// svcRow is one row of services (or of service_history): the columns in
// schema order.
type svcRow struct {
	id                       string
	ts                       int64 // microseconds
	scanID                   string
	hi, lo                   uint64
	port                     uint16
	transport, state         string
	ttl                      *uint8
	window                   *uint16
	protocol, product        string
	version, versionKey      string
	cpe                      []string
	banner, bannerText       string
	httpStatus               *uint16
	httpTitle, httpServer    string
	favicon                  *int32
	tlsSubject, tlsIssuer    string
	tlsSAN                   []string
	tlsSHA, tlsJA3S          string
	notAfter                 *time.Time
	sshHASSH, sshHostKey     string
	country                  string
	asn                      *uint32
	org, label               string
	tags, vulns              []string
	details                  string
	first, last              int64 // services only
	ver                      uint64
	batch                    record.ID // history only
	hasFirst, fromStoredRows bool
}

const svcInsertColumns = `id, ts, ts_us, scan_id, ip_hi, ip_lo, port, transport, state, ttl, tcp_window,
	protocol, product, version, version_key, cpe, banner, banner_text,
	http_status, http_title, http_server, http_favicon,
	tls_subject, tls_issuer, tls_san, tls_sha256, tls_ja3s, tls_not_after, ssh_hassh, ssh_hostkey,
	country, asn, org, label, tags, vulns, details`

func (r *svcRow) values() []any {
	return []any{r.id, secs(r.ts), r.ts, r.scanID, r.hi, r.lo, r.port, r.transport, r.state, r.ttl, r.window,
		r.protocol, r.product, r.version, r.versionKey, nonNil(r.cpe), r.banner, r.bannerText,
		r.httpStatus, r.httpTitle, r.httpServer, r.favicon,
		r.tlsSubject, r.tlsIssuer, nonNil(r.tlsSAN), r.tlsSHA, r.tlsJA3S, r.notAfter, r.sshHASSH, r.sshHostKey,
		r.country, r.asn, r.org, r.label, nonNil(r.tags), nonNil(r.vulns), r.details}
}

// targets are scan targets for svcInsertColumns (ts read as ts_us) plus
// first_us, last_us, ver.
func (r *svcRow) targets() []any {
	var ts time.Time
	return []any{&r.id, &ts, &r.ts, &r.scanID, &r.hi, &r.lo, &r.port, &r.transport, &r.state, &r.ttl, &r.window,
		&r.protocol, &r.product, &r.version, &r.versionKey, &r.cpe, &r.banner, &r.bannerText,
		&r.httpStatus, &r.httpTitle, &r.httpServer, &r.favicon,
		&r.tlsSubject, &r.tlsIssuer, &r.tlsSAN, &r.tlsSHA, &r.tlsJA3S, &r.notAfter, &r.sshHASSH, &r.sshHostKey,
		&r.country, &r.asn, &r.org, &r.label, &r.tags, &r.vulns, &r.details, &r.first, &r.last, &r.ver}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// secs is the DateTime of a time in microseconds (whole seconds, floored).
func secs(us int64) time.Time {
	if us < 0 {
		return time.Unix(0, 0).UTC()
	}
	return time.Unix(us/1e6, 0).UTC()
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// Values are stored as the DuckDB store stores them: text as valid UTF-8
// (empty for unknown), numbers that are zero as NULL, lists without empty
// elements.
func text(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func list(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v != "" {
			out = append(out, text(v))
		}
	}
	return out
}

func nz[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

func newSvcRow(s *record.Service, batch record.ID) *svcRow {
	hi, lo := query.AddrToHiLo(s.IP)
	details := s.AppendJSON(nil)
	r := &svcRow{
		id: string(s.ID[:]), ts: micros(s.Time), scanID: text(s.ScanID), hi: hi, lo: lo, port: s.Port,
		transport: text(s.Transport), state: text(s.State), ttl: nz(s.TTL), window: nz(s.Window),
		protocol: text(s.Protocol), product: text(s.Product), version: text(s.Version),
		versionKey: text(query.VersionKey(s.Version)), cpe: list(s.CPE),
		banner: string(s.Banner), bannerText: store.SearchText(s.Banner),
		country: text(s.Geo.Country), asn: nz(s.Geo.ASN), org: text(s.Geo.Org), label: text(s.Geo.Label),
		tags: list(s.Tags), vulns: list(s.Vulns), details: string(details), batch: batch,
	}
	if h := s.HTTP; h != nil {
		if h.Status > 0 && h.Status < 1<<16 {
			r.httpStatus = nz(uint16(h.Status))
		}
		r.httpTitle, r.httpServer, r.favicon = text(h.Title), text(h.Server), nz(h.FaviconHash)
	}
	if t := s.TLS; t != nil {
		r.tlsSubject, r.tlsIssuer, r.tlsSAN = text(t.Subject), text(t.Issuer), list(t.SANs)
		r.tlsSHA, r.tlsJA3S = text(t.SHA256), text(t.JA3S)
		if !t.NotAfter.IsZero() {
			na := t.NotAfter.UTC().Truncate(time.Second)
			r.notAfter = &na
		}
	}
	if h := s.SSH; h != nil {
		r.sshHASSH, r.sshHostKey = text(h.HASSH), text(h.HostKeySHA256)
	}
	r.first, r.last = r.ts, r.ts
	return r
}

const eventInsertColumns = `id, batch, ts, ts_us, sensor, src_hi, src_lo, src_port, dst_hi, dst_lo, dst_port,
	transport, icmp_type, icmp_code, ttl, ip_id, tcp_flags, tcp_window, tcp_seq, tcp_options, handshake,
	payload, payload_text, http_method, http_path, user_agent, ja3, hassh, sni, username, password,
	tags, classification, actor, src_country, src_asn, src_org, dst_country`

func eventValues(e *record.Event, batch record.ID, sh, sl uint64) []any {
	dh, dl := query.AddrToHiLo(e.Dst)
	var hs uint8
	if e.Handshake {
		hs = 1
	}
	us := micros(e.Time)
	return []any{string(e.ID[:]), string(batch[:]), secs(us), us, text(e.Sensor), sh, sl, nz(e.SrcPort), dh, dl, nz(e.DstPort),
		text(e.Transport), nz(e.ICMPType), nz(e.ICMPCode), nz(e.TTL), nz(e.IPID), nz(e.TCPFlags), nz(e.TCPWindow), nz(e.TCPSeq),
		text(e.TCPOptions), hs, string(e.Payload), store.SearchText(e.Payload),
		text(e.HTTPMethod), text(e.HTTPPath), text(e.UserAgent), text(e.JA3), text(e.HASSH), text(e.SNI),
		text(e.Username), text(e.Password), nonNil(list(e.Tags)), text(e.Classification), text(e.Actor),
		text(e.SrcGeo.Country), nz(e.SrcGeo.ASN), text(e.SrcGeo.Org), text(e.DstCountry)}
}

// insertRows writes the batches' rows, each to its shard: events by
// source, services by address.
func (s *DB) insertRows(ctx context.Context, batches []*record.Batch) error {
	n := len(s.shards)
	events := make([][][]any, n)
	services := make([][]*svcRow, n)
	for _, b := range batches {
		for i := range b.Events {
			e := &b.Events[i]
			sh, sl := query.AddrToHiLo(e.Src)
			k := s.shardOf(sh, sl)
			events[k] = append(events[k], eventValues(e, b.ID, sh, sl))
		}
		for i := range b.Services {
			r := newSvcRow(&b.Services[i], b.ID)
			k := s.shardOf(r.hi, r.lo)
			services[k] = append(services[k], r)
		}
	}
	for k, conn := range s.shards {
		if len(events[k]) > 0 {
			if err := insert(ctx, conn, s.local("events"), eventInsertColumns, events[k]); err != nil {
				return err
			}
		}
		if len(services[k]) == 0 {
			continue
		}
		hist := make([][]any, len(services[k]))
		for i, r := range services[k] {
			hist[i] = append(r.values(), string(r.batch[:]))
		}
		if err := insert(ctx, conn, s.local("service_history"), svcInsertColumns+", batch", hist); err != nil {
			return err
		}
		merged, err := s.mergeServices(ctx, conn, services[k])
		if err != nil {
			return err
		}
		rows := make([][]any, len(merged))
		for i, r := range merged {
			rows[i] = append(r.values(), secs(r.first), r.first, secs(r.last), r.last, r.ver)
		}
		if err := insert(ctx, conn, s.local("services"), svcInsertColumns+", first_seen, first_us, last_seen, last_us, ver", rows); err != nil {
			return err
		}
	}
	return nil
}

// insert sends rows in one batch insert that names its columns.
func insert(ctx context.Context, conn driver.Conn, table, columns string, rows [][]any) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+strings.Join(strings.Fields(columns), " ")+")")
	if err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	for _, r := range rows {
		if err := b.Append(r...); err != nil {
			b.Abort()
			return fmt.Errorf("insert into %s: %w", table, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}

type svcKey struct {
	lo, hi    uint64
	port      uint16
	transport string
}

// mergeServices folds observations into the stored current state, as the
// DuckDB store does (store/duckdb/ingest.go, mergeServices): the newest
// observation per service, merged with the stored row; what a bare
// SYN-ACK cannot know is kept from earlier grabs, and an observation older
// than the stored one changes nothing but first_seen.
func (s *DB) mergeServices(ctx context.Context, conn driver.Conn, obs []*svcRow) ([]*svcRow, error) {
	newest := map[svcKey]*svcRow{}
	var order []svcKey
	for _, r := range obs {
		k := svcKey{r.lo, r.hi, r.port, r.transport}
		if cur, ok := newest[k]; !ok {
			newest[k] = r
			order = append(order, k)
		} else if r.ts >= cur.ts {
			newest[k] = r
		}
	}
	stored, err := s.storedServices(ctx, conn, order)
	if err != nil {
		return nil, err
	}
	ver := uint64(time.Now().UnixNano())
	out := make([]*svcRow, 0, len(order))
	for _, k := range order {
		n := *newest[k]
		m := merge(&n, stored[k])
		m.ver = ver
		if st := stored[k]; st != nil && st.ver >= ver {
			m.ver = st.ver + 1
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *DB) storedServices(ctx context.Context, conn driver.Conn, keys []svcKey) (map[svcKey]*svcRow, error) {
	out := map[svcKey]*svcRow{}
	// without FINAL: every stored version of the keys, the highest ver kept
	// here (FINAL merges whole parts, single-threaded on 18.16)
	const chunk = 2000
	for start := 0; start < len(keys); start += chunk {
		part := keys[start:min(start+chunk, len(keys))]
		los := make([]string, len(part))
		tuples := make([]string, len(part))
		args := make([]any, len(part))
		for i, k := range part {
			los[i] = strconv.FormatUint(k.lo, 10)
			tuples[i] = fmt.Sprintf("(%d, %d, %d, ?)", k.lo, k.hi, k.port)
			args[i] = k.transport
		}
		if len(tuples) == 1 { // (a, b) IN ((x, y)) would read as a set of scalars
			tuples, args = append(tuples, tuples[0]), append(args, args[0])
		}
		q := "SELECT " + svcInsertColumns + ", first_us, last_us, ver FROM " + s.local("services") +
			" WHERE ip_lo IN (" + strings.Join(los, ",") + ") AND (ip_lo, ip_hi, port, transport) IN (" + strings.Join(tuples, ",") + ")"
		rows, err := conn.Query(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("read stored services: %w", err)
		}
		for rows.Next() {
			r := &svcRow{}
			if err := rows.Scan(r.targets()...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read stored services: %w", err)
			}
			k := svcKey{r.lo, r.hi, r.port, r.transport}
			if cur := out[k]; cur == nil || r.ver > cur.ver {
				out[k] = r
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read stored services: %w", err)
		}
	}
	return out, nil
}

// merge is mergeColumns of the DuckDB store, row by row (unknown = empty).
func merge(n, s *svcRow) *svcRow {
	if s == nil {
		return n
	}
	m := *s
	if n.ts >= s.ts {
		m.id, m.scanID, m.state = n.id, n.scanID, n.state
		str := func(dst *string, v string) {
			if v != "" {
				*dst = v
			}
		}
		lst := func(dst *[]string, v []string) {
			if len(v) > 0 {
				*dst = v
			}
		}
		str(&m.protocol, n.protocol)
		str(&m.product, n.product)
		str(&m.version, n.version)
		str(&m.versionKey, n.versionKey)
		str(&m.banner, n.banner)
		str(&m.bannerText, n.bannerText)
		str(&m.httpTitle, n.httpTitle)
		str(&m.httpServer, n.httpServer)
		str(&m.tlsSubject, n.tlsSubject)
		str(&m.tlsIssuer, n.tlsIssuer)
		str(&m.tlsSHA, n.tlsSHA)
		str(&m.tlsJA3S, n.tlsJA3S)
		str(&m.sshHASSH, n.sshHASSH)
		str(&m.sshHostKey, n.sshHostKey)
		str(&m.country, n.country)
		str(&m.org, n.org)
		str(&m.label, n.label)
		lst(&m.cpe, n.cpe)
		lst(&m.tlsSAN, n.tlsSAN)
		lst(&m.tags, n.tags)
		lst(&m.vulns, n.vulns)
		if n.ttl != nil {
			m.ttl = n.ttl
		}
		if n.window != nil {
			m.window = n.window
		}
		if n.httpStatus != nil {
			m.httpStatus = n.httpStatus
		}
		if n.favicon != nil {
			m.favicon = n.favicon
		}
		if n.notAfter != nil {
			m.notAfter = n.notAfter
		}
		if n.asn != nil {
			m.asn = n.asn
		}
		// a grab's details survive a later bare SYN-ACK
		if n.protocol != "" || n.product != "" || n.bannerText != "" || n.tlsSHA != "" || n.sshHASSH != "" || n.httpStatus != nil {
			m.details = n.details
		}
	}
	m.ts = max(n.ts, s.ts)
	m.first = min(n.ts, s.first)
	m.last = max(n.ts, s.last)
	return &m
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}
