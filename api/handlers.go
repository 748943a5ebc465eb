package api

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vantagehq/vantage/config"
	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/tag"
)

// parseAddr reads one IP address parameter.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, badRequest("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}

// intParam reads an integer parameter within bounds.
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s=%q: want a number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

// durationParam reads a window like 15m, 1h or 7d.
func durationParam(r *http.Request, name string, def time.Duration, maxd time.Duration) (time.Duration, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	var d config.Duration
	if err := d.UnmarshalText([]byte(v)); err != nil || d <= 0 || time.Duration(d) > maxd {
		return 0, badRequest("%s=%q: want a duration like 15m, 1h or 7d, at most %v", name, v, maxd)
	}
	return time.Duration(d), nil
}

func (s *Server) facets(r *http.Request, t query.Target) ([]query.Facet, error) {
	f := r.URL.Query().Get("facets")
	fs, err := query.ParseFacets(f, t)
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			qe.Msg = "facets: " + qe.Msg // the response shows qe, not msg: say which parameter
			qe.Locate(f)
			return nil, &apiError{status: http.StatusBadRequest, msg: "facets: " + qe.Error(), qerr: qe, query: f}
		}
		return nil, badRequest("facets: %v", err)
	}
	if len(fs) > 10 {
		return nil, badRequest("facets: at most 10 at a time")
	}
	return fs, nil
}

// checkQuery parses q early, so a bad query is a 400 pointing at its column.
func checkQuery(q string) error {
	if len(q) > query.MaxQueryLen {
		return badRequest("query longer than %d bytes", query.MaxQueryLen)
	}
	if _, err := query.Parse(q); err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return &apiError{status: http.StatusBadRequest, qerr: qe, query: q}
		}
		return badRequest("%v", err)
	}
	return nil
}

func (s *Server) searchRequest(r *http.Request, t query.Target) (store.Search, error) {
	q := r.URL.Query().Get("q")
	if err := checkQuery(q); err != nil {
		return store.Search{}, err
	}
	fs, err := s.facets(r, t)
	if err != nil {
		return store.Search{}, err
	}
	limit, err := intParam(r, "limit", 100, 0, s.cfg.MaxRows)
	if err != nil {
		return store.Search{}, err
	}
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > 512 {
		return store.Search{}, badRequest("bad cursor")
	}
	return store.Search{Query: q, Now: time.Now().UTC(), Limit: limit, Cursor: cursor, Facets: fs}, nil
}

// queryErr attaches the query text to a store's query error.
func queryErr(err error, q string) error {
	var qe *query.Error
	if errors.As(err, &qe) {
		return &apiError{status: http.StatusBadRequest, qerr: qe, query: q}
	}
	return err
}

func (s *Server) search(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	req, err := s.searchRequest(r, query.Services)
	if err != nil {
		return nil, err
	}
	switch format := r.URL.Query().Get("format"); format {
	case "", "json":
		res, err := s.cfg.Store.SearchServices(r.Context(), req)
		if res != nil {
			res.Services = slices.DeleteFunc(res.Services, func(sv store.Service) bool { return s.hidden(sv.IP, p) })
		}
		return res, queryErr(err, req.Query)
	case "jsonl", "csv":
		return nil, s.export(w, r, req, format, p)
	default:
		return nil, badRequest("format=%q: want json, jsonl or csv", format)
	}
}

// exportMax bounds one export.
const exportMax = 100000

// export streams every matching service (up to exportMax) as JSON lines or
// CSV, page by page.
func (s *Server) export(w http.ResponseWriter, r *http.Request, req store.Search, format string, p *principal) error {
	req.Facets = nil
	req.Limit = min(max(s.cfg.MaxRows, 100), 1000)
	first, err := s.cfg.Store.SearchServices(r.Context(), req)
	if err != nil {
		return queryErr(err, req.Query)
	}
	var cw *csv.Writer
	enc := json.NewEncoder(w)
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Disposition", `attachment; filename="vantage-services.csv"`)
		cw = csv.NewWriter(w)
		cw.Write([]string{"ip", "port", "transport", "state", "protocol", "product", "version", "country", "asn", "org", "tags", "first_seen", "last_seen"})
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	n := 0
	res := first
	for {
		for _, sv := range res.Services {
			if s.hidden(sv.IP, p) {
				continue
			}
			if cw != nil {
				cw.Write([]string{sv.IP.String(), strconv.Itoa(int(sv.Port)), sv.Transport, sv.State, sv.Protocol,
					sv.Product, sv.Version, sv.Geo.Country, strconv.FormatUint(uint64(sv.Geo.ASN), 10), sv.Geo.Org,
					strings.Join(sv.Tags, " "), sv.FirstSeen.Format(time.RFC3339), sv.LastSeen.Format(time.RFC3339)})
			} else {
				enc.Encode(sv)
			}
			n++
		}
		if cw != nil {
			cw.Flush()
		}
		if res.Next == "" || n >= exportMax || r.Context().Err() != nil {
			return nil
		}
		req.Cursor = res.Next
		if res, err = s.cfg.Store.SearchServices(r.Context(), req); err != nil {
			s.log.Warn("export stopped", "after", n, "err", err)
			return nil // the header is sent: the stream just ends
		}
	}
}

func (s *Server) count(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	req, err := s.searchRequest(r, query.Services)
	if err != nil {
		return nil, err
	}
	req.Limit = 0
	res, err := s.cfg.Store.SearchServices(r.Context(), req)
	if err != nil {
		return nil, queryErr(err, req.Query)
	}
	return map[string]any{"total": res.Total, "facets": res.Facets}, nil
}

func (s *Server) fields(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	t, err := query.ParseTarget(r.URL.Query().Get("target"))
	if err != nil {
		return nil, badRequest("target: want services or events")
	}
	type field struct {
		Name    string   `json:"name"`
		Aliases []string `json:"aliases,omitempty"`
		Kind    string   `json:"kind"`
		Desc    string   `json:"description"`
		Example string   `json:"example"`
		Facet   bool     `json:"facet"`
	}
	var out []field
	for _, f := range query.Fields(t) {
		out = append(out, field{f.Name, f.Aliases, f.Kind.String(), f.Desc, f.Example, f.Facet})
	}
	return map[string]any{"target": t.String(), "fields": out, "syntax": query.Syntax}, nil
}

// maxHostRange bounds a CIDR host lookup.
const maxHostRange = 256

func (s *Server) host(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	arg := r.PathValue("addr")
	if strings.Contains(arg, "/") {
		pfx, err := netip.ParsePrefix(arg)
		if err != nil {
			return nil, badRequest("%q is not an address or a CIDR block", arg)
		}
		pfx = pfx.Masked()
		bits := pfx.Addr().BitLen() - pfx.Bits()
		if bits > 8 {
			return nil, badRequest("%s holds more than %d addresses: look up at most a /24 (IPv4) or /120 (IPv6)", pfx, maxHostRange)
		}
		hosts := []*store.Host{}
		for a := pfx.Addr(); pfx.Contains(a); a = a.Next() {
			if s.hidden(a, p) {
				continue
			}
			h, err := s.cfg.Store.Host(r.Context(), a)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			hosts = append(hosts, h)
		}
		return map[string]any{"network": pfx.String(), "hosts": hosts}, nil
	}
	ip, err := parseAddr(arg)
	if err != nil {
		return nil, err
	}
	if s.hidden(ip, p) {
		return nil, fmt.Errorf("%w: %v", errNotFound, errOptedOut)
	}
	h, err := s.cfg.Store.Host(r.Context(), ip)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("nothing is known about %s: %w", ip, errNotFound)
	}
	return h, err
}

// SensorView is the sensors' view of one address, with a plain-words answer.
type SensorView struct {
	*store.Profile
	Verdict string `json:"verdict"` // the same as classification, named for people
	Summary string `json:"summary"` // is it scanning everyone or only you?
	// Evidence names what the verdict rests on: the actor, or the
	// malicious tags and the first event of each
	Evidence []string `json:"evidence,omitempty"`
}

func (s *Server) sensorIP(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	ip, err := parseAddr(r.PathValue("ip"))
	if err != nil {
		return nil, err
	}
	events, err := intParam(r, "events", 50, 0, 1000)
	if err != nil {
		return nil, err
	}
	if s.hidden(ip, p) {
		return nil, fmt.Errorf("%w: %v", errNotFound, errOptedOut)
	}
	prof, err := s.cfg.Store.Profile(r.Context(), ip, events)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s has not been seen by the sensors: %w", ip, errNotFound)
	}
	if err != nil {
		return nil, err
	}
	v := SensorView{Profile: prof, Verdict: prof.Classification, Summary: summarize(prof)}
	v.Evidence = evidence(prof)
	return v, nil
}

// evidence says why the verdict is what it is: the actor, or the tags of
// the verdict's intention with the first event that carried each.
func evidence(p *store.Profile) []string {
	e := tag.Default() // the tag rules' metadata: what each tag means and intends
	var out []string
	if p.Actor != "" {
		why := "a known scanner"
		if a, ok := e.Actors().Actor(p.Actor); ok && a.Description != "" {
			why = a.Description
		}
		out = append(out, fmt.Sprintf("actor %s: %s", p.Actor, why))
	}
	for i := range p.TagEvidence {
		te := &p.TagEvidence[i]
		if m, ok := e.Meta(te.Tag); ok {
			te.Intention = m.Intention
			if m.Intention == p.Classification && p.Classification == "malicious" {
				cves := ""
				if len(m.CVEs) > 0 {
					cves = " (" + strings.Join(m.CVEs, ", ") + ")"
				}
				out = append(out, fmt.Sprintf("tag %s%s: %d events, first %s at %s", te.Tag, cves, te.Events, te.FirstEvent, te.FirstSeen.Format(time.RFC3339)))
			}
		}
	}
	return out
}

// summarize answers "is this address scanning everyone or only you?".
func summarize(p *store.Profile) string {
	var b strings.Builder
	switch {
	case p.Destinations >= 16 || p.Sensors >= 2:
		fmt.Fprintf(&b, "Internet-wide noise: %s reached %d sensor addresses on %d sensors", p.IP, p.Destinations, p.Sensors)
	default:
		fmt.Fprintf(&b, "%s reached only %d sensor address(es): it may be targeting specific hosts rather than scanning everyone", p.IP, p.Destinations)
	}
	fmt.Fprintf(&b, " (%d events from %s to %s).", p.Events, p.FirstSeen.Format(time.DateOnly), p.LastSeen.Format(time.DateOnly))
	switch p.Classification {
	case "benign":
		fmt.Fprintf(&b, " Classified benign")
		if p.Actor != "" {
			fmt.Fprintf(&b, ": %s, a known scanner", p.Actor)
		}
		b.WriteString(".")
	case "malicious":
		fmt.Fprintf(&b, " Classified malicious (tags: %s).", strings.Join(p.Tags, ", "))
	}
	if !p.Handshake {
		b.WriteString(" It never completed a TCP handshake, so its source address may be spoofed.")
	}
	return b.String()
}

func (s *Server) sensorSearch(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	req, err := s.searchRequest(r, query.Events)
	if err != nil {
		return nil, err
	}
	res, err := s.cfg.Store.SearchEvents(r.Context(), req)
	if res != nil {
		res.Events = slices.DeleteFunc(res.Events, func(e record.Event) bool { return s.hidden(e.Src, p) })
	}
	return res, queryErr(err, req.Query)
}

func (s *Server) sensorStats(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	window, err := durationParam(r, "window", 15*time.Minute, 366*24*time.Hour)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit", 50, 1, 1000)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query().Get("q")
	if err := checkQuery(q); err != nil {
		return nil, err
	}
	by := r.URL.Query().Get("by")
	if by == "" {
		by = "src_country"
	}
	now := time.Now().UTC()
	buckets, err := s.cfg.Store.EventStats(r.Context(), store.Stats{Since: now.Add(-window), By: by, Limit: limit, Query: q, Now: now})
	if err != nil {
		return nil, queryErr(err, q)
	}
	return map[string]any{"window": window.String(), "by": by, "buckets": buckets}, nil
}

func (s *Server) matrix(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	window, err := durationParam(r, "window", time.Hour, 366*24*time.Hour)
	if err != nil {
		return nil, err
	}
	cells, err := s.cfg.Store.Matrix(r.Context(), time.Now().UTC().Add(-window))
	if err != nil {
		return nil, err
	}
	return map[string]any{"window": window.String(), "cells": cells}, nil
}

func (s *Server) timeline(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	window, err := durationParam(r, "window", time.Hour, 366*24*time.Hour)
	if err != nil {
		return nil, err
	}
	step, err := durationParam(r, "step", max(window/60, time.Second), window)
	if err != nil {
		return nil, err
	}
	top, err := intParam(r, "top", 5, 1, 50)
	if err != nil {
		return nil, err
	}
	by := r.URL.Query().Get("by")
	if by == "" {
		by = "tag"
	}
	now := time.Now().UTC()
	series, err := s.cfg.Store.Timeline(r.Context(), store.Timeline{Since: now.Add(-window), Until: now, Step: step, By: by, Top: top})
	if err != nil {
		return nil, err
	}
	return map[string]any{"window": window.String(), "step": step.String(), "by": by, "series": series}, nil
}

// maxBulk is the most addresses one bulk request may name.
const maxBulk = 10000

func (s *Server) bulk(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	var body struct {
		IPs []string `json:"ips"`
	}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, badRequest("body: want {\"ips\": [\"203.0.113.7\", ...]}: %v", err)
	}
	if len(body.IPs) == 0 || len(body.IPs) > maxBulk {
		return nil, badRequest("ips: give 1 to %d addresses (got %d)", maxBulk, len(body.IPs))
	}
	ips := make([]netip.Addr, len(body.IPs))
	for i, s := range body.IPs {
		a, err := parseAddr(s)
		if err != nil {
			return nil, badRequest("ips[%d]: %q is not an IP address", i, s)
		}
		ips[i] = a
	}
	sums, err := s.cfg.Store.Summaries(r.Context(), ips)
	if err != nil {
		return nil, err
	}
	for i := range sums { // an opted-out address is answered as unknown
		if s.hidden(sums[i].IP, p) {
			sums[i] = store.Summary{IP: sums[i].IP, Ports: []uint16{}, CPEs: []string{}, Tags: []string{}, Vulns: []string{}}
		}
	}
	return map[string]any{"results": sums}, nil
}

// maxProducer bounds a batch's producer name, which becomes a token of
// the bus subject the batch is published on.
const maxProducer = 256

func (s *Server) ingest(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	if s.cfg.Publish == nil {
		return nil, &apiError{status: http.StatusNotImplemented, msg: "this server does not take records over HTTP"}
	}
	stream := r.PathValue("stream")
	if stream != "results" && stream != "events" {
		return nil, badRequest("stream %q: want results or events", stream)
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	b, err := record.UnmarshalBatch(data)
	if err != nil {
		return nil, badRequest("body is not a record batch: %v", err)
	}
	if b.Len() == 0 {
		return nil, badRequest("the batch holds no records")
	}
	if stream == "results" && len(b.Events) > 0 || stream == "events" && len(b.Services) > 0 {
		return nil, badRequest("a batch on %s must hold only %s", stream, map[string]string{"results": "services", "events": "events"}[stream])
	}
	if len(b.Producer) > maxProducer {
		// the producer names the bus subject: a subject past NATS's
		// control line limit (4 KiB) makes the server drop the connection
		return nil, badRequest("producer: at most %d bytes (got %d)", maxProducer, len(b.Producer))
	}
	if b.Producer == "" {
		b.Producer = p.name()
	}
	if err := s.cfg.Publish(r.Context(), stream, b); err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			// MaxBody may allow more than one bus message holds
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, msg: "batch larger than the bus takes in one message: send smaller batches"}
		}
		return nil, fmt.Errorf("publish: %w", err)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": b.ID, "records": b.Len()})
	return nil, nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	keys, err := s.cfg.Keys.List(r.Context())
	if err != nil {
		return nil, err
	}
	return map[string]any{"keys": keys}, nil
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	var body struct {
		Name      string   `json:"name"`
		Scopes    []string `json:"scopes"`
		RateLimit float64  `json:"rate_limit"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		return nil, badRequest("body: want {\"name\": ..., \"scopes\": [\"read\"]}: %v", err)
	}
	if body.Name == "" || len(body.Name) > 100 || body.RateLimit < 0 {
		return nil, badRequest("name: 1 to 100 characters; rate_limit: not negative")
	}
	secret, key, err := s.cfg.Keys.Create(r.Context(), body.Name, body.Scopes, body.RateLimit)
	if err != nil {
		if strings.Contains(err.Error(), "scope") {
			return nil, badRequest("%v", err)
		}
		return nil, err
	}
	key.Hash = ""
	return map[string]any{"secret": secret, "key": key}, nil
}

func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	if err := s.cfg.Keys.Delete(r.Context(), r.PathValue("id")); err != nil {
		return nil, err
	}
	return map[string]any{"deleted": r.PathValue("id")}, nil
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	return s.cfg.Store.Usage(r.Context())
}
