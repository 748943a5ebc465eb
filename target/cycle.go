package target

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Cycle is a pseudorandom permutation of [0, n) that keeps no per-element
// state. It walks the multiplicative group of integers modulo a safe prime
// p = 2q+1 >= n+1: starting from some element, multiplying by a primitive
// root g visits each of 1..p-1 exactly once; x stands for position x-1, and
// positions at or beyond n are skipped. A safe prime is chosen as the first
// one above n, so the skipped tail is tiny, and a safe prime makes testing
// for a primitive root cheap (p-1 has only the factors 2 and q).
//
// The seed picks the generator and the starting element, so scanners given
// the same seed walk the same order. Shards split the cycle by position:
// shard i of k takes positions i, i+k, i+2k, ... so the shards are disjoint
// and their union is the whole cycle, whatever k is.
type Cycle struct {
	n, p, g, start uint64
	seed           uint64
}

// MaxCycle is the largest permutation size supported (2^48: every IPv4
// address times every port).
const MaxCycle = 1 << 48

// NewCycle returns the permutation of [0, n) chosen by seed.
func NewCycle(n uint64, seed uint64) (*Cycle, error) {
	if n == 0 {
		return nil, errors.New("empty target space")
	}
	if n > MaxCycle {
		return nil, fmt.Errorf("target space of %d exceeds the maximum of %d", n, uint64(MaxCycle))
	}
	p := nextSafePrime(n + 1)
	rng := rand.New(rand.NewPCG(seed, 0x76616e74616765)) // "vantage"
	q := (p - 1) / 2
	var g uint64
	for {
		// g in [2, p-2]; p >= 5 so the range is not empty
		g = 2 + rng.Uint64N(p-3)
		if powmod(g, 2, p) != 1 && powmod(g, q, p) != 1 {
			break
		}
	}
	start := powmod(g, rng.Uint64N(p-1), p)
	return &Cycle{n: n, p: p, g: g, start: start, seed: seed}, nil
}

// Size is n, the number of positions permuted.
func (c *Cycle) Size() uint64 { return c.n }

// Shard returns the walker over shard i of count (0 <= i < count).
func (c *Cycle) Shard(i, count int) (*Walker, error) {
	if count < 1 || i < 0 || i >= count {
		return nil, fmt.Errorf("shard %d of %d: want 0 <= shard < shards", i, count)
	}
	order := c.p - 1
	k := uint64(count)
	j := uint64(i)
	w := &Walker{n: c.n, p: c.p, step: powmod(c.g, k%order, c.p)}
	if j < order {
		w.steps = (order - j + k - 1) / k
	}
	w.cur = mulmod(c.start, powmod(c.g, j, c.p), c.p)
	w.total = w.steps
	return w, nil
}

// Walker yields the positions of one shard of a Cycle in pseudorandom order.
// It is not safe for concurrent use; give each sender its own shard.
type Walker struct {
	n, p, step uint64
	cur        uint64
	steps      uint64 // group elements left to visit, including skipped ones
	total      uint64
	yielded    uint64
}

// Next returns the next position, or false when the shard is exhausted.
func (w *Walker) Next() (uint64, bool) {
	for w.steps > 0 {
		x := w.cur
		w.cur = mulmod(x, w.step, w.p)
		w.steps--
		if x <= w.n { // x in 1..p-1 stands for position x-1
			return x - 1, true
		}
	}
	return 0, false
}

// Progress reports the fraction of the shard's cycle already walked (0..1).
func (w *Walker) Progress() float64 {
	if w.total == 0 {
		return 1
	}
	return float64(w.total-w.steps) / float64(w.total)
}

// Split returns part i of n of what w has left to yield: the positions w
// would yield at indices i, i+n, i+2n, ... of its remaining walk. The parts
// are disjoint and together yield exactly what w would, so one shard can be
// shared by several senders however many there are.
func (w *Walker) Split(i, n int) *Walker {
	k, j := uint64(max(n, 1)), uint64(i)
	s := &Walker{n: w.n, p: w.p, step: powmod(w.step, k, w.p)}
	if j < w.steps {
		s.steps = (w.steps - j + k - 1) / k
	}
	s.cur = mulmod(w.cur, powmod(w.step, j, w.p), w.p)
	s.total = s.steps
	return s
}

// Skip advances the walker by up to k group elements (skipped ones included)
// without yielding them: a resumed shard picks up where it stopped.
func (w *Walker) Skip(k uint64) {
	k = min(k, w.steps)
	w.cur = mulmod(w.cur, powmod(w.step, k, w.p), w.p)
	w.steps -= k
}

// Walked is the number of group elements visited, skipped ones included; a
// later Skip(Walked()) on a fresh walker of the same shard resumes here.
func (w *Walker) Walked() uint64 { return w.total - w.steps }

func mulmod(a, b, m uint64) uint64 {
	if a|b < 1<<32 {
		return a * b % m
	}
	hi, lo := bits.Mul64(a, b)
	return bits.Rem64(hi, lo, m)
}

func powmod(b, e, m uint64) uint64 {
	r := uint64(1) % m
	b %= m
	for e > 0 {
		if e&1 == 1 {
			r = mulmod(r, b, m)
		}
		b = mulmod(b, b, m)
		e >>= 1
	}
	return r
}

// isPrime is a deterministic Miller-Rabin test for 64-bit integers.
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	small := []uint64{2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37}
	for _, p := range small {
		if n%p == 0 {
			return n == p
		}
	}
	d, s := n-1, 0
	for d%2 == 0 {
		d /= 2
		s++
	}
next:
	for _, a := range small {
		x := powmod(a, d, n)
		if x == 1 || x == n-1 {
			continue
		}
		for r := 1; r < s; r++ {
			x = mulmod(x, x, n)
			if x == n-1 {
				continue next
			}
		}
		return false
	}
	return true
}

// nextSafePrime returns the smallest safe prime p = 2q+1 (q prime) with
// p >= min, and at least 5 so that a generator other than 1 and p-1 exists.
func nextSafePrime(lower uint64) uint64 {
	q := max(lower/2, 2)
	for {
		p := 2*q + 1
		if p >= lower && isPrime(q) && isPrime(p) {
			return p
		}
		q++
	}
}
