package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// maxRows caps any page, whatever the caller asks.
const maxRows = 10000

// Answers are the DuckDB store's, value for value (store/storetest holds
// both to that): the same orders, tie-breaks, caps and empty values.

// serviceSelect reads current services (see read.go of the DuckDB store).
const serviceSelect = `SELECT details, ts_us, scan_id, state, ttl, tcp_window, first_us, last_us,
	country, asn, org, label, ip_hi, ip_lo, port, transport FROM services FINAL`

type serviceScanner struct {
	details                        string
	t, first, last                 int64
	scanID, state                  string
	country, org, label, transport string
	hi, lo                         uint64
	port                           uint16
	ttl                            *uint8
	window                         *uint16
	asn                            *uint32
}

func (r *serviceScanner) targets() []any {
	return []any{&r.details, &r.t, &r.scanID, &r.state, &r.ttl, &r.window, &r.first, &r.last,
		&r.country, &r.asn, &r.org, &r.label, &r.hi, &r.lo, &r.port, &r.transport}
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

func usTime(us int64) time.Time { return time.UnixMicro(us).UTC() }

func (r *serviceScanner) service() (store.Service, error) {
	var s store.Service
	if len(r.details) > 0 {
		if err := json.Unmarshal([]byte(r.details), &s.Service); err != nil {
			return s, fmt.Errorf("service details: %w", err)
		}
	}
	s.Time, s.ScanID, s.IP, s.Port = usTime(r.t), r.scanID, query.HiLoToAddr(r.hi, r.lo), r.port
	s.Transport, s.State, s.TTL, s.Window = r.transport, r.state, deref(r.ttl), deref(r.window)
	s.Geo = record.Geo{Country: r.country, ASN: deref(r.asn), Org: r.org, Label: r.label}
	s.FirstSeen, s.LastSeen = usTime(r.first), usTime(r.last)
	return s, nil
}

// addrEq compares an address column pair with a parsed address (the
// integers come from netip, never from text).
func addrEq(col string, hi, lo uint64) string {
	return fmt.Sprintf("%[1]s_lo = %[2]d AND %[1]s_hi = %[3]d", col, lo, hi)
}

// profileSelect aggregates a source's events into its profile, as the
// DuckDB store's profile refresher folds them (lists capped alike).
const profileSelect = `SELECT src_lo, src_hi, min(ts_us), max(ts_us), count(),
	arraySlice(arraySort(groupUniqArray(dst_port)), 1, 1024),
	arraySlice(arraySort(arrayFilter(x -> x != '', groupUniqArrayArray(tags))), 1, 256),
	toInt64(least(uniqExactIf(sensor, sensor != ''), 256)),
	toInt64(least(uniqExact(dst_lo), 1024)),
	max(handshake),
	multiIf(countIf(classification = 'benign') > 0, 'benign', countIf(classification = 'malicious') > 0, 'malicious', 'unknown'),
	argMaxIf(actor, ts_us, actor != ''),
	argMaxIf(src_country, ts_us, src_country != ''),
	argMaxIf(assumeNotNull(src_asn), ts_us, isNotNull(src_asn)),
	argMaxIf(src_org, ts_us, src_org != '')
	FROM events`

type profileRow struct {
	lo, hi                     uint64
	first, last                int64
	events                     uint64
	ports                      []uint16
	tags                       []string
	sensors, dsts              int64
	handshake                  uint8
	class, actor, country, org string
	asn                        uint32
}

func (p *profileRow) targets() []any {
	return []any{&p.lo, &p.hi, &p.first, &p.last, &p.events, &p.ports, &p.tags, &p.sensors, &p.dsts,
		&p.handshake, &p.class, &p.actor, &p.country, &p.asn, &p.org}
}

func (p *profileRow) profile() *store.Profile {
	ports := slices.Clone(p.ports)
	if ports == nil {
		ports = []uint16{}
	}
	var tags []string
	if len(p.tags) > 0 {
		tags = p.tags
	}
	return &store.Profile{
		IP: query.HiLoToAddr(p.hi, p.lo), FirstSeen: usTime(p.first), LastSeen: usTime(p.last), Events: int64(p.events),
		Ports: ports, Tags: tags, Sensors: p.sensors, Destinations: p.dsts, Handshake: p.handshake != 0,
		Classification: p.class, Actor: p.actor, Geo: record.Geo{Country: p.country, ASN: p.asn, Org: p.org},
	}
}

// profiles aggregates the profiles of the sources matching where.
func (s *DB) profiles(ctx context.Context, where string) (map[[2]uint64]*store.Profile, error) {
	rows, err := s.q.Query(ctx, profileSelect+" WHERE "+where+" GROUP BY src_lo, src_hi")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[[2]uint64]*store.Profile{}
	for rows.Next() {
		var p profileRow
		if err := rows.Scan(p.targets()...); err != nil {
			return nil, err
		}
		out[[2]uint64{p.hi, p.lo}] = p.profile()
	}
	return out, rows.Err()
}

// Host returns the current services of an address and its sensor profile.
func (s *DB) Host(ctx context.Context, ip netip.Addr) (*store.Host, error) {
	ip = ip.Unmap()
	hi, lo := query.AddrToHiLo(ip)
	rows, err := s.q.Query(ctx, serviceSelect+" WHERE "+addrEq("ip", hi, lo))
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", ip, err)
	}
	defer rows.Close()
	h := &store.Host{IP: ip, Services: []store.Service{}}
	cpes, tags, vulns := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for rows.Next() {
		var sr serviceScanner
		if err := rows.Scan(sr.targets()...); err != nil {
			return nil, fmt.Errorf("host %s: %w", ip, err)
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
	ps, err := s.profiles(ctx, addrEq("src", hi, lo))
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", ip, err)
	}
	if p := ps[[2]uint64{hi, lo}]; p != nil {
		p.IP = ip
		h.Profile = p
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
// recent events and the evidence of its tags when recent > 0.
func (s *DB) Profile(ctx context.Context, ip netip.Addr, recent int) (*store.Profile, error) {
	ip = ip.Unmap()
	hi, lo := query.AddrToHiLo(ip)
	ps, err := s.profiles(ctx, addrEq("src", hi, lo))
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", ip, err)
	}
	p := ps[[2]uint64{hi, lo}]
	if p == nil {
		return nil, store.ErrNotFound
	}
	p.IP = ip
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

func (s *DB) tagEvidence(ctx context.Context, hi, lo uint64) ([]store.TagEvidence, error) {
	rows, err := s.q.Query(ctx, `SELECT tag, count(), min(ts_us) AS first, hex(argMin(id, ts_us))
		FROM events ARRAY JOIN tags AS tag WHERE `+addrEq("src", hi, lo)+` AND tag != ''
		GROUP BY tag ORDER BY first, tag LIMIT 200`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.TagEvidence
	for rows.Next() {
		var e store.TagEvidence
		var n uint64
		var first int64
		var id string
		if err := rows.Scan(&e.Tag, &n, &first, &id); err != nil {
			return nil, err
		}
		e.Events, e.FirstSeen, e.FirstEvent = int64(n), usTime(first), strings.ToLower(id)
		out = append(out, e)
	}
	return out, rows.Err()
}

// compile parses and compiles a query for a table in ClickHouse's dialect:
// every value of the query is a bound argument.
func compile(q string, t query.Target, now time.Time) (string, []any, error) {
	if strings.TrimSpace(q) == "" {
		return query.ClickHouse.True(), nil, nil
	}
	return query.CompileQuery(q, t, query.ClickHouse, now)
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

// SearchServices finds current services matching a query, in address
// order, with a cursor for the next page and facet counts.
func (s *DB) SearchServices(ctx context.Context, r store.Search) (*store.ServiceResult, error) {
	where, args, err := compile(r.Query, query.Services, nowOr(r.Now))
	if err != nil {
		return nil, err
	}
	res := &store.ServiceResult{Services: []store.Service{}}
	if res.Total, res.Facets, err = s.countFacets(ctx, "services FINAL", where, args, r.Facets); err != nil {
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
		page = "(" + page + ") AND (ip_lo, ip_hi, port, transport) > (?, ?, ?, ?)"
		pargs = append(pargs, k.Lo, k.Hi, k.Port, k.Transport)
	}
	rows, err := s.q.Query(ctx, serviceSelect+" WHERE "+page+
		" ORDER BY ip_lo, ip_hi, port, transport LIMIT ?", append(pargs, limit+1)...)
	if err != nil {
		return nil, fmt.Errorf("search services: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sr serviceScanner
		if err := rows.Scan(sr.targets()...); err != nil {
			return nil, fmt.Errorf("search services: %w", err)
		}
		sv, err := sr.service()
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

// countFacets counts the matching rows and the top values of each facet:
// by count, then by value in the column's own order (as DuckDB's), NULL
// and ” not counted. Values are printed as the DuckDB store prints them
// (booleans as true and false).
func (s *DB) countFacets(ctx context.Context, table, where string, args []any, fs []query.Facet) (int64, map[string][]store.FacetValue, error) {
	var total uint64
	if err := s.q.QueryRow(ctx, "SELECT count() FROM "+table+" WHERE "+where, args...).Scan(&total); err != nil {
		return 0, nil, fmt.Errorf("count %s: %w", table, err)
	}
	if len(fs) == 0 {
		return int64(total), nil, nil
	}
	out := map[string][]store.FacetValue{}
	for _, f := range fs {
		if _, done := out[f.Field]; done {
			continue
		}
		var q string
		if f.List {
			q = "SELECT v, count() AS n FROM (SELECT arrayJoin(" + f.Column + ") AS v FROM " + table + " WHERE " + where +
				") WHERE v != '' GROUP BY v ORDER BY n DESC, v LIMIT ?"
		} else {
			known := f.Column + " IS NOT NULL"
			switch f.Kind {
			case query.KindString, query.KindText, query.KindVersion:
				known += " AND " + f.Column + " != ''"
			}
			q = "SELECT toString(assumeNotNull(" + f.Column + ")) AS fv, count() AS n FROM " + table + " WHERE (" + where + ") AND " + known +
				" GROUP BY " + f.Column + " ORDER BY n DESC, " + f.Column + " LIMIT ?"
		}
		rows, err := s.q.Query(ctx, q, append(slices.Clone(args), uint64(f.Limit))...)
		if err != nil {
			return 0, nil, fmt.Errorf("facet %s: %w", f.Field, err)
		}
		vals := []store.FacetValue{}
		for rows.Next() {
			var v string
			var n uint64
			if err := rows.Scan(&v, &n); err != nil {
				rows.Close()
				return 0, nil, fmt.Errorf("facet %s: %w", f.Field, err)
			}
			if f.Kind == query.KindBool {
				v = strconv.FormatBool(v == "1")
			}
			vals = append(vals, store.FacetValue{Value: v, Count: int64(n)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, nil, fmt.Errorf("facet %s: %w", f.Field, err)
		}
		out[f.Field] = vals
	}
	return int64(total), out, nil
}

const eventSelect = `SELECT id, ts_us, sensor, src_hi, src_lo, src_port, dst_hi, dst_lo, dst_port, transport, icmp_type,
	icmp_code, ttl, ip_id, tcp_flags, tcp_window, tcp_seq, tcp_options, handshake, payload, http_method, http_path,
	user_agent, ja3, hassh, sni, username, password, tags, classification, actor, src_country, src_asn, src_org,
	dst_country FROM events`

func scanEvent(rows driver.Rows) (record.Event, error) {
	var (
		e                                         record.Event
		id                                        string
		us                                        int64
		sh, sl, dh, dl                            uint64
		sensor, transport, opts, method, path, ua string
		ja3, hassh, sni, user, pass, class, actor string
		sc, so, dc                                string
		sp, dp, ipid, win                         *uint16
		it, ic, ttl, flags                        *uint8
		seq, asn                                  *uint32
		hs                                        uint8
		payload                                   []byte
		tags                                      []string
	)
	err := rows.Scan(&id, &us, &sensor, &sh, &sl, &sp, &dh, &dl, &dp, &transport, &it, &ic, &ttl, &ipid, &flags, &win,
		&seq, &opts, &hs, &payload, &method, &path, &ua, &ja3, &hassh, &sni, &user, &pass, &tags, &class, &actor,
		&sc, &asn, &so, &dc)
	if err != nil {
		return e, err
	}
	if len(payload) == 0 {
		payload = nil
	}
	if len(tags) == 0 {
		tags = nil
	}
	var rid record.ID
	copy(rid[:], id)
	e = record.Event{
		ID: rid, Time: usTime(us), Sensor: sensor, Src: query.HiLoToAddr(sh, sl), SrcPort: deref(sp),
		Dst: query.HiLoToAddr(dh, dl), DstPort: deref(dp), Transport: transport, ICMPType: deref(it), ICMPCode: deref(ic),
		TTL: deref(ttl), IPID: deref(ipid), TCPFlags: deref(flags), TCPWindow: deref(win), TCPSeq: deref(seq), TCPOptions: opts,
		Handshake: hs != 0, Payload: payload, HTTPMethod: method, HTTPPath: path, UserAgent: ua,
		JA3: ja3, HASSH: hassh, SNI: sni, Username: user, Password: pass,
		Tags: tags, Classification: class, Actor: actor,
		SrcGeo: record.Geo{Country: sc, ASN: deref(asn), Org: so}, DstCountry: dc,
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
		us, err := strconv.ParseInt(p[0], 10, 64)
		var id record.ID
		if err != nil || id.UnmarshalText([]byte(p[1])) != nil || us < 0 || us > 1e17 {
			return nil, store.ErrBadCursor
		}
		where = "(" + where + ") AND (ts_us < ? OR (ts_us = ? AND id < unhex(?)))"
		args = append(args, us, us, id.String())
	}
	rows, err := s.q.Query(ctx, eventSelect+" WHERE "+where+" ORDER BY ts_us DESC, id DESC LIMIT ?", append(args, uint64(limit+1))...)
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

// dimension is what EventStats and Timeline group by: an expression and
// the condition for a known value (DuckDB's NOT NULL).
type dimension struct{ expr, known string }

var dimensions = map[string]dimension{
	"src_country":    {"src_country", "v != ''"},
	"dst_country":    {"dst_country", "v != ''"},
	"tag":            {"arrayJoin(tags)", "v != ''"},
	"dst_port":       {"dst_port", "v IS NOT NULL"},
	"asn":            {"src_asn", "v IS NOT NULL"},
	"org":            {"src_org", "v != ''"},
	"sensor":         {"sensor", "v != ''"},
	"classification": {"classification", "v != ''"},
	"actor":          {"actor", "v != ''"},
	"transport":      {"transport", "v != ''"},
	"src":            {"concat(toString(src_lo), ':', toString(src_hi))", "1"},
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

func dimensionOf(by string) (dimension, error) {
	d, ok := dimensions[by]
	if !ok {
		return d, fmt.Errorf("%w: cannot group by %q (want one of %s)", store.ErrBadRequest, by, strings.Join(Dimensions(), ", "))
	}
	return d, nil
}

// dimValue prints a grouped value; source addresses come back as lo:hi.
func dimValue(by, s string) string {
	if by == "src" {
		lo, hi, _ := strings.Cut(s, ":")
		l, _ := strconv.ParseUint(lo, 10, 64)
		h, _ := strconv.ParseUint(hi, 10, 64)
		return query.HiLoToAddr(h, l).String()
	}
	return s
}

// EventStats counts events since a time, grouped by one dimension.
func (s *DB) EventStats(ctx context.Context, r store.Stats) ([]store.Bucket, error) {
	d, err := dimensionOf(r.By)
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
	q := fmt.Sprintf(`SELECT toString(assumeNotNull(v)), count() AS n FROM (SELECT %s AS v FROM events WHERE ts_us >= ? AND %s)
		WHERE %s GROUP BY v ORDER BY n DESC, v LIMIT ?`, d.expr, where, d.known)
	rows, err := s.q.Query(ctx, q, append(append([]any{micros(r.Since)}, args...), uint64(limit))...)
	if err != nil {
		return nil, fmt.Errorf("event stats by %s: %w", r.By, err)
	}
	defer rows.Close()
	out := []store.Bucket{}
	for rows.Next() {
		var v string
		var n uint64
		if err := rows.Scan(&v, &n); err != nil {
			return nil, fmt.Errorf("event stats: %w", err)
		}
		out = append(out, store.Bucket{Key: dimValue(r.By, v), Count: int64(n)})
	}
	return out, rows.Err()
}

// Matrix counts events since a time by source and target country.
func (s *DB) Matrix(ctx context.Context, since time.Time) ([]store.Cell, error) {
	rows, err := s.q.Query(ctx, `SELECT src_country, dst_country, count() AS n FROM events
		WHERE ts_us >= ? AND src_country != '' AND dst_country != ''
		GROUP BY src_country, dst_country ORDER BY n DESC LIMIT 10000`, micros(since))
	if err != nil {
		return nil, fmt.Errorf("country matrix: %w", err)
	}
	defer rows.Close()
	out := []store.Cell{}
	for rows.Next() {
		var c store.Cell
		var n uint64
		if err := rows.Scan(&c.Src, &c.Dst, &n); err != nil {
			return nil, fmt.Errorf("country matrix: %w", err)
		}
		c.Count = int64(n)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Timeline counts events per step for the top values of a dimension. The
// buckets start at Since, as DuckDB's time_bucket with that origin, in
// microseconds.
func (s *DB) Timeline(ctx context.Context, r store.Timeline) ([]store.Series, error) {
	d, err := dimensionOf(r.By)
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
	since, end, step := micros(r.Since), micros(until), r.Step.Microseconds()
	if step <= 0 {
		return nil, fmt.Errorf("%w: step %v is below a microsecond", store.ErrBadRequest, r.Step)
	}
	rows, err := s.q.Query(ctx, fmt.Sprintf(`SELECT toString(assumeNotNull(v)) FROM (SELECT %s AS v FROM events WHERE ts_us >= ? AND ts_us < ?)
		WHERE %s GROUP BY v ORDER BY count() DESC, v LIMIT ?`, d.expr, d.known), since, end, uint64(top))
	if err != nil {
		return nil, fmt.Errorf("timeline by %s: %w", r.By, err)
	}
	var tops []any
	var marks []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("timeline: %w", err)
		}
		tops, marks = append(tops, v), append(marks, "?")
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("timeline: %w", err)
	}
	out := []store.Series{}
	if len(tops) == 0 {
		return out, nil
	}
	q := fmt.Sprintf(`SELECT toString(assumeNotNull(v)) AS k, b, count() FROM (
			SELECT %s AS v, intDiv(ts_us - ?, ?) * ? + ? AS b FROM events WHERE ts_us >= ? AND ts_us < ?)
		WHERE %s AND toString(assumeNotNull(v)) IN (%s) GROUP BY v, b ORDER BY v, b`, d.expr, d.known, strings.Join(marks, ", "))
	args := append([]any{since, step, step, since, since, end}, tops...)
	rows, err = s.q.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("timeline by %s: %w", r.By, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		var b int64
		var n uint64
		if err := rows.Scan(&v, &b, &n); err != nil {
			return nil, fmt.Errorf("timeline: %w", err)
		}
		key := dimValue(r.By, v)
		if len(out) == 0 || out[len(out)-1].Key != key {
			out = append(out, store.Series{Key: key})
		}
		last := &out[len(out)-1]
		last.Points = append(last.Points, store.Point{Time: usTime(b), Count: int64(n)})
	}
	return out, rows.Err()
}

// Summaries answers for many addresses: their services in one query and
// their profiles in another.
func (s *DB) Summaries(ctx context.Context, ips []netip.Addr) ([]store.Summary, error) {
	out := make([]store.Summary, len(ips))
	if len(ips) == 0 {
		return out, nil
	}
	los := make([]string, len(ips))
	pairs := make([]string, len(ips))
	for i, ip := range ips {
		hi, lo := query.AddrToHiLo(ip.Unmap())
		los[i] = strconv.FormatUint(lo, 10)
		pairs[i] = fmt.Sprintf("(%d, %d)", lo, hi)
	}
	if len(pairs) == 1 { // (a, b) IN ((x, y)) would read as a set of two numbers
		pairs = append(pairs, pairs[0])
	}
	in := func(col string) string {
		return fmt.Sprintf("%[1]s_lo IN (%[2]s) AND (%[1]s_lo, %[1]s_hi) IN (%[3]s)", col, strings.Join(los, ","), strings.Join(pairs, ","))
	}
	type svcAgg struct {
		ports             []uint16
		cpes, tags, vulns []string
		last              int64
	}
	svcs := map[[2]uint64]*svcAgg{}
	rows, err := s.q.Query(ctx, `SELECT ip_hi, ip_lo, arraySort(groupUniqArray(port)), arraySort(groupUniqArrayArray(cpe)),
		arraySort(groupUniqArrayArray(tags)), arraySort(groupUniqArrayArray(vulns)), max(last_us)
		FROM services FINAL WHERE `+in("ip")+` GROUP BY ip_hi, ip_lo`)
	if err != nil {
		return nil, fmt.Errorf("summaries: %w", err)
	}
	for rows.Next() {
		var hi, lo uint64
		a := &svcAgg{}
		if err := rows.Scan(&hi, &lo, &a.ports, &a.cpes, &a.tags, &a.vulns, &a.last); err != nil {
			rows.Close()
			return nil, fmt.Errorf("summaries: %w", err)
		}
		svcs[[2]uint64{hi, lo}] = a
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("summaries: %w", err)
	}
	profs, err := s.profiles(ctx, in("src"))
	if err != nil {
		return nil, fmt.Errorf("summaries: %w", err)
	}
	for i, ip := range ips {
		ip = ip.Unmap()
		hi, lo := query.AddrToHiLo(ip)
		sm := store.Summary{IP: ip, Ports: []uint16{}, CPEs: []string{}, Tags: []string{}, Vulns: []string{}}
		if a := svcs[[2]uint64{hi, lo}]; a != nil {
			sm.Ports = append(sm.Ports, a.ports...)
			sm.CPEs, sm.Tags, sm.Vulns = append(sm.CPEs, a.cpes...), append(sm.Tags, a.tags...), append(sm.Vulns, a.vulns...)
			sm.LastSeen = usTime(a.last)
		}
		if p := profs[[2]uint64{hi, lo}]; p != nil {
			sm.Noise, sm.Classification, sm.Actor = true, p.Classification, p.Actor
			sm.Events, sm.Sensors, sm.Destinations = p.Events, p.Sensors, p.Destinations
			sm.Tags = append(sm.Tags, p.Tags...)
			if p.LastSeen.After(sm.LastSeen) {
				sm.LastSeen = p.LastSeen
			}
		}
		out[i] = sm
	}
	return out, nil
}

// CountEventIDs counts the stored events and their distinct IDs (equal
// unless something was stored twice): for crash tests and audits.
func (s *DB) CountEventIDs(ctx context.Context) (rows, distinct int64, err error) {
	var r, d uint64
	err = s.q.QueryRow(ctx, "SELECT count(), uniqExact(id) FROM events").Scan(&r, &d)
	return int64(r), int64(d), err
}
