package exclusion_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/exclusion"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

// TestUpdateAndWatch: versions count up by one per change, concurrent
// writers lose nothing, and a watcher sees the empty list and then every
// version it is fast enough to see, ending at the last.
func TestUpdateAndWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kv, err := b.KV(ctx, exclusion.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	l, rev, err := exclusion.Load(ctx, kv)
	if err != nil || l.Version != 0 || len(l.Entries) != 0 || rev != 0 {
		t.Fatalf("empty bucket: %+v rev %d %v", l, rev, err)
	}
	seen := make(chan uint64, 100)
	wctx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		exclusion.Watch(wctx, kv, func(l *exclusion.List) { seen <- l.Version })
	}()
	if v := <-seen; v != 0 {
		t.Fatalf("the watch began at version %d, want the empty list", v)
	}
	// ten writers at once, one /24 each
	var writers sync.WaitGroup
	for i := range 10 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24)
			if _, err := exclusion.Update(ctx, kv, time.Now, func(l *exclusion.List) error {
				l.Add([]netip.Prefix{p}, "test", "", time.Now())
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	writers.Wait()
	l, _, err = exclusion.Load(ctx, kv)
	if err != nil || l.Version != 10 || len(l.Entries) != 10 {
		t.Fatalf("after ten writers: version %d, %d entries, %v", l.Version, len(l.Entries), err)
	}
	if !l.Contains(netip.MustParseAddr("198.18.7.9")) || l.Contains(netip.MustParseAddr("198.18.10.1")) {
		t.Error("Contains is wrong")
	}
	for last := uint64(0); last != 10; {
		select {
		case last = <-seen:
		case <-ctx.Done():
			t.Fatalf("the watch stopped at version %d", last)
		}
	}
	stopWatch()
	wg.Wait()
}

func TestAddMergesAndRemove(t *testing.T) {
	now := time.Now()
	l := &exclusion.List{}
	if got := l.Add(pfx("198.18.1.0/24", "198.18.2.0/24"), "a", "r1", now); len(got) != 2 {
		t.Fatalf("added %v", got)
	}
	if got := l.Add(pfx("198.18.1.128/25"), "b", "r2", now); len(got) != 0 {
		t.Errorf("a range inside an entry was added: %v", got)
	}
	if got := l.Add(pfx("198.18.0.0/22"), "c", "r3", now); len(got) != 1 || len(l.Entries) != 1 {
		t.Errorf("a wider range should replace the two /24s: %v, entries %v", got, l.Entries)
	}
	if n := l.Remove("r3", nil); n != 1 || len(l.Entries) != 0 {
		t.Errorf("remove by request: %d", n)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":3,"updated":"2026-11-27T10:00:00Z","entries":[{"prefix":"198.18.0.0/16","reason":"opt-out","added":"2026-11-27T10:00:00Z"}]}`))
	f.Add([]byte(`{"version":0,"entries":[]}`))
	f.Add([]byte(`{"version":1,"entries":[{"prefix":"2001:db8::/32"}]}`))
	f.Add([]byte(`{"version":1,"entries":[{"prefix":"10.0.0.1/8"}]}`))
	f.Add([]byte(`{"version":1,"entries":[{"prefix":"::ffff:198.18.0.0/112"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := exclusion.Decode(b)
		if err != nil {
			return
		}
		// what decodes encodes to the same list, and every entry is a masked prefix
		again, err := exclusion.Decode(l.Encode())
		if err != nil || again.Version != l.Version || len(again.Entries) != len(l.Entries) {
			t.Fatalf("round trip: %v", err)
		}
		for _, e := range l.Entries {
			if e.Prefix != e.Prefix.Masked() || !l.Contains(e.Prefix.Addr()) {
				t.Fatalf("entry %v", e.Prefix)
			}
		}
	})
}
