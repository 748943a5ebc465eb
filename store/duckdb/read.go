package duckdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// maxRows caps any page, whatever the caller asks.
const maxRows = 10000

// serviceSelect reads a current service: the stored observation (details,
// the whole record as JSON) and the columns a later scan or enrichment
// updates. Fewer columns read is most of a lookup's time.
const serviceSelect = `SELECT details, ts, scan_id, state, ttl, tcp_window, first_seen, last_seen,
	country, asn, org, label, ip_hi, ip_lo, port, transport FROM services`

// serviceScanner holds the scanned columns of serviceSelect.
type serviceScanner struct {
	details                        []byte
	t, first, last                 sql.NullTime
	scanID, state                  sql.NullString
	country, org, label, transport sql.NullString
	hi, lo                         uint64
	port                           uint16
	ttl                            sql.Null[uint8]
	window                         sql.Null[uint16]
	asn                            sql.Null[uint32]
}

func (r *serviceScanner) targets() []any {
	return []any{&r.details, &r.t, &r.scanID, &r.state, &r.ttl, &r.window, &r.first, &r.last,
		&r.country, &r.asn, &r.org, &r.label, &r.hi, &r.lo, &r.port, &r.transport}
}

func (r *serviceScanner) service() (store.Service, error) {
	var s store.Service
	if len(r.details) > 0 {
		if err := json.Unmarshal(r.details, &s.Service); err != nil {
			return s, fmt.Errorf("service details: %w", err)
		}
	}
	s.Time, s.ScanID, s.IP, s.Port = r.t.Time.UTC(), r.scanID.String, query.HiLoToAddr(r.hi, r.lo), r.port
	s.Transport, s.State, s.TTL, s.Window = r.transport.String, r.state.String, r.ttl.V, r.window.V
	s.Geo = record.Geo{Country: r.country.String, ASN: r.asn.V, Org: r.org.String, Label: r.label.String}
	s.FirstSeen, s.LastSeen = r.first.Time.UTC(), r.last.Time.UTC()
	return s, nil
}

func scanService(rows interface{ Scan(...any) error }) (store.Service, error) {
	var r serviceScanner
	if err := rows.Scan(r.targets()...); err != nil {
		return store.Service{}, err
	}
	return r.service()
}

// strList converts a scanned LIST of VARCHAR.
func strList(v any) []string {
	l, _ := v.([]any)
	if len(l) == 0 {
		return nil
	}
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func u16List(v any) []uint16 {
	l, _ := v.([]any)
	out := make([]uint16, 0, len(l))
	for _, x := range l {
		if n, ok := x.(uint16); ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Host returns the current services of an address and its sensor profile,
// in one query (each query costs a fixed few hundred microseconds).
func (s *DB) Host(ctx context.Context, ip netip.Addr) (*store.Host, error) {
	ip = ip.Unmap()
	hi, lo := query.AddrToHiLo(ip)
	q := `SELECT 's', details, ts, scan_id, state, ttl, tcp_window, first_seen, last_seen, country, asn, org, label,
			ip_hi, ip_lo, port, transport,
			NULL::BIGINT, NULL::USMALLINT[], NULL::VARCHAR[], NULL::BIGINT, NULL::BIGINT, NULL::BOOLEAN
		FROM services WHERE ` + addrEq("ip", hi, lo)
	if s.profiled.Load().mayHave(hi, lo) {
		q += ` UNION ALL
		SELECT 'p', NULL, NULL, NULL, classification, NULL, NULL, first_seen, last_seen, country, asn, org, actor,
			src_hi, src_lo, 0, NULL,
			events, ports, tags, len(sensors), len(dsts), handshake
		FROM profiles WHERE ` + addrEq("src", hi, lo)
	}
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", ip, err)
	}
	defer rows.Close()
	h := &store.Host{IP: ip, Services: []store.Service{}}
	cpes, tags, vulns := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for rows.Next() {
		var kind string
		var events, nSensors, nDsts sql.NullInt64
		var ports, ptags any
		var handshake sql.NullBool
		sr := serviceScanner{}
		if err := rows.Scan(append([]any{&kind}, append(sr.targets(), &events, &ports, &ptags, &nSensors, &nDsts, &handshake)...)...); err != nil {
			return nil, fmt.Errorf("host %s: %w", ip, err)
		}
		if kind == "p" {
			h.Profile = &store.Profile{
				IP: ip, FirstSeen: sr.first.Time.UTC(), LastSeen: sr.last.Time.UTC(), Events: events.Int64, Ports: u16List(ports),
				Tags: strList(ptags), Sensors: nSensors.Int64, Destinations: nDsts.Int64, Handshake: handshake.Bool,
				Classification: sr.state.String, Actor: sr.label.String,
				Geo: record.Geo{Country: sr.country.String, ASN: sr.asn.V, Org: sr.org.String},
			}
			continue
		}
		sv, err := sr.service()
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", ip, err)
		}
		h.Services = append(h.Services, sv)
		h.Ports = append(h.Ports, sv.Port)
		for _, c := range sv.CPE {
			cpes[c] = true
		}
		for _, t := range sv.Tags {
			tags[t] = true
		}
		for _, v := range sv.Vulns {
			vulns[v] = true
		}
		if h.FirstSeen.IsZero() || sv.FirstSeen.Before(h.FirstSeen) {
			h.FirstSeen = sv.FirstSeen
		}
		if sv.LastSeen.After(h.LastSeen) {
			h.LastSeen = sv.LastSeen
			h.Geo = sv.Geo
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("host %s: %w", ip, err)
	}
	if len(h.Services) == 0 && h.Profile == nil {
		return nil, store.ErrNotFound
	}
	slices.SortFunc(h.Services, func(a, b store.Service) int {
		if a.Port != b.Port {
			return int(a.Port) - int(b.Port)
		}
		return strings.Compare(a.Transport, b.Transport)
	})
	slices.Sort(h.Ports)
	h.Ports = slices.Compact(h.Ports)
	h.CPEs, h.Tags, h.Vulns = keys(cpes), keys(tags), keys(vulns)
	if h.Geo == (record.Geo{}) && h.Profile != nil {
		h.Geo = h.Profile.Geo
	}
	return h, nil
}

func keys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Profile returns the sensors' view of a source address, with its most
// recent events.
func (s *DB) Profile(ctx context.Context, ip netip.Addr, recent int) (*store.Profile, error) {
	ip = ip.Unmap()
	hi, lo := query.AddrToHiLo(ip)
	if !s.profiled.Load().mayHave(hi, lo) {
		return nil, store.ErrNotFound
	}
	var (
		first, last              time.Time
		events                   int64
		ports, tags, sensors, ds any
		handshake                bool
		class, actor             sql.NullString
		country, org             sql.NullString
		asn                      sql.Null[uint32]
	)
	err := s.db.QueryRowContext(ctx, `SELECT first_seen, last_seen, events, ports, tags, sensors, len(dsts), handshake,
		classification, actor, country, asn, org FROM profiles WHERE `+addrEq("src", hi, lo)).
		Scan(&first, &last, &events, &ports, &tags, &sensors, &ds, &handshake, &class, &actor, &country, &asn, &org)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", ip, err)
	}
	p := &store.Profile{
		IP: ip, FirstSeen: first.UTC(), LastSeen: last.UTC(), Events: events, Ports: u16List(ports),
		Tags: strList(tags), Sensors: int64(len(strList(sensors))), Handshake: handshake,
		Classification: class.String, Actor: actor.String,
		Geo: record.Geo{Country: country.String, ASN: asn.V, Org: org.String},
	}
	if n, ok := ds.(int64); ok {
		p.Destinations = n
	} else if n, ok := ds.(uint64); ok {
		p.Destinations = int64(n)
	}
	if recent > 0 {
		res, err := s.events(ctx, addrEq("src", hi, lo), nil, min(recent, maxRows), "")
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", ip, err)
		}
		p.Recent = res.Events
		if p.TagEvidence, err = s.tagEvidence(ctx, hi, lo); err != nil {
			return nil, fmt.Errorf("profile %s: %w", ip, err)
		}
	}
	return p, nil
}

// tagEvidence finds, per tag of a source's events, how many carried it and
// the first of them.
func (s *DB) tagEvidence(ctx context.Context, hi, lo uint64) ([]store.TagEvidence, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT tag, count(*), min(ts), arg_min(id, ts)::VARCHAR
		FROM (SELECT unnest(tags) AS tag, ts, id FROM events WHERE `+addrEq("src", hi, lo)+`)
		GROUP BY tag ORDER BY min(ts), tag LIMIT 200`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.TagEvidence
	for rows.Next() {
		var e store.TagEvidence
		var id string
		if err := rows.Scan(&e.Tag, &e.Events, &e.FirstSeen, &id); err != nil {
			return nil, err
		}
		e.FirstSeen = e.FirstSeen.UTC()
		e.FirstEvent = strings.ReplaceAll(id, "-", "")
		out = append(out, e)
	}
	return out, rows.Err()
}

// addrEq compares an address column pair with an address. The integers
// are written into the SQL: they come from a parsed address, never from
// text, and DuckDB uses an index only for a constant in the query text,
// never for a bound parameter.
func addrEq(col string, hi, lo uint64) string {
	return fmt.Sprintf("%[1]s_lo = %[2]d::UBIGINT AND %[1]s_hi = %[3]d::UBIGINT", col, lo, hi)
}

// arg prepares a value for database/sql (which refuses uint64s with the
// top bit set: many IPv6 halves).
func arg(v any) any { return query.DuckDB.Arg(v) }

// compile parses and compiles a query for a table.
func compile(q string, t query.Target, now time.Time) (string, []any, error) {
	if strings.TrimSpace(q) == "" {
		return query.DuckDB.True(), nil, nil
	}
	return query.CompileQuery(q, t, query.DuckDB, now)
}

// SearchServices finds current services matching a query, in address
// order, with a cursor for the next page and facet counts.
func (s *DB) SearchServices(ctx context.Context, r store.Search) (*store.ServiceResult, error) {
	where, args, err := compile(r.Query, query.Services, nowOr(r.Now))
	if err != nil {
		return nil, err
	}
	res := &store.ServiceResult{Services: []store.Service{}}
	if res.Total, res.Facets, err = s.countFacets(ctx, "services", where, args, r.Facets); err != nil {
		return nil, err
	}
	limit := pageSize(r.Limit)
	if limit == 0 {
		return res, nil
	}
	page, pargs := where, slices.Clone(args)
	if r.Cursor != "" {
		k, err := store.DecodeServiceCursor(r.Cursor)
		if err != nil {
			return nil, err
		}
		page += ` AND (ip_lo, ip_hi, port, transport) > (?, ?, ?, ?)`
		pargs = append(pargs, arg(k.Lo), arg(k.Hi), k.Port, k.Transport)
	}
	rows, err := s.db.QueryContext(ctx, serviceSelect+" WHERE "+page+
		" ORDER BY ip_lo, ip_hi, port, transport LIMIT ?", append(pargs, limit+1)...)
	if err != nil {
		return nil, fmt.Errorf("search services: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		sv, err := scanService(rows)
		if err != nil {
			return nil, fmt.Errorf("search services: %w", err)
		}
		res.Services = append(res.Services, sv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search services: %w", err)
	}
	if len(res.Services) > limit {
		res.Services = res.Services[:limit]
		last := res.Services[limit-1]
		hi, lo := query.AddrToHiLo(last.IP)
		res.Next = store.EncodeCursor("s", strconv.FormatUint(lo, 10), strconv.FormatUint(hi, 10),
			strconv.Itoa(int(last.Port)), last.Transport)
	}
	return res, nil
}

func nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t
}

func pageSize(n int) int {
	switch {
	case n < 0:
		return 100
	case n > maxRows:
		return maxRows
	}
	return n
}

// countFacets counts the matching rows and the top values of each facet.
// The total and every facet on a plain column come from one scan (GROUP
// BY GROUPING SETS); a facet on a list column needs its own, to unnest.
func (s *DB) countFacets(ctx context.Context, table, where string, args []any, fs []query.Facet) (int64, map[string][]store.FacetValue, error) {
	var scalar, lists []query.Facet
	seen := map[string]bool{}
	for _, f := range fs {
		if seen[f.Column] {
			continue
		}
		seen[f.Column] = true
		if f.List {
			lists = append(lists, f)
		} else {
			scalar = append(scalar, f)
		}
	}
	var out map[string][]store.FacetValue
	if len(fs) > 0 {
		out = map[string][]store.FacetValue{}
	}
	total, err := s.groupingSets(ctx, table, where, args, scalar, out)
	if err != nil {
		return 0, nil, err
	}
	for _, f := range lists {
		rows, err := s.db.QueryContext(ctx, f.Query(query.DuckDB, table, where), append(slices.Clone(args), f.Limit)...)
		if err != nil {
			return 0, nil, fmt.Errorf("facet %s: %w", f.Field, err)
		}
		vals := []store.FacetValue{}
		for rows.Next() {
			var v any
			var n int64
			if err := rows.Scan(&v, &n); err != nil {
				rows.Close()
				return 0, nil, fmt.Errorf("facet %s: %w", f.Field, err)
			}
			vals = append(vals, store.FacetValue{Value: fmt.Sprint(v), Count: n})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, nil, fmt.Errorf("facet %s: %w", f.Field, err)
		}
		out[f.Field] = vals
	}
	return total, out, nil
}

// groupingSets counts the rows and the top values of plain-column facets
// in one query, filling out; it returns the total.
func (s *DB) groupingSets(ctx context.Context, table, where string, args []any, fs []query.Facet, out map[string][]store.FacetValue) (int64, error) {
	if len(fs) == 0 {
		var n int64
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+table+" WHERE "+where, args...).Scan(&n); err != nil {
			return 0, fmt.Errorf("count %s: %w", table, err)
		}
		return n, nil
	}
	var gs, cols, sets, galias, valias []string
	limit := 0
	for i, f := range fs {
		gs = append(gs, fmt.Sprintf("GROUPING(%s) AS g%d", f.Column, i))
		cols = append(cols, fmt.Sprintf("%s AS v%d", f.Column, i))
		sets = append(sets, "("+f.Column+")")
		galias = append(galias, fmt.Sprintf("g%d", i))
		valias = append(valias, fmt.Sprintf("v%d", i))
		limit = max(limit, f.Limit)
	}
	// one more than asked: a NULL or empty value may take a place
	q := fmt.Sprintf(`SELECT * FROM (SELECT %s, %s, count(*) AS n FROM %s WHERE %s GROUP BY GROUPING SETS (%s, ()))
		QUALIFY row_number() OVER (PARTITION BY %s ORDER BY n DESC, %s) <= %d`,
		strings.Join(gs, ", "), strings.Join(cols, ", "), table, where, strings.Join(sets, ", "),
		strings.Join(galias, ", "), strings.Join(valias, ", "), limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("count %s with facets: %w", table, err)
	}
	defer rows.Close()
	var total int64
	k := len(fs)
	for _, f := range fs {
		out[f.Field] = []store.FacetValue{}
	}
	for rows.Next() {
		vals := make([]any, 2*k+1)
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return 0, fmt.Errorf("count %s with facets: %w", table, err)
		}
		n, _ := vals[2*k].(int64)
		facet := -1
		for i := 0; i < k; i++ {
			if g, ok := vals[i].(int64); ok && g == 0 {
				facet = i
			} else if g, ok := vals[i].(int32); ok && g == 0 {
				facet = i
			}
		}
		if facet < 0 { // the grand total
			total = n
			continue
		}
		v := vals[k+facet]
		if v == nil || v == "" {
			continue
		}
		f := fs[facet]
		if len(out[f.Field]) < f.Limit {
			out[f.Field] = append(out[f.Field], store.FacetValue{Value: fmt.Sprint(v), Count: n})
		}
	}
	return total, rows.Err()
}

// eventSelect reads events in the column order scanEvent expects.
const eventSelect = `SELECT id, ts, sensor, src_hi, src_lo, src_port, dst_hi, dst_lo, dst_port, transport, icmp_type,
	icmp_code, ttl, ip_id, tcp_flags, tcp_window, tcp_seq, tcp_options, handshake, payload, http_method, http_path,
	user_agent, ja3, hassh, sni, username, password, tags, classification, actor, src_country, src_asn, src_org,
	dst_country FROM events`

func scanEvent(rows *sql.Rows) (record.Event, error) {
	var (
		e                                         record.Event
		id                                        duckdb.UUID
		t                                         time.Time
		sh, sl, dh, dl                            uint64
		sensor, transport, opts, method, path, ua sql.NullString
		ja3, hassh, sni, user, pass, class, actor sql.NullString
		sc, so, dc                                sql.NullString
		sp, dp, ipid, win                         sql.Null[uint16]
		it, ic, ttl, flags                        sql.Null[uint8]
		seq, asn                                  sql.Null[uint32]
		hs                                        sql.NullBool
		payload                                   []byte
		tags                                      any
	)
	err := rows.Scan(&id, &t, &sensor, &sh, &sl, &sp, &dh, &dl, &dp, &transport, &it, &ic, &ttl, &ipid, &flags, &win,
		&seq, &opts, &hs, &payload, &method, &path, &ua, &ja3, &hassh, &sni, &user, &pass, &tags, &class, &actor,
		&sc, &asn, &so, &dc)
	if err != nil {
		return e, err
	}
	e = record.Event{
		ID: record.ID(id), Time: t.UTC(), Sensor: sensor.String, Src: query.HiLoToAddr(sh, sl), SrcPort: sp.V,
		Dst: query.HiLoToAddr(dh, dl), DstPort: dp.V, Transport: transport.String, ICMPType: it.V, ICMPCode: ic.V,
		TTL: ttl.V, IPID: ipid.V, TCPFlags: flags.V, TCPWindow: win.V, TCPSeq: seq.V, TCPOptions: opts.String,
		Handshake: hs.Bool, Payload: payload, HTTPMethod: method.String, HTTPPath: path.String, UserAgent: ua.String,
		JA3: ja3.String, HASSH: hassh.String, SNI: sni.String, Username: user.String, Password: pass.String,
		Tags: strList(tags), Classification: class.String, Actor: actor.String,
		SrcGeo: record.Geo{Country: sc.String, ASN: asn.V, Org: so.String}, DstCountry: dc.String,
	}
	return e, nil
}

// SearchEvents finds events, newest first.
func (s *DB) SearchEvents(ctx context.Context, r store.Search) (*store.EventResult, error) {
	where, args, err := compile(r.Query, query.Events, nowOr(r.Now))
	if err != nil {
		return nil, err
	}
	total, facets, err := s.countFacets(ctx, "events", where, args, r.Facets)
	if err != nil {
		return nil, err
	}
	res, err := s.events(ctx, where, args, pageSize(r.Limit), r.Cursor)
	if err != nil {
		return nil, err
	}
	res.Total, res.Facets = total, facets
	return res, nil
}

func (s *DB) events(ctx context.Context, where string, args []any, limit int, cursor string) (*store.EventResult, error) {
	res := &store.EventResult{Events: []record.Event{}}
	if limit == 0 {
		return res, nil
	}
	args = slices.Clone(args)
	if cursor != "" {
		p, err := store.DecodeCursor(cursor, "e", 3)
		if err != nil {
			return nil, err
		}
		micros, err := strconv.ParseInt(p[0], 10, 64)
		var id record.ID
		// a forged time outside what DuckDB can hold is a bad cursor too
		if err != nil || id.UnmarshalText([]byte(p[1])) != nil || micros < 0 || micros > 1e17 {
			return nil, store.ErrBadCursor
		}
		where = "(" + where + ") AND (ts < ? OR (ts = ? AND id < ?))"
		t := time.UnixMicro(micros).UTC()
		args = append(args, t, t, uuidArg(id))
	}
	rows, err := s.db.QueryContext(ctx, eventSelect+" WHERE "+where+" ORDER BY ts DESC, id DESC LIMIT ?", append(args, limit+1)...)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		res.Events = append(res.Events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if len(res.Events) > limit {
		res.Events = res.Events[:limit]
		last := res.Events[limit-1]
		res.Next = store.EncodeCursor("e", strconv.FormatInt(last.Time.UnixMicro(), 10), last.ID.String())
	}
	return res, nil
}

// dimensions are what EventStats and Timeline can group by.
var dimensions = map[string]string{
	"src_country":    "src_country",
	"dst_country":    "dst_country",
	"tag":            "unnest(tags)",
	"dst_port":       "dst_port",
	"asn":            "src_asn",
	"org":            "src_org",
	"sensor":         "sensor",
	"classification": "classification",
	"actor":          "actor",
	"transport":      "transport",
	"src":            "src_lo::VARCHAR || ':' || src_hi::VARCHAR",
}

// Dimensions lists what event statistics can be grouped by.
func Dimensions() []string {
	out := make([]string, 0, len(dimensions))
	for k := range dimensions {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func dimension(by string) (string, error) {
	expr, ok := dimensions[by]
	if !ok {
		return "", fmt.Errorf("%w: cannot group by %q (want one of %s)", store.ErrBadRequest, by, strings.Join(Dimensions(), ", "))
	}
	return expr, nil
}

// EventStats counts events since a time, grouped by one dimension.
func (s *DB) EventStats(ctx context.Context, r store.Stats) ([]store.Bucket, error) {
	expr, err := dimension(r.By)
	if err != nil {
		return nil, err
	}
	where, args, err := compile(r.Query, query.Events, nowOr(r.Now))
	if err != nil {
		return nil, err
	}
	limit := r.Limit
	if limit <= 0 || limit > 1000 {
		limit = 50
	}
	q := fmt.Sprintf(`SELECT v, count(*) AS n FROM (SELECT %s AS v FROM events WHERE ts >= ? AND %s)
		WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT ?`, expr, where)
	rows, err := s.db.QueryContext(ctx, q, append(append([]any{r.Since.UTC()}, args...), limit)...)
	if err != nil {
		return nil, fmt.Errorf("event stats by %s: %w", r.By, err)
	}
	defer rows.Close()
	out := []store.Bucket{}
	for rows.Next() {
		var v any
		var n int64
		if err := rows.Scan(&v, &n); err != nil {
			return nil, fmt.Errorf("event stats: %w", err)
		}
		out = append(out, store.Bucket{Key: dimValue(r.By, v), Count: n})
	}
	return out, rows.Err()
}

// dimValue prints a grouped value; source addresses come back as lo:hi.
func dimValue(by string, v any) string {
	s := fmt.Sprint(v)
	if by == "src" {
		lo, hi, _ := strings.Cut(s, ":")
		l, _ := strconv.ParseUint(lo, 10, 64)
		h, _ := strconv.ParseUint(hi, 10, 64)
		return query.HiLoToAddr(h, l).String()
	}
	return s
}

// Matrix counts events since a time by source and target country.
func (s *DB) Matrix(ctx context.Context, since time.Time) ([]store.Cell, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT src_country, dst_country, count(*) AS n FROM events
		WHERE ts >= ? AND src_country IS NOT NULL AND dst_country IS NOT NULL
		GROUP BY ALL ORDER BY n DESC LIMIT 10000`, since.UTC())
	if err != nil {
		return nil, fmt.Errorf("country matrix: %w", err)
	}
	defer rows.Close()
	out := []store.Cell{}
	for rows.Next() {
		var c store.Cell
		if err := rows.Scan(&c.Src, &c.Dst, &c.Count); err != nil {
			return nil, fmt.Errorf("country matrix: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Timeline counts events per step for the top values of a dimension.
func (s *DB) Timeline(ctx context.Context, r store.Timeline) ([]store.Series, error) {
	expr, err := dimension(r.By)
	if err != nil {
		return nil, err
	}
	until := r.Until
	if until.IsZero() {
		until = time.Now().UTC()
	}
	if r.Step <= 0 || until.Sub(r.Since)/r.Step > 10000 {
		return nil, fmt.Errorf("%w: step %v gives too many points for the window", store.ErrBadRequest, r.Step)
	}
	top := r.Top
	if top <= 0 || top > 50 {
		top = 5
	}
	q := fmt.Sprintf(`WITH e AS (SELECT ts, %s AS v FROM events WHERE ts >= ? AND ts < ?),
		top AS (SELECT v FROM e WHERE v IS NOT NULL GROUP BY v ORDER BY count(*) DESC, v LIMIT ?)
		SELECT time_bucket(to_microseconds(?), ts, ?::TIMESTAMP) AS b, v, count(*) FROM e
		WHERE v IN (SELECT v FROM top) GROUP BY b, v ORDER BY v, b`, expr)
	rows, err := s.db.QueryContext(ctx, q, r.Since.UTC(), until.UTC(), top, r.Step.Microseconds(), r.Since.UTC())
	if err != nil {
		return nil, fmt.Errorf("timeline by %s: %w", r.By, err)
	}
	defer rows.Close()
	out := []store.Series{}
	for rows.Next() {
		var b time.Time
		var v any
		var n int64
		if err := rows.Scan(&b, &v, &n); err != nil {
			return nil, fmt.Errorf("timeline: %w", err)
		}
		key := dimValue(r.By, v)
		if len(out) == 0 || out[len(out)-1].Key != key {
			out = append(out, store.Series{Key: key})
		}
		last := &out[len(out)-1]
		last.Points = append(last.Points, store.Point{Time: b.UTC(), Count: n})
	}
	return out, rows.Err()
}

// Expire deletes what is older than the retention settings. Batch IDs are
// kept for at least 30 days, longer than the bus keeps a message, so a
// late redelivery is still recognised.
func (s *DB) Expire(ctx context.Context, now time.Time) (int64, error) {
	ret := s.opts.Retention
	var total int64
	del := func(q string, age time.Duration) error {
		if age <= 0 {
			return nil
		}
		s.wmu.Lock()
		defer s.wmu.Unlock()
		res, err := s.w.ExecContext(ctx, q, now.Add(-age).UTC())
		if err != nil {
			return fmt.Errorf("expire (%s): %w", firstLine(q), err)
		}
		n, _ := res.RowsAffected()
		total += n
		return nil
	}
	batches := max(30*24*time.Hour, ret.Events, ret.History)
	for _, d := range []struct {
		q   string
		age time.Duration
	}{
		{"DELETE FROM events WHERE ts < ?", ret.Events},
		{"DELETE FROM service_history WHERE ts < ?", ret.History},
		{"DELETE FROM services WHERE last_seen < ?", ret.Services},
		{"DELETE FROM profiles WHERE last_seen < ?", ret.Events},
		{"DELETE FROM batches WHERE stored < ?", batches},
	} {
		if err := del(d.q, d.age); err != nil {
			return total, err
		}
	}
	return total, nil
}

// Usage counts the rows of each table and the size of the database files.
func (s *DB) Usage(ctx context.Context) (store.Usage, error) {
	u := store.Usage{Tables: map[string]store.TableUsage{}}
	for _, t := range []string{"services", "service_history", "events", "profiles", "batches"} {
		var n int64
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			return u, fmt.Errorf("usage of %s: %w", t, err)
		}
		u.Tables[t] = store.TableUsage{Rows: n}
	}
	for _, f := range []string{s.path, s.path + ".wal"} {
		if st, err := os.Stat(f); err == nil {
			u.Bytes += st.Size()
		}
	}
	return u, nil
}

// Summaries answers for many addresses in one query. The addresses are
// parsed already, so they enter the SQL as integer literals.
func (s *DB) Summaries(ctx context.Context, ips []netip.Addr) ([]store.Summary, error) {
	if len(ips) == 0 {
		return []store.Summary{}, nil
	}
	var vals strings.Builder
	for i, ip := range ips {
		hi, lo := query.AddrToHiLo(ip.Unmap())
		if i > 0 {
			vals.WriteByte(',')
		}
		fmt.Fprintf(&vals, "(%d::UBIGINT, %d::UBIGINT, %d)", lo, hi, i)
	}
	q := `WITH q(lo, hi, i) AS (VALUES ` + vals.String() + `),
	svc AS (SELECT s.ip_lo, s.ip_hi, list(DISTINCT s.port ORDER BY s.port) AS ports,
			list_sort(list_distinct(flatten(list(s.cpe) FILTER (WHERE s.cpe IS NOT NULL)))) AS cpes,
			list_sort(list_distinct(flatten(list(s.tags) FILTER (WHERE s.tags IS NOT NULL)))) AS tags,
			list_sort(list_distinct(flatten(list(s.vulns) FILTER (WHERE s.vulns IS NOT NULL)))) AS vulns,
			max(s.last_seen) AS last_seen
		FROM services s JOIN q ON s.ip_lo = q.lo AND s.ip_hi = q.hi GROUP BY ALL)
	SELECT q.i, svc.ports, svc.cpes, svc.tags, svc.vulns, svc.last_seen,
		p.classification, p.actor, p.last_seen, p.tags, p.events, len(p.sensors), len(p.dsts)
	FROM q LEFT JOIN svc ON svc.ip_lo = q.lo AND svc.ip_hi = q.hi
	LEFT JOIN profiles p ON p.src_lo = q.lo AND p.src_hi = q.hi ORDER BY q.i`
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("summaries: %w", err)
	}
	defer rows.Close()
	out := make([]store.Summary, len(ips))
	for rows.Next() {
		var (
			i                        int
			ports, cpes, tags, vulns any
			ptags                    any
			svcSeen, profSeen        sql.NullTime
			class, actor             sql.NullString
			events, sensors, dsts    sql.NullInt64
		)
		if err := rows.Scan(&i, &ports, &cpes, &tags, &vulns, &svcSeen, &class, &actor, &profSeen, &ptags, &events, &sensors, &dsts); err != nil {
			return nil, fmt.Errorf("summaries: %w", err)
		}
		sm := store.Summary{IP: ips[i].Unmap(), Ports: u16List(ports), CPEs: nonNil(strList(cpes)),
			Tags: nonNil(strList(tags)), Vulns: nonNil(strList(vulns)), Noise: class.Valid,
			Classification: class.String, Actor: actor.String,
			Events: events.Int64, Sensors: sensors.Int64, Destinations: dsts.Int64}
		sm.Tags = append(sm.Tags, strList(ptags)...)
		for _, t := range []sql.NullTime{svcSeen, profSeen} {
			if t.Valid && t.Time.After(sm.LastSeen) {
				sm.LastSeen = t.Time.UTC()
			}
		}
		out[i] = sm
	}
	return out, rows.Err()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// CountEventIDs counts the stored events and their distinct IDs (equal
// unless something was stored twice): for crash tests and audits.
func (s *DB) CountEventIDs(ctx context.Context) (rows, distinct int64, err error) {
	err = s.db.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT id) FROM events").Scan(&rows, &distinct)
	return rows, distinct, err
}
