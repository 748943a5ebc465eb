package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/record"
)

// TestSpooledPublisherStartsWithoutBus: a sensor with a spool starts
// while its bus is down, keeps what it records on disk, and delivers all
// of it once the bus answers, each event once.
func TestSpooledPublisherStartsWithoutBus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there until the bus starts below

	var stderr syncBuffer
	ctx := context.Background()
	p, err := newStreamPublisher(ctx, pubConfig{role: "sensor", stream: bus.StreamEvents, endpoint: "events",
		nats: "nats://" + addr, spoolDir: t.TempDir(), maxDelay: 100 * time.Millisecond}, slog.New(slog.DiscardHandler), &stderr)
	if err != nil {
		t.Fatalf("the publisher did not start without its bus: %v", err)
	}
	const n = 2500
	for i := range n {
		p.batcher.AddEvent(record.Event{ID: record.NewID(), Time: time.Now().UTC(), Sensor: "t",
			Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.1"), DstPort: uint16(i), Transport: "tcp"})
	}
	time.Sleep(500 * time.Millisecond) // batches go to the spool meanwhile
	if !strings.Contains(stderr.String(), "does not answer") {
		t.Errorf("nothing said about the missing bus: %q", stderr.String())
	}

	b, err := bus.Open(ctx, bus.Config{Dir: t.TempDir(), Listen: addr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var stored uint64
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		st, err := b.JS.Stream(ctx, bus.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stored = info.State.Msgs; stored >= 3 {
			break
		}
	}
	if err := p.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("published %d records", n)) {
		t.Errorf("not every event was handed on: %q", stderr.String())
	}
	// every batch reached the stream once (the bus drops a batch sent
	// twice by its ID)
	count := 0
	cons, err := b.JS.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		msgs, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range msgs.Messages() {
			got++
			batch, err := record.UnmarshalBatch(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			count += len(batch.Events)
		}
		if got == 0 {
			break
		}
	}
	if count != n {
		t.Errorf("%d events on the bus, want %d", count, n)
	}
}

func TestCheckNATSURLs(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"nats://127.0.0.1:4222", true},
		{"tls://n1.example.net:4222,tls://n2.example.net:4222", true},
		{"127.0.0.1:4222", true},
		{"wss://bus.example.net/ws", true},
		{"http://127.0.0.1:8080", false},
		{"nats://", false},
		{"nats://[::1", false},
	} {
		if err := checkNATSURLs(c.in); (err == nil) != c.ok {
			t.Errorf("%q: %v", c.in, err)
		}
	}
}
