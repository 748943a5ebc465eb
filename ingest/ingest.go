// Package ingest moves batches from the bus into the store: it enriches
// every address (country, ASN, organisation), stores each batch exactly once
// and acknowledges a message only after its batch is durably stored, so a
// crash at any point loses nothing and duplicates nothing.
package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/vuln"
)

// Vulns names the CVEs that affect a CPE, with their known-exploited
// flags (a *vuln.DB is one).
type Vulns interface {
	Match(cpe string) []vuln.Vuln
}

// TagKEV marks a service with at least one known-exploited CVE (the CISA
// catalog): `tag:KEV` finds them.
const TagKEV = "KEV"

// Geo looks up what is known about an address (package enrich).
type Geo interface {
	Lookup(netip.Addr) record.Geo
}

// Config wires an ingester.
type Config struct {
	Bus         *bus.Bus
	Store       store.Store
	Geo         Geo   // nil: no enrichment
	Vulns       Vulns // nil: services keep the vulns their producer gave
	MaxMessages int   // bus messages per store transaction (default 160: with 1000 records a message, more than one DuckDB row group)
	// Workers are the concurrent fetch-and-store loops per stream (default
	// 3): the store inserts two calls of events at once (store/duckdb), and
	// a third loop decodes and builds columns meanwhile
	Workers int
	Log     *slog.Logger
}

// Stats are running totals since the ingester started.
type Stats struct {
	Batches  uint64 `json:"batches"`  // stored
	Skipped  uint64 `json:"skipped"`  // delivered again and already stored
	Services uint64 `json:"services"` // records stored
	Events   uint64 `json:"events"`
	Rejected uint64 `json:"rejected"` // messages that did not decode
	Failures uint64 `json:"failures"` // store calls that failed (and were retried)
	Bytes    uint64 `json:"bytes"`
	// StoreSeconds is the time spent in the store; with Batches it gives
	// the store's share of the ingest latency.
	StoreSeconds float64 `json:"store_seconds"`
}

// Ingester consumes both streams.
type Ingester struct {
	cfg Config
	log *slog.Logger

	batches, skipped, services, events, rejected, failures, bytes atomic.Uint64
	storeNanos                                                    atomic.Int64
}

// New returns an ingester; Run starts it.
func New(cfg Config) *Ingester {
	if cfg.MaxMessages <= 0 {
		cfg.MaxMessages = 160
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 3
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Ingester{cfg: cfg, log: cfg.Log}
}

// Run consumes scan results and sensor events until ctx is done.
func (in *Ingester) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, stream := range []string{bus.StreamResults, bus.StreamEvents} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = in.cfg.Bus.Consume(ctx, stream, "ingest-"+stream, bus.ConsumeOptions{
				MaxMessages: in.cfg.MaxMessages, Workers: in.cfg.Workers, OnReject: in.reject}, in.store)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (in *Ingester) reject(subject string, err error) {
	in.rejected.Add(1)
	in.log.Warn("rejected a malformed batch", "subject", subject, "err", err)
}

// store is the bus handler: enrich, then store the group in one call.
func (in *Ingester) store(ctx context.Context, ds []bus.Delivery) error {
	batches := make([]*record.Batch, len(ds))
	var size uint64
	for i, d := range ds {
		in.enrich(d.Batch)
		batches[i] = d.Batch
		size += uint64(d.Size)
	}
	start := time.Now()
	n, err := in.cfg.Store.Ingest(ctx, batches)
	in.storeNanos.Add(int64(time.Since(start)))
	// stored or not, the batches are done with: the bus delivers a batch
	// that failed again, decoded anew
	defer func() {
		for _, b := range batches {
			b.Recycle()
		}
	}()
	if err != nil {
		in.failures.Add(1)
		return err
	}
	in.batches.Add(uint64(n))
	in.skipped.Add(uint64(len(batches) - n))
	in.bytes.Add(size)
	for _, b := range batches {
		in.services.Add(uint64(len(b.Services)))
		in.events.Add(uint64(len(b.Events)))
	}
	return nil
}

// enrich fills in geography the producer left empty, and the CVEs of
// services whose producer named CPEs but no vulns (tagged KEV when one is
// known exploited).
func (in *Ingester) enrich(b *record.Batch) {
	if v := in.cfg.Vulns; v != nil {
		for i := range b.Services {
			s := &b.Services[i]
			if len(s.Vulns) > 0 {
				continue
			}
			kev := false
			for _, c := range s.CPE {
				for _, m := range v.Match(c) {
					if !slices.Contains(s.Vulns, m.ID) {
						s.Vulns = append(s.Vulns, m.ID)
					}
					kev = kev || m.KEV
				}
			}
			if kev && !slices.Contains(s.Tags, TagKEV) {
				s.Tags = append(s.Tags, TagKEV)
			}
		}
	}
	g := in.cfg.Geo
	if g == nil {
		return
	}
	for i := range b.Services {
		s := &b.Services[i]
		if s.Geo == (record.Geo{}) {
			s.Geo = g.Lookup(s.IP)
		}
	}
	var lastSrc netip.Addr
	var lastGeo record.Geo
	for i := range b.Events {
		e := &b.Events[i]
		if e.SrcGeo == (record.Geo{}) {
			if e.Src != lastSrc { // events come in runs from one source
				lastSrc, lastGeo = e.Src, g.Lookup(e.Src)
			}
			e.SrcGeo = lastGeo
		}
		if e.DstCountry == "" {
			e.DstCountry = g.Lookup(e.Dst).Country
		}
	}
}

// Stats returns the running totals.
func (in *Ingester) Stats() Stats {
	return Stats{
		Batches: in.batches.Load(), Skipped: in.skipped.Load(), Services: in.services.Load(),
		Events: in.events.Load(), Rejected: in.rejected.Load(), Failures: in.failures.Load(),
		Bytes: in.bytes.Load(), StoreSeconds: time.Duration(in.storeNanos.Load()).Seconds(),
	}
}
