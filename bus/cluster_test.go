package bus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/internal/natstest"
	"github.com/vantagehq/vantage/record"
)

// TestClusterR3SurvivesLostNode runs three `vantage nats` processes, opens
// the bus with three replicas, and kills (SIGKILL) the node that leads the
// EVENTS stream between two rounds of publishing: every stream, bucket and
// the ingest consumer are on three nodes, nothing published is lost or
// delivered as a new batch twice, and the buckets answer afterwards.
func TestClusterR3SurvivesLostNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NATS processes")
	}
	addrs := natstest.FreeAddrs(t, 6)
	c := natstest.Start(t, natstest.Options{Clients: addrs[:3], Routes: addrs[3:]})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := bus.Open(ctx, bus.Config{URL: c.URL(), Replicas: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// a client (Replicas 0) must not turn the streams back into R1
	cl, err := bus.Open(ctx, bus.Config{URL: c.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, name := range []string{bus.StreamResults, bus.StreamEvents, bus.StreamAudit, bus.StreamJobs, "KV_scanjobs", "KV_watchlists"} {
		s, err := b.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas", name, r)
		}
	}
	publish := func(n int) []string {
		var ids []string
		for i := 0; i < n; i++ {
			batch := &record.Batch{ID: record.NewID(), Producer: "sensor/t", Events: []record.Event{{Sensor: "t", DstPort: uint16(i)}}}
			if err := cl.Publish(ctx, bus.Subject(bus.StreamEvents, "t"), batch); err != nil {
				t.Fatalf("publish: %v", err)
			}
			ids = append(ids, batch.ID.String())
		}
		return ids
	}
	want := publish(50)

	var mu sync.Mutex
	got := map[string]int{}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Consume(cctx, bus.StreamEvents, "ingest-test", bus.ConsumeOptions{MaxMessages: 8}, func(_ context.Context, ds []bus.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			for _, d := range ds {
				got[d.Batch.ID.String()]++
			}
			return nil
		})
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	for count() < len(want) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	cons, err := b.JS.Consumer(ctx, bus.StreamEvents, "ingest-test")
	if err != nil {
		t.Fatal(err)
	}
	if r := cons.CachedInfo().Config.Replicas; r != 0 && r != 3 {
		t.Errorf("the consumer has %d replicas", r)
	}
	info := cons.CachedInfo()
	if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Errorf("the consumer is not on three nodes: %+v", info.Cluster)
	}

	// kill the EVENTS leader, then publish through the election
	s, _ := b.JS.Stream(ctx, bus.StreamEvents)
	leader := s.CachedInfo().Cluster.Leader
	victim := 0
	for i, n := range c.Nodes {
		if n.Name == leader {
			victim = i
		}
	}
	t0 := time.Now()
	c.Kill(victim)
	want = append(want, publish(50)...)
	t.Logf("killed %s (the EVENTS leader); 50 batches published through the election in %v", leader, time.Since(t0).Round(time.Millisecond))
	for count() < len(want) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	<-done
	mu.Lock()
	for _, id := range want {
		if got[id] == 0 {
			t.Errorf("batch %s lost", id)
		}
	}
	redelivered := 0
	for _, n := range got {
		redelivered += n - 1
	}
	mu.Unlock()
	t.Logf("consumed %d distinct batches of %d published; %d redeliveries (the store skips them)", len(got), len(want), redelivered)
	if len(got) != len(want) {
		t.Errorf("consumed %d distinct batches, want %d", len(got), len(want))
	}

	// the buckets answer with a node down
	kv, err := cl.KV(ctx, "watchlists")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "after-the-kill", []byte("x")); err != nil {
		t.Errorf("kv put with a node down: %v", err)
	}
	if e, err := kv.Get(ctx, "after-the-kill"); err != nil || string(e.Value()) != "x" {
		t.Errorf("kv get with a node down: %v", err)
	}
	// and the node comes back on its store
	if err := c.Restart(victim); err != nil {
		t.Fatal(err)
	}
}
