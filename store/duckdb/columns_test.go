//go:build duckdb_arrow

package duckdb

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/memory/mallocator"

	"github.com/vantagehq/vantage/record"
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
