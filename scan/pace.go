package scan

import (
	"context"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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
		p.batch = uint64(min(max(int(rate/250), 1), maxBatch))
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
		threadSleep(min(wake-elapsed, 50*time.Millisecond))
	}
}

// threadSleep puts the calling thread to sleep in the kernel without telling
// the Go scheduler. A sender wakes hundreds of times a second; through
// time.Sleep each wake-up costs timer, netpoller and thread hand-offs, and
// keeps the runtime's monitor thread polling every few microseconds, which
// at 10k pps cost several times the CPU of sending. The sleeping goroutine
// keeps its P, so other goroutines run on the remaining Ps; Gosched after
// the sleep lets them run when there is only one.
func threadSleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0) // EINTR: the caller's loop sleeps again
	runtime.Gosched()
}
