package scan

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/target"
)

// fakeTX is a frameSender that records the destination of every frame at
// Flush, the moment a real ring hands frames to the kernel.
type fakeTX struct {
	mu      sync.Mutex
	batch   [][]byte
	slots   [][]byte
	sent    []uint32
	discard bool // benchmarks: count nothing
}

func newFakeTX(slots int) *fakeTX {
	tx := &fakeTX{}
	for range slots {
		tx.slots = append(tx.slots, make([]byte, 128))
	}
	return tx
}

func (tx *fakeTX) Next() ([]byte, error) {
	if len(tx.batch) == len(tx.slots) {
		return nil, errors.New("ring full")
	}
	return tx.slots[len(tx.batch)], nil
}

func (tx *fakeTX) Commit(n int) { tx.batch = append(tx.batch, tx.slots[len(tx.batch)][:n]) }

func (tx *fakeTX) Flush() error {
	if !tx.discard {
		tx.mu.Lock()
		for _, f := range tx.batch {
			tx.sent = append(tx.sent, binary.BigEndian.Uint32(f[14+16:])) // IPv4 destination
		}
		tx.mu.Unlock()
	}
	tx.batch = tx.batch[:0]
	return nil
}

func (tx *fakeTX) Slots() int       { return len(tx.slots) }
func (tx *fakeTX) Failures() uint64 { return 0 }
func (tx *fakeTX) Close() error     { return nil }

func (tx *fakeTX) count() int {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return len(tx.sent)
}

func testScanner(t testing.TB, cidr string, rate int, live *Live) (*scanner, Probe) {
	t.Helper()
	sp, err := target.NewSpace(target.NewSet(target.RangeOf(netip.MustParsePrefix(cidr))), []uint16{80})
	if err != nil {
		t.Fatal(err)
	}
	cyc, _ := target.NewCycle(sp.Size(), 1)
	w, _ := cyc.Shard(0, 1)
	s := &scanner{cfg: Config{Probes: 1, Rate: rate, Live: live}, space: sp, walker: w}
	return s, newProbe(t, "tcp_syn", "", testEnv(t, 1))
}

func blocklist(cidrs ...string) *target.Blocklist {
	s := &target.Set{}
	for _, c := range cidrs {
		s.AddPrefix(netip.MustParsePrefix(c))
	}
	return target.NewBlocklist(s)
}

// Once Apply returns, not one frame for the excluded range is flushed;
// once Stop returns, no frame at all.
func TestLiveApplyAndStop(t *testing.T) {
	live := NewLive()
	s, probe := testScanner(t, "10.0.0.0/16", 200_000, live)
	tx := newFakeTX(4096)
	done := make(chan error, 1)
	go func() { done <- s.send(context.Background(), s.walker, tx, probe, 200_000) }()

	time.Sleep(50 * time.Millisecond)
	excluded := netip.MustParsePrefix("10.0.128.0/17")
	start := time.Now()
	at, err := live.Apply(context.Background(), 7, blocklist(excluded.String()))
	if err != nil {
		t.Fatal(err)
	}
	mark := tx.count()
	t.Logf("version applied %v after Apply was called, %d frames sent before", at.Sub(start), mark)
	if mark == 0 {
		t.Fatal("nothing was sent before the list was applied: the test proves nothing")
	}
	if live.Version() != 7 {
		t.Fatalf("Version = %d", live.Version())
	}

	time.Sleep(50 * time.Millisecond)
	live.Stop(context.Background(), errors.New("test stop"))
	stopMark := tx.count()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if len(tx.sent) != stopMark {
		t.Fatalf("%d frames flushed after Stop returned", len(tx.sent)-stopMark)
	}
	if stopMark == mark {
		t.Fatal("nothing was sent between Apply and Stop: the test proves nothing")
	}
	for i, a := range tx.sent[mark:] {
		if excluded.Contains(target.AddrFrom(a)) {
			t.Fatalf("frame %d after the list was applied goes to excluded %s", mark+i, target.AddrFrom(a))
		}
	}
	if s.c.excluded.Load() == 0 {
		t.Fatal("no target counted as excluded in flight")
	}
	if live.Err() == nil || live.Err().Error() != "test stop" {
		t.Fatalf("Err = %v", live.Err())
	}
	if _, err := live.Apply(context.Background(), 8, nil); err == nil {
		t.Fatal("Apply after Stop succeeded")
	}
	if live.Allowed(0x0a000001) {
		t.Fatal("Allowed after Stop")
	}
}

// A Live with no running sender applies at once; Allowed follows the list.
func TestLiveAllowed(t *testing.T) {
	live := NewLive()
	if !live.Allowed(0x0a000001) || live.Version() != 0 {
		t.Fatal("a new Live must allow everything, version 0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := live.Apply(ctx, 3, blocklist("10.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if live.Allowed(0x0a000001) || !live.Allowed(0x0a000101) {
		t.Fatal("Allowed does not follow the list")
	}
	select {
	case <-live.Stopped():
		t.Fatal("stopped before Stop")
	default:
	}
	live.Stop(ctx, errors.New("x"))
	<-live.Stopped()
}

// BenchmarkSend is the send loop without a socket: the cost per probe of
// walking the space, building frames and (with a live list) checking each
// target. Compare the sub-benchmarks: the list must cost next to nothing.
func BenchmarkSend(b *testing.B) {
	for _, c := range []struct {
		name string
		live func() *Live
	}{
		{"standalone", func() *Live { return nil }},
		{"list-empty", NewLive},
		{"list-2-ranges", func() *Live {
			l := NewLive()
			l.Apply(context.Background(), 1, blocklist("10.1.0.0/17", "10.3.7.0/24"))
			return l
		}},
		{"list-100k-ranges", func() *Live {
			s := &target.Set{}
			var rs []target.Range
			for i := uint32(0); i < 100_000; i++ {
				lo := 0x0a000000 + i*64
				rs = append(rs, target.Range{Lo: lo, Hi: lo + 15})
			}
			s.AddRanges(rs)
			l := NewLive()
			l.Apply(context.Background(), 1, target.NewBlocklist(s))
			return l
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, probe := testScanner(b, "10.0.0.0/8", 0, c.live())
			tx := newFakeTX(256)
			tx.discard = true
			s.cfg.MaxTargets = uint64(b.N)
			b.ResetTimer()
			if err := s.send(context.Background(), s.walker, tx, probe, 0); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(s.c.excluded.Load())/float64(b.N), "excluded/op")
		})
	}
}
