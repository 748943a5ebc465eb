package scan

import (
	"math/rand/v2"
	"testing"
)

func TestWindowDedupAgainstModel(t *testing.T) {
	for _, window := range []int{1, 3, 16, 1000} {
		d := newWindowDedup(window)
		var recent []uint64 // model: the last `window` distinct keys inserted
		rng := rand.New(rand.NewPCG(uint64(window), 1))
		for i := 0; i < 20000; i++ {
			k := uint64(rng.IntN(3 * window))
			in := false
			for _, r := range recent {
				if r == k {
					in = true
				}
			}
			if got := d.seen(k); got != in {
				t.Fatalf("window %d step %d: seen(%d) = %v, model %v", window, i, k, got, in)
			}
			if !in {
				recent = append(recent, k)
				if len(recent) > window {
					recent = recent[1:]
				}
			}
		}
	}
}

func TestBitmapDedup(t *testing.T) {
	d := newBitmapDedup()
	for _, k := range []uint64{0, 1, 63, 64, 65535, 65536, 1 << 47} {
		if d.seen(k) {
			t.Fatalf("%d seen before insertion", k)
		}
		if !d.seen(k) {
			t.Fatalf("%d not seen after insertion", k)
		}
	}
	if d.seen(2) {
		t.Fatal("2 was never inserted")
	}
}
