package record

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestBatcherSendsEverythingOnceInOrder(t *testing.T) {
	var mu sync.Mutex
	var got []uint16
	seen := map[ID]int{}
	fail := 3 // the first sends fail: they must be retried with the same ID
	b := NewBatcher(BatcherConfig{Producer: "p", MaxRecords: 10, MaxDelay: 20 * time.Millisecond,
		Send: func(_ context.Context, batch *Batch) error {
			mu.Lock()
			defer mu.Unlock()
			seen[batch.ID]++
			if fail > 0 {
				fail--
				return errors.New("bus away")
			}
			if batch.Producer != "p" || batch.Len() > 10 {
				t.Errorf("batch %+v", batch)
			}
			for _, e := range batch.Events {
				got = append(got, e.DstPort)
			}
			return nil
		}})
	for i := 1; i <= 95; i++ {
		b.AddEvent(Event{DstPort: uint16(i)})
		if i == 50 {
			time.Sleep(60 * time.Millisecond) // a partial batch goes out by time
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 95 {
		t.Fatalf("sent %d records, want 95", len(got))
	}
	for i, p := range got {
		if p != uint16(i+1) {
			t.Fatalf("record %d is %d: out of order", i, p)
		}
	}
	batches, records, failures := b.Sent()
	if records != 95 || failures != 3 || int(batches) != len(seen) {
		t.Fatalf("sent %d batches, %d records, %d failures; %d distinct batch ids", batches, records, failures, len(seen))
	}
}

func TestBatcherCloseDeadline(t *testing.T) {
	b := NewBatcher(BatcherConfig{Send: func(ctx context.Context, _ *Batch) error { return errors.New("never") }})
	b.AddEvent(Event{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); !errors.Is(err, ErrUnsent) {
		t.Fatalf("close: %v, want ErrUnsent", err)
	}
}

// BenchmarkBatcherAddEvent: a busy producer adding events to full batches.
func BenchmarkBatcherAddEvent(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	pool := sampleBatch(rng, 1000).Events
	bt := NewBatcher(BatcherConfig{Producer: "bench", Send: func(context.Context, *Batch) error { return nil }})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		bt.AddEvent(pool[i%len(pool)])
	}
	if err := bt.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}
