package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

type sink struct {
	mu    sync.Mutex
	fail  int // fail this many sends first
	got   []record.ID
	calls int
}

func (s *sink) send(_ context.Context, b *record.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail > 0 {
		s.fail--
		return errors.New("bus unreachable")
	}
	s.got = append(s.got, b.ID)
	return nil
}

func batch(i int) *record.Batch {
	return &record.Batch{ID: record.HashID("b", string(rune('a'+i))), Producer: "test",
		Events: []record.Event{{ID: record.NewID(), Time: time.Unix(int64(i), 0).UTC(), Sensor: "s", Transport: "tcp"}}}
}

func TestDeliversInOrderAfterFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := &sink{fail: 3}
	sp, err := Open(ctx, Config{Dir: t.TempDir(), Send: k.send})
	if err != nil {
		t.Fatal(err)
	}
	var want []record.ID
	for i := 0; i < 20; i++ {
		b := batch(i)
		want = append(want, b.ID)
		if err := sp.Put(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.got) != len(want) {
		t.Fatalf("delivered %d of %d", len(k.got), len(want))
	}
	for i := range want {
		if k.got[i] != want[i] {
			t.Fatalf("batch %d out of order", i)
		}
	}
}

func TestSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx1, stop1 := context.WithCancel(context.Background())
	down := &sink{fail: 1 << 30} // the bus is down for the whole first run
	sp, err := Open(ctx1, Config{Dir: dir, Send: down.send})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := sp.Put(batch(i)); err != nil {
			t.Fatal(err)
		}
	}
	stop1() // the process "dies"
	// a write cut short by the crash
	os.WriteFile(filepath.Join(dir, "0000000000000099.batch.tmp"), []byte("half"), 0o600)

	ctx2, stop2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop2()
	up := &sink{}
	sp2, err := Open(ctx2, Config{Dir: dir, Send: up.send})
	if err != nil {
		t.Fatal(err)
	}
	if err := sp2.Put(batch(5)); err != nil {
		t.Fatal(err)
	}
	if err := sp2.Drain(ctx2); err != nil {
		t.Fatal(err)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.got) != 6 || up.got[0] != batch(0).ID || up.got[5] != batch(5).ID {
		t.Fatalf("after the restart: %d batches delivered", len(up.got))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("files left behind: %v", left)
	}
}

func TestFullSpoolRefusesAndCounts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	down := &sink{fail: 1 << 30}
	sp, err := Open(ctx, Config{Dir: t.TempDir(), Send: down.send, MaxBytes: 300})
	if err != nil {
		t.Fatal(err)
	}
	var full int
	for i := 0; i < 20; i++ {
		if err := sp.Put(batch(i)); errors.Is(err, ErrFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	_, pending, dropped := sp.Stats()
	if full == 0 || dropped != uint64(full) || pending+int64(full) != 20 {
		t.Errorf("full %d, dropped %d, pending %d", full, dropped, pending)
	}
}
