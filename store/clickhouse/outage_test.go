package clickhouse

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/ingest"
	"github.com/vantagehq/vantage/record"
)

// TestOutage stops ClickHouse (SIGKILL, as a crash) while the real
// ingester stores what sensors publish on an embedded bus, and starts it
// again: ingest pauses (its store calls fail and the bus redelivers) and
// catches up, and every event the bus acknowledged is stored exactly once.
func TestOutage(t *testing.T) {
	servers := start(t, topologies[0])
	ctx := context.Background()
	s := open(t, servers, "", "vantage")
	b, err := bus.Open(ctx, bus.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	in := ingest.New(ingest.Config{Bus: b, Store: s, MaxMessages: 8})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(rctx) }()
	defer func() { cancel(); <-done }()

	const batches, perBatch = 240, 50
	var acked atomic.Int64
	pubDone := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(5, 6))
		for i := range batches {
			bt := &record.Batch{ID: record.NewID(), Producer: "sensor/t", Events: synthEvents(rng, perBatch, time.Now().UTC())}
			if err := b.Publish(ctx, bus.Subject(bus.StreamEvents, "sensor/t"), bt); err != nil {
				pubDone <- err
				return
			}
			acked.Add(perBatch)
			if i%10 == 0 {
				time.Sleep(40 * time.Millisecond) // about 1 s of publishing
			}
		}
		pubDone <- nil
	}()

	// stop the server once ingest is under way, keep it down, start it again
	waitFor(t, 30*time.Second, func() bool { return in.Stats().Events > 0 })
	if err := servers[0].Kill(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	time.Sleep(2 * time.Second)
	failures := in.Stats().Failures
	if err := servers[0].Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("ClickHouse down for %v; %d store calls failed meanwhile", time.Since(down).Round(time.Millisecond), failures)
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	total := acked.Load()
	var rows, distinct int64
	waitFor(t, 90*time.Second, func() bool {
		rows, distinct, err = s.CountEventIDs(ctx)
		return err == nil && rows >= total
	})
	time.Sleep(time.Second) // nothing more arrives
	rows, distinct, err = s.CountEventIDs(ctx)
	if err != nil || rows != total || distinct != total {
		t.Fatalf("%d events stored, %d distinct (%v); %d acknowledged", rows, distinct, err, total)
	}
	if failures == 0 {
		t.Errorf("no store call failed while ClickHouse was down: the test did not test an outage")
	}
	st := in.Stats()
	t.Logf("caught up: %d events stored once; ingester stats %+v", total, st)
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not done after %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
