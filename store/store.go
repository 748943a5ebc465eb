// Package store is where records live and how they are asked about: one
// interface, shaped by the questions the API answers, with an embedded
// implementation on DuckDB (store/duckdb) and, at scale, one on ClickHouse.
//
// Writes are batches from the bus and are idempotent per batch: Ingest
// stores a batch it has stored before zero more times, so the bus can
// redeliver freely. Reads take query ASTs (package query) and compile them
// in the store's own SQL dialect with bind parameters.
package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
)

// ErrNotFound is returned when nothing is known about what was asked.
var ErrNotFound = errors.New("not found")

// ErrBadCursor is returned for a cursor that no page of this store gave.
var ErrBadCursor = errors.New("bad cursor")

// ErrBadRequest wraps errors in what the caller asked (an unknown
// dimension, a window out of range); query errors are *query.Error.
var ErrBadRequest = errors.New("bad request")

// Store is a place for services and events.
type Store interface {
	// Ingest stores batches atomically and durably, skipping batches
	// stored before. It returns how many were new.
	Ingest(ctx context.Context, batches []*record.Batch) (stored int, err error)

	// Host is everything known about one address.
	Host(ctx context.Context, ip netip.Addr) (*Host, error)
	// SearchServices finds current services and counts facets.
	SearchServices(ctx context.Context, r Search) (*ServiceResult, error)
	// SearchEvents finds sensor events and counts facets.
	SearchEvents(ctx context.Context, r Search) (*EventResult, error)
	// Summaries answers for many addresses at once (bulk lookups).
	Summaries(ctx context.Context, ips []netip.Addr) ([]Summary, error)
	// Profile is the sensors' view of one source address.
	Profile(ctx context.Context, ip netip.Addr, events int) (*Profile, error)
	// EventStats counts events in a time window grouped by one dimension.
	EventStats(ctx context.Context, r Stats) ([]Bucket, error)
	// Matrix counts events by source country and target country.
	Matrix(ctx context.Context, since time.Time) ([]Cell, error)
	// Timeline counts events per interval for the top values of a dimension.
	Timeline(ctx context.Context, r Timeline) ([]Series, error)

	// Sync makes everything ingested so far visible to every query
	// (derived views such as profiles are otherwise refreshed shortly after).
	Sync(ctx context.Context) error
	// Purge deletes what scans stored about the prefixes' addresses (an
	// opt-out under the purge policy); sensor events stay.
	Purge(ctx context.Context, prefixes []netip.Prefix) (deleted int64, err error)
	// Expire deletes records older than the retention settings.
	Expire(ctx context.Context, now time.Time) (deleted int64, err error)
	// Usage reports rows and bytes per table.
	Usage(ctx context.Context) (Usage, error)
	Close() error
}

// Retention says how long each table keeps records (0 = forever).
type Retention struct {
	Events   time.Duration
	History  time.Duration // every observation of a service
	Services time.Duration // current services not seen again for this long
}

// Search is a query with paging and facets.
type Search struct {
	Query  string    // the query language (package query); "" matches everything
	Now    time.Time // for relative times in the query
	Limit  int       // rows to return (capped by the store)
	Cursor string    // from the previous page; "" for the first
	Facets []query.Facet
}

// FacetValue is one value of a facet and how many rows have it.
type FacetValue struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

// ServiceResult is a page of services.
type ServiceResult struct {
	Total    int64                   `json:"total"`
	Services []Service               `json:"services"`
	Facets   map[string][]FacetValue `json:"facets,omitempty"`
	Next     string                  `json:"next,omitempty"` // cursor of the next page
}

// Service is the current state of one service, with when it was first and
// last seen.
type Service struct {
	record.Service
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// EventResult is a page of events.
type EventResult struct {
	Total  int64                   `json:"total"`
	Events []record.Event          `json:"events"`
	Facets map[string][]FacetValue `json:"facets,omitempty"`
	Next   string                  `json:"next,omitempty"`
}

// Host is what is known about one address.
type Host struct {
	IP        netip.Addr `json:"ip"`
	Geo       record.Geo `json:"geo"`
	Services  []Service  `json:"services"`
	Ports     []uint16   `json:"ports"`
	CPEs      []string   `json:"cpes,omitempty"`
	Tags      []string   `json:"tags,omitempty"`
	Vulns     []string   `json:"vulns,omitempty"`
	FirstSeen time.Time  `json:"first_seen,omitzero"`
	LastSeen  time.Time  `json:"last_seen,omitzero"`
	Profile   *Profile   `json:"sensors,omitempty"` // what it did to the sensors, if anything
}

// Summary is a short answer about one address: its open ports and what
// the sensors think of it.
type Summary struct {
	IP             netip.Addr `json:"ip"`
	Ports          []uint16   `json:"ports"`
	CPEs           []string   `json:"cpes"`
	Tags           []string   `json:"tags"`
	Vulns          []string   `json:"vulns"`
	LastSeen       time.Time  `json:"last_seen,omitzero"`
	Noise          bool       `json:"noise"` // seen by the sensors
	Classification string     `json:"classification,omitempty"`
	Actor          string     `json:"actor,omitempty"`
	// how widely the sensors saw it (0 when not seen): events, distinct
	// sensors and distinct sensor addresses, as in its Profile
	Events       int64 `json:"events,omitempty"`
	Sensors      int64 `json:"sensors,omitempty"`
	Destinations int64 `json:"destinations,omitempty"`
}

// Profile is the sensors' view of one source address.
type Profile struct {
	IP             netip.Addr     `json:"ip"`
	Geo            record.Geo     `json:"geo"`
	FirstSeen      time.Time      `json:"first_seen"`
	LastSeen       time.Time      `json:"last_seen"`
	Events         int64          `json:"events"`
	Sensors        int64          `json:"sensors"`      // distinct sensors it reached
	Destinations   int64          `json:"destinations"` // distinct sensor addresses it reached
	Ports          []uint16       `json:"ports"`
	Tags           []string       `json:"tags"`
	Classification string         `json:"classification"`
	Actor          string         `json:"actor,omitempty"`
	Handshake      bool           `json:"handshake"` // completed at least one TCP handshake (not spoofed)
	Recent         []record.Event `json:"recent,omitempty"`
	// TagEvidence is, for each tag, how many events carried it and the
	// first of them: the events behind the verdict (asked with recent > 0).
	TagEvidence []TagEvidence `json:"tag_evidence,omitempty"`
}

// TagEvidence is the events behind one tag of a profile.
type TagEvidence struct {
	Tag        string    `json:"tag"`
	Events     int64     `json:"events"`
	FirstSeen  time.Time `json:"first_seen"`
	FirstEvent string    `json:"first_event"` // event id
	// Intention and Rule are filled in by whoever knows the tag rules (the API)
	Intention string `json:"intention,omitempty"`
}

// Stats asks for event counts in a window grouped by a dimension.
type Stats struct {
	Since time.Time
	By    string // src_country, dst_country, tag, dst_port, asn, org, sensor, classification, actor
	Limit int
	Query string // optional filter
	Now   time.Time
}

// Bucket is one group of a Stats answer.
type Bucket struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// Cell is one source country x target country count.
type Cell struct {
	Src   string `json:"src"`
	Dst   string `json:"dst"`
	Count int64  `json:"count"`
}

// Timeline asks for event counts per interval for the top values of a dimension.
type Timeline struct {
	Since, Until time.Time
	Step         time.Duration
	By           string
	Top          int
}

// Series is one line of a timeline.
type Series struct {
	Key    string  `json:"key"`
	Points []Point `json:"points"`
}

// Point is a count at a time.
type Point struct {
	Time  time.Time `json:"t"`
	Count int64     `json:"n"`
}

// Usage is the size of the store.
type Usage struct {
	Tables map[string]TableUsage `json:"tables"`
	Bytes  int64                 `json:"bytes"` // on disk
}

// TableUsage is one table's size.
type TableUsage struct {
	Rows int64 `json:"rows"`
}
