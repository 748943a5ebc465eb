package triage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/tag"
)

// The verdicts, in the order they need attention (Row.Attention).
const (
	NotSeen   = "not seen"  // no sensor saw it: it may be aimed at you
	Malicious = "malicious" // seen attacking the sensors
	Rare      = "rare"      // seen by the sensors, but too narrowly to call it Internet-wide
	Noise     = "noise"     // seen scanning widely, intent unknown
	Benign    = "benign"    // a known, benign scanner
)

var attention = map[string]int{NotSeen: 0, Malicious: 1, Rare: 2, Noise: 3, Benign: 4}

// MinNoise is how many distinct sensors, or distinct sensor addresses, a
// source of unknown intent must have reached to count as Internet-wide
// noise; below it, it is rare (and worth a closer look).
const MinNoise = 2

// ChunkSize is how many addresses Triage asks about at once (the API's
// bulk limit).
const ChunkSize = 10000

// Row is one source of the logs with the sensors' answer.
type Row struct {
	*Source
	Verdict      string   `json:"verdict"`
	Attention    int      `json:"attention"` // 0 first
	Actor        string   `json:"actor,omitempty"`
	OptOut       string   `json:"opt_out,omitempty"` // the actor's page (where to opt out of its scans)
	Tags         []string `json:"tags,omitempty"`
	Events       int64    `json:"events,omitempty"`       // sensor events from it
	Sensors      int64    `json:"sensors,omitempty"`      // distinct sensors it reached
	Destinations int64    `json:"destinations,omitempty"` // distinct sensor addresses it reached
	Why          string   `json:"why"`
}

// Classify gives the verdict on one source from the sensors' summary of
// it. actors names the known scanners and their pages (nil: the built-in
// list).
//
// Unknown intent is noise only when the sensors saw it widely enough
// (MinNoise sensors or sensor addresses); a summary without those counts
// (an older server) counts any sighting as noise, as before.
func Classify(src *Source, sum store.Summary, actors *tag.Actors) Row {
	if actors == nil {
		actors = tag.DefaultActors()
	}
	r := Row{Source: src, Actor: sum.Actor, Tags: sum.Tags, Events: sum.Events, Sensors: sum.Sensors, Destinations: sum.Destinations}
	breadth := ""
	if sum.Sensors > 0 || sum.Destinations > 0 {
		breadth = fmt.Sprintf("%s at %s", plural(sum.Sensors, "sensor"), plural(sum.Destinations, "address", "addresses"))
	}
	switch {
	case !sum.Noise:
		r.Verdict, r.Why = NotSeen, "no sensor saw it: it may be aimed at you; look closer"
	case sum.Classification == "malicious":
		r.Verdict, r.Why = Malicious, "attacks the sensors"
		if len(sum.Tags) > 0 {
			r.Why += ": " + strings.Join(sum.Tags, ", ")
		}
		if breadth != "" {
			r.Why += " (seen by " + breadth + ")"
		}
	case sum.Classification == "benign":
		r.Verdict, r.Why = Benign, "a known scanner"
		if sum.Actor != "" {
			r.Why = sum.Actor + ", a known scanner"
			if a, ok := actors.Actor(sum.Actor); ok && len(a.References) > 0 {
				r.OptOut = a.References[0]
				r.Why += " (opt out: " + r.OptOut + ")"
			}
		}
	case breadth != "" && sum.Sensors < MinNoise && sum.Destinations < MinNoise:
		r.Verdict, r.Why = Rare, "seen by only "+breadth+": not clearly Internet-wide; look closer"
		if len(sum.Tags) > 0 {
			r.Why += " (" + strings.Join(sum.Tags, ", ") + ")"
		}
	default:
		r.Verdict, r.Why = Noise, "scans everyone, intent unknown"
		if breadth != "" {
			r.Why = "scans everyone (seen by " + breadth + "), intent unknown"
		}
		if len(sum.Tags) > 0 {
			r.Why += ": " + strings.Join(sum.Tags, ", ")
		}
	}
	r.Attention = attention[r.Verdict]
	return r
}

func plural(n int64, one string, many ...string) string {
	if n == 1 {
		return "1 " + one
	}
	if len(many) > 0 {
		return fmt.Sprint(n, " ", many[0])
	}
	return fmt.Sprint(n, " ", one, "s")
}

// Sort orders rows by what needs attention first, then by hits (most
// first); ties keep their order (of first appearance).
func Sort(rows []Row) {
	slices.SortStableFunc(rows, func(a, b Row) int {
		if a.Attention != b.Attention {
			return a.Attention - b.Attention
		}
		return b.Hits - a.Hits
	})
}

// Lookup answers for up to ChunkSize addresses (store.Store.Summaries, or
// a client's bulk call).
type Lookup func(ctx context.Context, ips []netip.Addr) ([]store.Summary, error)

// Triage asks lookup about every source, ChunkSize at a time, classifies
// each and returns the rows sorted (Sort).
func Triage(ctx context.Context, srcs []*Source, lookup Lookup, actors *tag.Actors) ([]Row, error) {
	rows := make([]Row, 0, len(srcs))
	ips := make([]netip.Addr, 0, min(len(srcs), ChunkSize))
	by := make(map[netip.Addr]store.Summary, min(len(srcs), ChunkSize))
	for start := 0; start < len(srcs); start += ChunkSize {
		chunk := srcs[start:min(start+ChunkSize, len(srcs))]
		ips = ips[:0]
		for _, s := range chunk {
			ips = append(ips, s.Addr)
		}
		sums, err := lookup(ctx, ips)
		if err != nil {
			return nil, err
		}
		clear(by)
		for _, s := range sums {
			by[s.IP.Unmap()] = s
		}
		for _, s := range chunk {
			rows = append(rows, Classify(s, by[s.Addr], actors))
		}
	}
	Sort(rows)
	return rows, nil
}

// Report is the answer of a triage: how the logs read, and the sources
// by attention (the API's and `vantage triage --json`'s shape).
type Report struct {
	Lines             int            `json:"lines"`
	Malformed         int            `json:"malformed"`
	MalformedExamples []Malformed    `json:"malformed_examples"`
	Formats           map[string]int `json:"formats"`
	Sources           []Row          `json:"sources"`
}

// Report reports the tally's stats with the rows.
func (t *Tally) Report(rows []Row) *Report {
	r := &Report{Lines: t.Lines, Malformed: t.Malformed(), MalformedExamples: t.Examples, Formats: t.Formats, Sources: rows}
	if r.MalformedExamples == nil {
		r.MalformedExamples = []Malformed{}
	}
	if r.Formats == nil {
		r.Formats = map[string]int{}
	}
	if r.Sources == nil {
		r.Sources = []Row{}
	}
	return r
}

// WriteJSON writes the report as JSON, one source per line, without
// holding all of it in memory at once.
func (r *Report) WriteJSON(w io.Writer) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct {
		Lines             int            `json:"lines"`
		Malformed         int            `json:"malformed"`
		MalformedExamples []Malformed    `json:"malformed_examples"`
		Formats           map[string]int `json:"formats"`
	}{r.Lines, r.Malformed, r.MalformedExamples, r.Formats}); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	bw.Write(bytes.TrimSuffix(buf.Bytes(), []byte("}\n"))) // the object stays open for the sources
	bw.WriteString(`,"sources":[`)
	for i := range r.Sources {
		buf.Reset()
		if err := enc.Encode(r.Sources[i]); err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
		if _, err := bw.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))); err != nil {
			return err
		}
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}
