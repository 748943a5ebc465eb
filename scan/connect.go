package scan

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/vantagehq/vantage/target"
)

// runConnect scans with ordinary connect() calls: the same targets in the
// same order as raw mode, at most Concurrency connections in flight. It
// needs no privileges; it learns open and closed but no TTL or window.
func (s *scanner) runConnect(ctx, sendCtx context.Context) error {
	type job struct {
		addr uint32
		port uint16
	}
	jobs := make(chan job, s.cfg.Concurrency)
	var wg sync.WaitGroup
	var failOnce sync.Once
	for i := 0; i < s.cfg.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: s.cfg.ConnectTimeout}
			for j := range jobs {
				s.dial(ctx, &d, j.addr, j.port, &failOnce)
			}
		}()
	}
	start := time.Now()
	pace := newPacer(float64(s.cfg.Rate), 64)
	w := s.walker
	func() {
		defer close(jobs)
		for {
			n := s.claim(pace.next(sendCtx))
			if n == 0 {
				return
			}
			for i := uint64(0); i < n; i++ {
				k, ok := w.Next()
				if !ok {
					return
				}
				addr, port := s.space.At(k)
				if live := s.cfg.Live; live != nil && !live.Allowed(addr) {
					if live.cur.Load().stop {
						return
					}
					s.c.excluded.Add(1)
					continue
				}
				select {
				case jobs <- job{addr, port}:
				case <-sendCtx.Done():
					return
				}
			}
		}
	}()
	s.sum.SendSeconds = time.Since(start).Seconds()
	wg.Wait() // every dial ends within ConnectTimeout: no cooldown needed
	return nil
}

func (s *scanner) dial(ctx context.Context, d *net.Dialer, addr uint32, port uint16, failOnce *sync.Once) {
	ap := netip.AddrPortFrom(target.AddrFrom(addr), port)
	// the exclusion list is checked again right before the connect(): a
	// version applied while this target waited in the queue still wins
	if live := s.cfg.Live; live != nil && !live.Allowed(addr) {
		if !live.cur.Load().stop {
			s.c.excluded.Add(1)
		}
		return
	}
	s.c.targets.Add(1)
	s.c.sent.Add(1)
	conn, err := d.DialContext(ctx, "tcp4", ap.String())
	now := time.Now()
	switch {
	case err == nil:
		// close with RST rather than FIN: nothing was said, and no
		// TIME_WAIT state piles up on the scanner
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		conn.Close()
		s.emit(addr, Reply{Port: port, State: StateOpen}, now)
	case errors.Is(err, syscall.ECONNREFUSED):
		s.emit(addr, Reply{Port: port, State: StateClosed}, now)
	case ctx.Err() != nil, isTimeout(err), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		// filtered, unreachable, or the scan was interrupted: no answer
	default:
		// out of file descriptors or local ports: the operator must know
		s.c.sendFailures.Add(1)
		failOnce.Do(func() {
			s.note("connect " + ap.String() + ": " + err.Error() + " (lower --concurrency or raise ulimit -n)")
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
