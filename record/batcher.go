package record

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// BatcherConfig tunes a Batcher.
type BatcherConfig struct {
	Producer   string                                    // written into every batch
	Send       func(ctx context.Context, b *Batch) error // publishes one batch; must be idempotent per batch ID, and keep nothing of the batch once it returns (its slices are reused)
	MaxRecords int                                       // records per batch (default 1000)
	MaxDelay   time.Duration                             // a partial batch goes out after this long (default 1s)
	Queue      int                                       // full batches waiting to be sent before Add blocks (default 16)
	OnError    func(err error, attempt int)              // told about failed sends (they are retried)
}

// Batcher gathers records into batches and sends them in order from one
// goroutine. A failed send is retried with backoff, with the same batch ID,
// so the receiving side can drop what it already has. When the queue is
// full, Add blocks: a producer slows down rather than losing records.
type Batcher struct {
	cfg   BatcherConfig
	mu    sync.Mutex
	cur   *Batch
	first time.Time // when cur got its first record
	// the sizes of the last batch sent: the next one's slices start
	// there, so a busy producer fills them without growing them ten times
	// and copying every record on the way
	lastServices, lastEvents int
	queue                    chan *Batch
	// pushers counts goroutines about to put a batch on the queue, so Close
	// does not close it under them; closing stops new ones
	pushers sync.WaitGroup
	closing bool
	done    chan struct{}
	ctx     context.Context
	stop    context.CancelFunc

	sentBatches, sentRecords, failures atomic.Uint64
	closeOnce                          sync.Once
}

// NewBatcher starts a batcher.
func NewBatcher(cfg BatcherConfig) *Batcher {
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 1000
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 16
	}
	ctx, stop := context.WithCancel(context.Background())
	b := &Batcher{cfg: cfg, queue: make(chan *Batch, cfg.Queue), done: make(chan struct{}), ctx: ctx, stop: stop}
	go b.run()
	return b
}

// AddService queues a service.
func (b *Batcher) AddService(s Service) {
	if cur := b.lock(); cur != nil {
		cur.Services = append(cur.Services, s)
		b.unlock(cur)
	}
}

// AddEvent queues an event.
func (b *Batcher) AddEvent(e Event) {
	if cur := b.lock(); cur != nil {
		cur.Events = append(cur.Events, e)
		b.unlock(cur)
	}
}

// lock takes the batcher's lock and returns the batch to add to, or nil
// (and no lock) after Close: the record is dropped. Adding through lock
// and unlock rather than a callback keeps the record from escaping to the
// heap on every call.
func (b *Batcher) lock() *Batch {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil
	}
	if b.cur == nil {
		b.cur = &Batch{ID: NewID(), Producer: b.cfg.Producer}
		if b.lastServices > 0 {
			b.cur.Services = make([]Service, 0, b.lastServices)
		}
		// a sent batch's event slice when there is one (Recycle): a
		// sensor's batches are a thousand events of over 400 bytes each,
		// and a fresh slice for each was most of what it allocated
		b.cur.Events = takeEvents(b.lastEvents)
		b.first = time.Now()
	}
	return b.cur
}

// unlock queues the batch if it is full and releases the lock.
func (b *Batcher) unlock(cur *Batch) {
	var full *Batch
	if cur.Len() >= b.cfg.MaxRecords {
		full, b.cur = cur, nil
		b.lastServices, b.lastEvents = len(full.Services), len(full.Events)
		b.pushers.Add(1)
	}
	b.mu.Unlock()
	if full != nil {
		b.queue <- full
		b.pushers.Done()
	}
}

// flushOld queues the partial batch if it has waited MaxDelay.
func (b *Batcher) flushOld() {
	b.mu.Lock()
	var old *Batch
	if !b.closing && b.cur != nil && time.Since(b.first) >= b.cfg.MaxDelay {
		old, b.cur = b.cur, nil
		b.lastServices, b.lastEvents = len(old.Services), len(old.Events)
		b.pushers.Add(1)
	}
	b.mu.Unlock()
	if old != nil {
		b.queue <- old
		b.pushers.Done()
	}
}

func (b *Batcher) run() {
	defer close(b.done)
	tick := time.NewTicker(b.cfg.MaxDelay / 4)
	defer tick.Stop()
	for {
		select {
		case batch, ok := <-b.queue:
			if !ok {
				return
			}
			b.send(batch)
		case <-tick.C:
			go b.flushOld() // never block the sender on its own queue
		}
	}
}

func (b *Batcher) send(batch *Batch) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := b.cfg.Send(b.ctx, batch)
		if err == nil {
			b.sentBatches.Add(1)
			b.sentRecords.Add(uint64(batch.Len()))
			batch.Recycle()
			return
		}
		b.failures.Add(1)
		if b.cfg.OnError != nil {
			b.cfg.OnError(err, attempt)
		}
		select {
		case <-b.ctx.Done():
			return // closed before it could be sent
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// ErrUnsent is returned by Close when records could not be sent in time.
var ErrUnsent = errors.New("records not sent before the deadline")

// Close sends what is left and waits until everything is sent or ctx is
// done, whichever is first.
func (b *Batcher) Close(ctx context.Context) error {
	var err error
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closing = true
		last := b.cur
		b.cur = nil
		b.mu.Unlock()
		go func() {
			if last != nil {
				b.queue <- last
			}
			b.pushers.Wait()
			close(b.queue)
		}()
		select {
		case <-b.done:
		case <-ctx.Done():
			b.stop()
			<-b.done
			err = ErrUnsent
		}
		b.stop()
	})
	return err
}

// Sent returns the batches and records sent so far, and failed attempts.
func (b *Batcher) Sent() (batches, records, failures uint64) {
	return b.sentBatches.Load(), b.sentRecords.Load(), b.failures.Load()
}
