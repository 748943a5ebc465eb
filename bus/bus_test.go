package bus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

func openTest(t *testing.T, dir string) *Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Config{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// collect consumes until want batches arrived (or a timeout), with h
// deciding whether a group is stored.
func collect(t *testing.T, b *Bus, want int, h func([]Delivery) error) []*record.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []*record.Batch
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Consume(ctx, StreamEvents, "test", ConsumeOptions{MaxMessages: 10}, func(_ context.Context, ds []Delivery) error {
			if err := h(ds); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range ds {
				got = append(got, d.Batch)
			}
			if len(got) >= want {
				cancel()
			}
			return nil
		})
	}()
	<-done
	mu.Lock()
	defer mu.Unlock()
	return got
}

func TestPublishDedupConsumeAndRestart(t *testing.T) {
	dir := t.TempDir()
	b := openTest(t, dir)
	ctx := context.Background()
	batch := &record.Batch{ID: record.NewID(), Producer: "sensor/a", Events: []record.Event{{Sensor: "a", DstPort: 23}}}
	subj := Subject(StreamEvents, "sensor/a.b")
	for i := 0; i < 3; i++ { // a producer retrying: the same batch ID is stored once
		if err := b.Publish(ctx, subj, batch); err != nil {
			t.Fatal(err)
		}
	}
	other := &record.Batch{ID: record.NewID(), Events: []record.Event{{DstPort: 80}}}
	if err := b.Publish(ctx, subj, other); err != nil {
		t.Fatal(err)
	}
	// the first attempt to store fails: both batches come back
	failed := false
	got := collect(t, b, 2, func(ds []Delivery) error {
		if !failed {
			failed = true
			return errors.New("store away")
		}
		return nil
	})
	if len(got) != 2 || got[0].ID != batch.ID || got[1].ID != other.ID || got[0].Events[0].DstPort != 23 {
		t.Fatalf("got %d batches: %+v", len(got), got)
	}
	b.Close()

	// after a restart the acknowledged batches are not delivered again
	b = openTest(t, dir)
	defer b.Close()
	third := &record.Batch{ID: record.NewID(), Events: []record.Event{{DstPort: 443}}}
	if err := b.Publish(ctx, subj, third); err != nil {
		t.Fatal(err)
	}
	got = collect(t, b, 1, func([]Delivery) error { return nil })
	if len(got) != 1 || got[0].ID != third.ID {
		t.Fatalf("after restart got %+v", got)
	}
	for _, name := range Buckets {
		if _, err := b.KV(ctx, name); err != nil {
			t.Errorf("bucket %s: %v", name, err)
		}
	}
}

func TestMalformedMessageRejected(t *testing.T) {
	b := openTest(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	if _, err := b.JS.Publish(ctx, Subject(StreamEvents, "evil"), []byte{0x12, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	good := &record.Batch{ID: record.NewID(), Events: []record.Event{{DstPort: 1}}}
	if err := b.Publish(ctx, Subject(StreamEvents, "good"), good); err != nil {
		t.Fatal(err)
	}
	var rejected []string
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	b.Consume(cctx, StreamEvents, "test", ConsumeOptions{MaxMessages: 10,
		OnReject: func(subject string, err error) { rejected = append(rejected, subject) }},
		func(_ context.Context, ds []Delivery) error {
			if len(ds) != 1 || ds[0].Batch.ID != good.ID {
				t.Errorf("deliveries %+v", ds)
			}
			cancel()
			return nil
		})
	if len(rejected) != 1 || rejected[0] != "vantage.events.evil" {
		t.Fatalf("rejected %v", rejected)
	}
}

func TestSubjectSanitised(t *testing.T) {
	if got := Subject(StreamResults, "scanner/host.example.com"); got != "vantage.results.scanner/host_example_com" {
		t.Fatalf("got %s", got)
	}
	if got := Subject(StreamEvents, "a b>*"); got != "vantage.events.a_b__" {
		t.Fatalf("got %s", got)
	}
}
