package duckdb

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
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

// TestProfileTagEvidence: a sensor view lists, per tag, how many events
// carried it and the first one.
func TestProfileTagEvidence(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	src := netip.MustParseAddr("192.0.2.77")
	mk := func(sec int, tags ...string) record.Event {
		return record.Event{ID: record.NewID(), Time: t0.Add(time.Duration(sec) * time.Second), Sensor: "s", Src: src,
			Dst: netip.MustParseAddr("198.51.100.200"), DstPort: 80, Transport: "tcp", Tags: tags, Classification: "malicious"}
	}
	evs := []record.Event{mk(5, "TCP_SYN"), mk(1, "TCP_SYN"), mk(3, "HTTP_SCANNER", "LOG4SHELL"), mk(9, "HTTP_SCANNER")}
	if _, err := s.Ingest(ctx, []*record.Batch{{ID: record.NewID(), Events: evs}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := s.Profile(ctx, src, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		tag   string
		n     int64
		first record.ID
	}{{"TCP_SYN", 2, evs[1].ID}, {"HTTP_SCANNER", 2, evs[2].ID}, {"LOG4SHELL", 1, evs[2].ID}}
	if len(p.TagEvidence) != len(want) {
		t.Fatalf("evidence %+v", p.TagEvidence)
	}
	for i, w := range want {
		e := p.TagEvidence[i]
		if e.Tag != w.tag || e.Events != w.n || e.FirstEvent != w.first.String() {
			t.Errorf("evidence %d: %+v, want %s x%d first %s", i, e, w.tag, w.n, w.first)
		}
	}
}

// TestForgedServiceCursor: a cursor whose transport is not one a service
// can have (here bytes that are not UTF-8, found by FuzzSearch) is a bad
// cursor, not a database error.
func TestForgedServiceCursor(t *testing.T) {
	s := openTest(t)
	for _, c := range []string{"cwA0ADAAOAA0000", store.EncodeCursor("s", "1", "2", "80", "sctp"), store.EncodeCursor("s", "1", "2", "80", "\xff")} {
		_, err := s.SearchServices(context.Background(), store.Search{Cursor: c, Limit: 10})
		if !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: %v, want a bad cursor", c, err)
		}
	}
	if _, err := store.DecodeServiceCursor(store.EncodeCursor("s", "1", "2", "80", "tcp")); err != nil {
		t.Errorf("a real cursor refused: %v", err)
	}
}
