// Package e2e_test runs the vantage binary end to end on loopback (no
// network lab needed): crash safety of ingest, among others.
package e2e_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantagehq/vantage/client"
	"github.com/vantagehq/vantage/internal/testbin"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store/duckdb"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Clean()
	os.Exit(code)
}

// Kill -9 the server in the middle of a large ingest and restart it: every
// acknowledged record is stored once, none twice. The producer retries
// what was not acknowledged with the same batch IDs, as scanners and
// sensors do, so in the end every batch is acknowledged; the store must
// hold each of their records exactly once.
func TestKillDuringIngest(t *testing.T) {
	const batches, perBatch = 300, 1000
	data := t.TempDir()
	srv := testbin.StartServer(t, testbin.ServerOptions{Data: data})
	key := srv.Key
	ctx := context.Background()

	var url atomic.Value
	url.Store(srv.URL)
	var acked atomic.Int64
	rng := rand.New(rand.NewPCG(1, 2))
	b := record.NewBatcher(record.BatcherConfig{Producer: "crash-test", MaxRecords: perBatch, Queue: 8,
		Send: func(ctx context.Context, bt *record.Batch) error {
			c := client.New(url.Load().(string), key)
			c.HTTP.Timeout = 5 * time.Second
			if err := c.Ingest(ctx, "events", bt); err != nil {
				return err
			}
			acked.Add(int64(bt.Len()))
			return nil
		}})
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		now := time.Now().UTC()
		for i := 0; i < batches*perBatch; i++ {
			b.AddEvent(record.Event{ID: record.NewID(), Time: now, Sensor: "s1",
				Src: netip.AddrFrom4([4]byte{11, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(i)}), Dst: netip.MustParseAddr("198.51.100.200"),
				DstPort: 23, Transport: "tcp", TTL: 50, Tags: []string{"TCP_SYN"}})
		}
	}()

	// let ingest get going, then crash the server while it works
	c := client.New(srv.URL, key)
	stored := func(c *client.Client) int64 {
		r, err := c.SearchEvents(ctx, "", client.SearchOptions{Limit: 0})
		if err != nil {
			t.Logf("count events: %v", err)
			return -1
		}
		return r.Total
	}
	if err := testbin.Wait(ctx, time.Minute, func() (bool, error) { return stored(c) >= 50*perBatch, nil }); err != nil {
		t.Fatalf("ingest did not start: %v\n%s", err, srv.Log())
	}
	before := stored(c)
	srv.Kill()
	t.Logf("killed the server with %d events stored and %d acknowledged to the producer", before, acked.Load())

	// restart on the same data; the producer keeps retrying meanwhile
	srv2 := testbin.StartServer(t, testbin.ServerOptions{Data: data})
	url.Store(srv2.URL)
	<-produced
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := b.Close(cctx); err != nil {
		t.Fatalf("producer: %v", err)
	}
	total := int64(batches * perBatch)
	if acked.Load() != total {
		t.Fatalf("acknowledged %d of %d records", acked.Load(), total)
	}
	c2 := client.New(srv2.URL, key)
	if err := testbin.Wait(ctx, 2*time.Minute, func() (bool, error) { return stored(c2) >= total, nil }); err != nil {
		t.Fatalf("stored %d of %d after the restart: %v", stored(c2), total, err)
	}
	time.Sleep(time.Second) // anything redelivered late would land now
	if err := srv2.Stop(); err != nil {
		t.Fatal(err)
	}

	// count in the database itself: every ID once
	st, err := duckdb.Open(ctx, filepath.Join(data, "store"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, distinct, err := st.CountEventIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the crash and restart: %d events stored, %d distinct, %d published", n, distinct, total)
	if n != total || distinct != total {
		t.Fatalf("stored %d events (%d distinct IDs), want exactly %d", n, distinct, total)
	}
	u, _ := st.Usage(ctx)
	if u.Tables["batches"].Rows != batches {
		t.Fatalf("%d batches recorded, want %d", u.Tables["batches"].Rows, batches)
	}
}
