package duckdb

import (
	"math/bits"
	"sync"
)

// sources is a Bloom filter of the source addresses that have a sensor
// profile. Most addresses looked up were never seen by a sensor; the
// filter lets a lookup skip the profile query for them, which otherwise is
// half of its time. False positives only cost that query; there are no
// false negatives, since the refresher adds every source it folds in
// before the fold is visible.
type sources struct {
	mu    sync.RWMutex
	bits  []uint64
	mask  uint64
	count int
}

const bloomHashes = 4

func newSources(capacity int) *sources {
	// about 10 bits per entry: ~1% false positives with 4 hashes
	n := uint64(1024)
	for n < uint64(capacity)*10 {
		n <<= 1
	}
	return &sources{bits: make([]uint64, n/64), mask: n - 1}
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// positions yields the filter bits of an address.
func (s *sources) positions(hi, lo uint64, fn func(uint64)) {
	h1 := mix(lo ^ bits.RotateLeft64(hi, 17))
	h2 := mix(h1^0x9e3779b97f4a7c15) | 1
	for i := uint64(0); i < bloomHashes; i++ {
		fn((h1 + i*h2) & s.mask)
	}
}

// add records an address. It reports false when the filter is full and
// should be rebuilt bigger.
func (s *sources) add(hi, lo uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.positions(hi, lo, func(p uint64) { s.bits[p/64] |= 1 << (p % 64) })
	s.count++
	return uint64(s.count)*10 <= s.mask+1
}

// mayHave reports whether the address may have a profile.
func (s *sources) mayHave(hi, lo uint64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	all := true
	s.positions(hi, lo, func(p uint64) {
		if s.bits[p/64]&(1<<(p%64)) == 0 {
			all = false
		}
	})
	return all
}
