package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/record"
)

// Delivery is one message taken from a stream.
type Delivery struct {
	Batch *record.Batch
	Size  int // bytes on the wire
	msg   jetstream.Msg
}

// Handler stores a group of deliveries. It returns nil only when every
// batch is durably stored: the messages are acknowledged after it returns,
// and redelivered if it fails (or the process dies first), so the handler
// must store a batch it has seen before exactly once.
type Handler func(ctx context.Context, ds []Delivery) error

// ConsumeStats are running totals of a consumer.
type ConsumeStats struct {
	Messages, Records, Rejected, Failures uint64
}

// ackWait is how long a delivered message may stay unacknowledged before
// the bus delivers it again: after a crash, what was being stored comes
// back this soon. Long store calls keep their messages with progress
// signals (see heartbeat), so a short wait does not cause redeliveries.
const ackWait = 15 * time.Second

// ConsumeOptions tune a consumer.
type ConsumeOptions struct {
	MaxMessages int // messages handed to the handler at once (default 64)
	// Workers fetch and handle groups concurrently (default 1): while one
	// waits for the store, another decodes the next group.
	Workers  int
	OnReject func(subject string, err error) // told about messages that do not decode
}

// Consume takes batches from a stream through a durable consumer and calls
// h with groups of up to MaxMessages until ctx is done. Messages that do
// not decode are rejected (terminated: never redelivered) and reported
// through OnReject; they are a producer's bug, not data.
func (b *Bus) Consume(ctx context.Context, stream, durable string, opts ConsumeOptions, h Handler) error {
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = 64
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	// A durable consumer left at Replicas 0 has as many as its stream: on an
	// R3 stream its state (what was delivered and acknowledged) survives the
	// loss of a node, and a new leader carries on where the old one was.
	var cons jetstream.Consumer
	err := retry(ctx, b.log, "create consumer "+durable, time.Minute, 10*time.Second, func(ctx context.Context) error {
		var err error
		cons, err = b.JS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable:       durable,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxAckPending: 4 * opts.MaxMessages * opts.Workers,
			MaxDeliver:    -1,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", durable, stream, err)
	}
	var wg sync.WaitGroup
	for i := 0; i < opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.consumeLoop(ctx, cons, stream, opts, h)
		}()
	}
	wg.Wait()
	return nil
}

func (b *Bus) consumeLoop(ctx context.Context, cons jetstream.Consumer, stream string, opts ConsumeOptions, h Handler) {
	max, onReject := opts.MaxMessages, opts.OnReject
	backoff := 100 * time.Millisecond
	// no consumer leader (an election after a lost node) or no connection:
	// wait a little longer each time, up to a second, and say so seldom
	fetchWait, fetchFails := 100*time.Millisecond, 0
	fetchFailed := func(err error) {
		if fetchFails++; fetchFails == 1 || fetchFails%20 == 0 {
			b.log.Warn("fetch from the bus (retrying)", "stream", stream, "failures", fetchFails, "err", err)
		}
		sleep(ctx, fetchWait)
		fetchWait = min(2*fetchWait, time.Second)
	}
	for ctx.Err() == nil {
		mb, err := cons.Fetch(max, jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			fetchFailed(err)
			continue
		}
		var ds []Delivery
		for m := range mb.Messages() {
			batch, err := record.UnmarshalBatch(m.Data())
			if err != nil {
				m.Term()
				if onReject != nil {
					onReject(m.Subject(), err)
				}
				continue
			}
			ds = append(ds, Delivery{Batch: batch, Size: len(m.Data()), msg: m})
		}
		if err := mb.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil && len(ds) == 0 {
			fetchFailed(err)
			continue
		}
		if fetchFails > 0 {
			b.log.Info("fetch from the bus works again", "stream", stream, "after_failures", fetchFails)
			fetchWait, fetchFails = 100*time.Millisecond, 0
		}
		if len(ds) == 0 {
			continue
		}
		stop := heartbeat(ds)
		err = h(ctx, ds)
		stop()
		if err != nil {
			// not stored: let the bus deliver them again after a pause
			for _, d := range ds {
				d.msg.NakWithDelay(backoff)
			}
			if ctx.Err() == nil {
				b.log.Error("store batches (will retry)", "stream", stream, "batches", len(ds), "err", err)
			}
			sleep(ctx, backoff)
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for _, d := range ds {
			d.msg.Ack()
		}
	}
}

// heartbeat tells the bus every few seconds that the deliveries are still
// being worked on, until stop is called.
func heartbeat(ds []Delivery) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, d := range ds {
					d.msg.InProgress()
				}
			}
		}
	}()
	return func() { close(done) }
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
