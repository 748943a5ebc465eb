package duckdb

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

func TestSourcesFilter(t *testing.T) {
	s := newSources(10000)
	for i := uint64(0); i < 10000; i++ {
		if !s.add(0, i*7919) {
			t.Fatalf("full after %d of 10000", i)
		}
	}
	for i := uint64(0); i < 10000; i++ {
		if !s.mayHave(0, i*7919) {
			t.Fatalf("false negative for %d", i)
		}
	}
	fp := 0
	for i := uint64(0); i < 100000; i++ {
		if s.mayHave(1, i) {
			fp++
		}
	}
	if fp > 3000 { // ~1% expected
		t.Fatalf("%d false positives in 100000", fp)
	}
}

// The filter grows past its first size without losing a source.
func TestProfileFilterGrows(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	now := time.Now().UTC()
	var all []*record.Batch
	for i := 0; i < 12; i++ { // 12 x 10,000 distinct sources > the initial 65,536
		evs := make([]record.Event, 10000)
		for k := range evs {
			evs[k] = record.Event{ID: record.NewID(), Time: now, Sensor: "s",
				Src: netip.AddrFrom4([4]byte{10, byte(i), byte(k >> 8), byte(k)}), Dst: netip.MustParseAddr("198.51.100.200"), DstPort: 23}
		}
		b := &record.Batch{ID: record.NewID(), Events: evs}
		all = append(all, b)
		if _, err := s.Ingest(ctx, []*record.Batch{b}); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range all {
		for _, e := range b.Events[:50] {
			if _, err := s.Profile(ctx, e.Src, 0); err != nil {
				t.Fatalf("profile of %s: %v", e.Src, err)
			}
		}
	}
}
