// Package spool keeps batches on disk between a producer and the bus, so
// that an unreachable bus or a restart loses nothing: every batch is
// written (and synced) to its own file before it counts as taken, and a
// single sender goroutine delivers the files in order, deleting each only
// once the far side has acknowledged it. Batches keep their IDs, so a
// batch delivered again after a crash is stored once.
package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantagehq/vantage/record"
)

// ErrFull is returned by Put when the spool holds MaxBytes already.
var ErrFull = errors.New("spool full")

// Config of a spool.
type Config struct {
	Dir      string
	MaxBytes int64 // on disk at most [1 GiB]; beyond, Put refuses and counts the loss
	Send     func(ctx context.Context, b *record.Batch) error
	Log      *slog.Logger
}

// Spool is a directory of batch files named by sequence number.
type Spool struct {
	cfg     Config
	mu      sync.Mutex
	next    uint64 // sequence of the next file
	bytes   int64
	wake    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64 // records refused because the spool was full
	sent    atomic.Uint64 // batches delivered
	pending atomic.Int64  // files waiting
}

const suffix = ".batch"

// Open opens (or creates) the spool in dir and starts delivering what an
// earlier run left there, in order.
func Open(ctx context.Context, cfg Config) (*Spool, error) {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 30
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool %s: %w", cfg.Dir, err)
	}
	s := &Spool{cfg: cfg, wake: make(chan struct{}, 1), done: make(chan struct{})}
	seqs, err := s.files(true)
	if err != nil {
		return nil, err
	}
	for _, q := range seqs {
		if fi, err := os.Stat(s.path(q)); err == nil {
			s.bytes += fi.Size()
		}
		s.next = max(s.next, q+1)
	}
	s.pending.Store(int64(len(seqs)))
	if len(seqs) > 0 {
		cfg.Log.Info("spool: replaying batches left by an earlier run", "dir", cfg.Dir, "batches", len(seqs))
	}
	go s.deliver(ctx)
	s.poke()
	return s, nil
}

func (s *Spool) path(seq uint64) string {
	return filepath.Join(s.cfg.Dir, fmt.Sprintf("%016d%s", seq, suffix))
}

// files lists the spooled sequence numbers in order. At open, leftovers of
// a write a crash interrupted (.tmp) are removed; later a .tmp is a write
// in progress.
func (s *Spool) files(clean bool) ([]uint64, error) {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", s.cfg.Dir, err)
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if clean {
				os.Remove(filepath.Join(s.cfg.Dir, name))
			}
			continue
		}
		if !strings.HasSuffix(name, suffix) {
			continue
		}
		q, err := strconv.ParseUint(strings.TrimSuffix(name, suffix), 10, 64)
		if err == nil {
			seqs = append(seqs, q)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// Put writes a batch to disk. When it returns nil the batch survives a
// crash; it is delivered later, in order.
func (s *Spool) Put(b *record.Batch) error {
	return b.WithEncoding(func(data []byte) error { return s.put(b, data) })
}

func (s *Spool) put(b *record.Batch, data []byte) error {
	s.mu.Lock()
	if s.bytes+int64(len(data)) > s.cfg.MaxBytes {
		s.mu.Unlock()
		s.dropped.Add(uint64(b.Len()))
		return fmt.Errorf("%w: %d bytes on disk, %d records refused", ErrFull, s.cfg.MaxBytes, b.Len())
	}
	seq := s.next
	s.next++
	s.bytes += int64(len(data))
	s.mu.Unlock()
	final := s.path(seq)
	tmp := final + ".tmp"
	if err := writeSync(tmp, data); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.pending.Add(1)
	s.poke()
	return nil
}

func writeSync(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (s *Spool) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// deliver sends spooled files in order until ctx ends; a failed send is
// retried with backoff, the file kept.
func (s *Spool) deliver(ctx context.Context) {
	defer close(s.done)
	backoff := 100 * time.Millisecond
	for {
		seqs, err := s.files(false)
		if err != nil {
			s.cfg.Log.Error("spool", "err", err)
		}
		progressed := false
		for _, q := range seqs {
			if ctx.Err() != nil {
				return
			}
			data, err := os.ReadFile(s.path(q))
			if err != nil {
				continue
			}
			b, err := record.UnmarshalBatch(data)
			if err != nil {
				// a file this program wrote and cannot read: keep it aside
				s.cfg.Log.Error("spool: unreadable batch set aside", "file", s.path(q), "err", err)
				os.Rename(s.path(q), s.path(q)+".bad")
				s.forget(q, len(data))
				continue
			}
			if err := s.cfg.Send(ctx, b); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.cfg.Log.Warn("spool: send failed, will retry", "err", err, "waiting", s.pending.Load())
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 10*time.Second)
				break
			}
			backoff = 100 * time.Millisecond
			os.Remove(s.path(q))
			s.forget(q, len(data))
			s.sent.Add(1)
			progressed = true
		}
		if progressed {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-time.After(time.Second):
		}
	}
}

func (s *Spool) forget(seq uint64, size int) {
	s.mu.Lock()
	s.bytes -= int64(size)
	s.mu.Unlock()
	s.pending.Add(-1)
}

// Drain waits until every spooled batch is delivered, or ctx ends.
func (s *Spool) Drain(ctx context.Context) error {
	for s.pending.Load() > 0 {
		s.poke()
		select {
		case <-ctx.Done():
			return fmt.Errorf("spool: %d batches still waiting in %s: %w", s.pending.Load(), s.cfg.Dir, ctx.Err())
		case <-s.done:
			return fmt.Errorf("spool: stopped with %d batches waiting in %s", s.pending.Load(), s.cfg.Dir)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Stats: batches delivered, batches waiting, records refused when full.
func (s *Spool) Stats() (sent uint64, pending int64, dropped uint64) {
	return s.sent.Load(), s.pending.Load(), s.dropped.Load()
}
