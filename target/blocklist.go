package target

// Blocklist answers "is this address excluded?" on the send path, once per
// target, so it must cost next to nothing when the answer is no (almost
// always). A bitmap of the 65,536 /16 blocks (8 KiB, stays in L1) says
// whether any excluded range touches the address's /16; only then is the
// sorted range list searched. A /16 entirely covered needs no search
// either.
//
// A Blocklist is immutable once built, so senders share it without locks
// (the scanner swaps whole Blocklists through an atomic pointer).
type Blocklist struct {
	touch  [1 << 10]uint64 // bit b: some range touches /16 block b
	full   [1 << 10]uint64 // bit b: /16 block b is entirely excluded
	lo, hi []uint32        // sorted, disjoint ranges
	// first[b] is the index of the first range that ends in or after /16
	// block b (len(lo) when none does), so a search looks only at the
	// ranges of one block; built only for long lists
	first []uint32
	size  uint64
}

// indexFrom is the list length from which the per-block index pays.
const indexFrom = 64

// NewBlocklist builds the lookup for the addresses of s. Later changes to s
// do not affect it.
func NewBlocklist(s *Set) *Blocklist {
	b := &Blocklist{}
	for _, r := range s.Ranges() {
		b.lo = append(b.lo, r.Lo)
		b.hi = append(b.hi, r.Hi)
		b.size += r.Size()
		for blk := r.Lo >> 16; ; blk++ {
			b.touch[blk>>6] |= 1 << (blk & 63)
			if r.Lo <= blk<<16 && blk<<16|0xffff <= r.Hi {
				b.full[blk>>6] |= 1 << (blk & 63)
			}
			if blk == r.Hi>>16 {
				break
			}
		}
	}
	if len(b.lo) >= indexFrom {
		b.first = make([]uint32, 1<<16+1)
		i := 0
		for blk := 0; blk <= 1<<16; blk++ {
			for i < len(b.hi) && uint64(b.hi[i]) < uint64(blk)<<16 {
				i++
			}
			b.first[blk] = uint32(i)
		}
	}
	return b
}

// Contains reports whether a is excluded. A nil Blocklist excludes nothing.
func (b *Blocklist) Contains(a uint32) bool {
	if b == nil {
		return false
	}
	blk := a >> 16
	bit := uint64(1) << (blk & 63)
	if b.touch[blk>>6]&bit == 0 {
		return false
	}
	if b.full[blk>>6]&bit != 0 {
		return true
	}
	// the last range starting at or before a; only ranges from the first
	// that ends in a's block to the first that ends after it can hold a
	// (if none in that window starts at or before a, the range before the
	// window ends before a's block, and the test below says no)
	i, j := 0, len(b.lo)
	if b.first != nil {
		i, j = int(b.first[blk]), min(int(b.first[blk+1])+1, len(b.lo))
	}
	for i < j {
		m := int(uint(i+j) >> 1)
		if b.lo[m] <= a {
			i = m + 1
		} else {
			j = m
		}
	}
	return i > 0 && a <= b.hi[i-1]
}

// Ranges is the number of disjoint ranges.
func (b *Blocklist) Ranges() int {
	if b == nil {
		return 0
	}
	return len(b.lo)
}

// Size is the number of excluded addresses.
func (b *Blocklist) Size() uint64 {
	if b == nil {
		return 0
	}
	return b.size
}
