//go:build duckdb_arrow

package duckdb

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/memory/mallocator"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// TestIngestReleasesColumns: the columns live in C memory (arrowMem), which
// no garbage collector frees: after ingest calls that store events and
// services, skip a redelivered batch and fail on a cancelled context,
// every byte is given back.
func TestIngestReleasesColumns(t *testing.T) {
	checked := memory.NewCheckedAllocator(mallocator.NewMallocator())
	saved := arrowMem
	arrowMem = checked
	defer func() { arrowMem = saved }()

	s := openTest(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	now := time.Now().UTC()
	b1 := &record.Batch{ID: record.NewID(), Events: synthEvents(rng, 3000, now), Services: synthServices(0, 500, now)}
	b2 := &record.Batch{ID: record.NewID(), Events: synthEvents(rng, 10, now)}
	if n, err := s.Ingest(ctx, []*record.Batch{b1}); err != nil || n != 1 {
		t.Fatalf("ingest: %d, %v", n, err)
	}
	if checked.CurrentAlloc() != 0 {
		t.Fatalf("%d bytes of columns held after a stored batch", checked.CurrentAlloc())
	}
	// b1 again: its columns are built, then rebuilt for b2 alone
	if n, err := s.Ingest(ctx, []*record.Batch{b1, b2}); err != nil || n != 1 {
		t.Fatalf("redelivery: %d, %v", n, err)
	}
	if checked.CurrentAlloc() != 0 {
		t.Fatalf("%d bytes of columns held after a redelivery", checked.CurrentAlloc())
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Ingest(cancelled, []*record.Batch{{ID: record.NewID(), Events: synthEvents(rng, 10, now)}}); err == nil {
		t.Fatal("ingest with a cancelled context stored")
	}
	checked.AssertSize(t, 0)
}

// TestIngestWhileQuerying: large ingest calls run on one DuckDB thread
// (oneThread sets the global thread count and sets it back) while queries
// with facets run beside them: every query answers, every event is
// stored, and the queries get their threads back.
func TestIngestWhileQuerying(t *testing.T) {
	s := openTest(t) // 2 threads
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 5))
	now := time.Now().UTC()
	fs, err := query.ParseFacets("src.country,tag", query.Events)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	queried := make(chan error, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				if n == 0 {
					queried <- errors.New("no query ran")
					return
				}
				queried <- nil
				return
			default:
			}
			if _, err := s.SearchEvents(ctx, store.Search{Query: "dst.port:23 OR dst.port:80", Now: now, Limit: 10, Facets: fs}); err != nil {
				queried <- err
				return
			}
			n++
		}
	}()
	const calls, perCall = 6, 20000
	for i := range calls {
		batch := &record.Batch{ID: record.NewID(), Events: synthEvents(rng, perCall, now)}
		if n, err := s.Ingest(ctx, []*record.Batch{batch}); err != nil || n != 1 {
			t.Fatalf("ingest %d: %d, %v", i, n, err)
		}
	}
	close(stop)
	if err := <-queried; err != nil {
		t.Fatalf("a query beside the ingest: %v", err)
	}
	var events int64
	var threads int
	s.db.QueryRow("SELECT count(*) FROM events").Scan(&events)
	s.db.QueryRow("SELECT current_setting('threads')").Scan(&threads)
	if events != calls*perCall {
		t.Errorf("%d events stored, want %d", events, calls*perCall)
	}
	if threads != 2 {
		t.Errorf("DuckDB left with %d threads, want the store's 2", threads)
	}
}
