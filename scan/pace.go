package scan

import (
	"context"
	"time"
)

// pacer spreads packets over time at a fixed rate. It keeps an absolute
// schedule (packet k is due at start + k/rate), so the error of each sleep
// does not add up: the average rate of a run is as exact as the clock. It
// wakes about once a millisecond at most, sending the packets due since the
// last wake-up as one batch, so that low rates do not spin and high rates do
// not pay a syscall per packet.
type pacer struct {
	rate  float64 // packets per second; 0 = as fast as possible
	batch uint64  // packets per wake-up
	burst uint64  // most packets sent at once when catching up after a late wake-up
	start time.Time
	sent  uint64
}

func newPacer(rate float64, maxBatch int) *pacer {
	p := &pacer{rate: rate, batch: uint64(maxBatch), start: time.Now()}
	if rate > 0 {
		p.batch = uint64(min(max(int(rate/1000), 1), maxBatch))
	}
	p.burst = 4 * p.batch
	return p
}

// next waits until a batch is due and returns how many packets to send now.
// It returns 0 only when ctx is done.
func (p *pacer) next(ctx context.Context) uint64 {
	if p.rate <= 0 {
		if ctx.Err() != nil {
			return 0
		}
		return p.batch
	}
	for {
		if ctx.Err() != nil {
			return 0
		}
		elapsed := time.Since(p.start)
		due := uint64(elapsed.Seconds() * p.rate)
		if due >= p.sent+p.batch {
			n := min(due-p.sent, p.burst)
			p.sent += n
			return n
		}
		wake := time.Duration(float64(p.sent+p.batch) / p.rate * float64(time.Second))
		time.Sleep(min(wake-elapsed, 50*time.Millisecond))
	}
}
