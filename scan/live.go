package scan

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantagehq/vantage/target"
)

// Live is the exclusion list a running scan obeys: opt-outs approved after
// the target space was built. Every sender takes the current state at the
// start of each batch (after the pacer's wait, before the first frame is
// built) and checks every target against it; connect mode checks it again
// right before each connect(). Apply returns only once every sender has
// taken the new state, so from that moment no frame built with an older
// list is sent. Stop ends sending for good (fail closed): no sender
// builds another frame.
//
// A Live is made by the caller, filled with the first list before the
// scan, and handed to Run in Config.Live; its methods are safe for
// concurrent use.
type Live struct {
	cur atomic.Pointer[liveState]

	mu      sync.Mutex
	seq     uint64
	senders []*atomic.Uint64 // the seq each sender of the running scan took last
	stopped chan struct{}    // closed by Stop
	stopErr error
}

// liveState is one immutable state of a Live.
type liveState struct {
	seq     uint64
	version uint64
	block   *target.Blocklist
	stop    bool
}

// senderDone is what a finished sender acknowledges: every state.
const senderDone = ^uint64(0)

// NewLive returns a Live with no exclusions (version 0).
func NewLive() *Live {
	l := &Live{stopped: make(chan struct{})}
	l.cur.Store(&liveState{})
	return l
}

// Apply makes b (list version v) the list every target is checked
// against, and waits until every running sender has taken it (or ctx
// ends). It returns the time the last sender took it: from then on, no
// frame is sent that was built with an older list.
func (l *Live) Apply(ctx context.Context, v uint64, b *target.Blocklist) (time.Time, error) {
	l.mu.Lock()
	if l.cur.Load().stop {
		l.mu.Unlock()
		return time.Time{}, errors.New("scanning has stopped")
	}
	l.seq++
	seq := l.seq
	l.cur.Store(&liveState{seq: seq, version: v, block: b})
	senders := l.senders
	l.mu.Unlock()
	return l.waitSenders(ctx, senders, seq)
}

// waitSenders polls until every sender has taken seq. Senders take a new
// state at their next batch, at most a pacer wake-up (a few milliseconds)
// away, so a short poll costs little and adds little.
func (l *Live) waitSenders(ctx context.Context, senders []*atomic.Uint64, seq uint64) (time.Time, error) {
	for {
		all := true
		for _, s := range senders {
			if s.Load() < seq {
				all = false
				break
			}
		}
		if all {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
}

// Stop ends sending for good, with err as the reason; the scan finishes
// its cooldown and reports StopReason "fail-closed" and err. It returns
// once every running sender has stopped building frames (or ctx ends).
// Only the first Stop counts.
func (l *Live) Stop(ctx context.Context, err error) {
	l.mu.Lock()
	if l.cur.Load().stop {
		l.mu.Unlock()
		return
	}
	l.seq++
	seq := l.seq
	old := l.cur.Load()
	l.cur.Store(&liveState{seq: seq, version: old.version, block: old.block, stop: true})
	l.stopErr = err
	close(l.stopped)
	senders := l.senders
	l.mu.Unlock()
	l.waitSenders(ctx, senders, seq)
}

// Stopped is closed when Stop is called.
func (l *Live) Stopped() <-chan struct{} { return l.stopped }

// Err is the reason given to Stop, or nil.
func (l *Live) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopErr
}

// Version is the version of the list in force.
func (l *Live) Version() uint64 { return l.cur.Load().version }

// Allowed reports whether a probe or a connection to a may go now: the
// scan has not stopped and a is not on the list. It is the check the
// grabber makes before every connection.
func (l *Live) Allowed(a uint32) bool {
	st := l.cur.Load()
	return !st.stop && !st.block.Contains(a)
}

// register adds a sender; it has taken the current state.
func (l *Live) register() *atomic.Uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &atomic.Uint64{}
	s.Store(l.cur.Load().seq)
	l.senders = append(l.senders, s)
	return s
}

// take is a sender's start of batch: the state to build the batch with,
// acknowledged.
func (l *Live) take(ack *atomic.Uint64) *liveState {
	st := l.cur.Load()
	ack.Store(st.seq)
	return st
}
