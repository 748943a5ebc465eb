package scan

// dedup remembers which targets have answered, so each is reported once.
type dedup interface {
	// seen marks key and reports whether it was already marked.
	seen(key uint64) bool
}

// windowDedup remembers the most recent keys in fixed memory: an open
// addressing hash set (linear probing, deletion by backward shift) that
// forgets the oldest key once it holds `window` of them. Duplicate replies
// (retransmitted SYN-ACKs, several probes per target) arrive within seconds,
// well inside a window of a million hits, while memory does not grow with
// the size of the scan.
//
// Both arrays start small and grow to their cap, so a scan that finds few
// hosts uses little memory; growing touches fresh memory once instead of
// faulting in a large zeroed table page by page on the hot path.
type windowDedup struct {
	slots  []uint64 // key+1; 0 is empty; at most half full
	mask   uint64
	order  []uint64 // ring of keys in insertion order
	head   int
	count  int
	window int
}

func newWindowDedup(window int) *windowDedup {
	d := &windowDedup{window: max(window, 1)}
	d.slots = make([]uint64, 1024)
	d.mask = uint64(len(d.slots) - 1)
	d.order = make([]uint64, min(d.window, 512))
	return d
}

// grow doubles the ring (up to the window) and the table, keeping the
// insertion order: the oldest key moves to index 0.
func (d *windowDedup) grow() {
	order := make([]uint64, min(2*len(d.order), d.window))
	n := copy(order, d.order[d.head:])
	copy(order[n:], d.order[:d.head])
	d.order, d.head = order, d.count
	for len(d.slots) < 2*len(d.order) {
		old := d.slots
		d.slots = make([]uint64, 2*len(old))
		d.mask = uint64(len(d.slots) - 1)
		for _, v := range old {
			if v != 0 {
				d.slots[d.findFree(v)] = v
			}
		}
	}
}

func hashKey(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	return k
}

func (d *windowDedup) seen(key uint64) bool {
	v := key + 1
	i := hashKey(v) & d.mask
	for d.slots[i] != 0 {
		if d.slots[i] == v {
			return true
		}
		i = (i + 1) & d.mask
	}
	if d.count == len(d.order) {
		if len(d.order) < d.window {
			d.grow()
		} else {
			d.remove(d.order[d.head])
			d.count--
		}
	}
	d.slots[d.findFree(v)] = v
	d.order[d.head] = v
	d.head = (d.head + 1) % len(d.order)
	d.count++
	return false
}

func (d *windowDedup) findFree(v uint64) uint64 {
	i := hashKey(v) & d.mask
	for d.slots[i] != 0 {
		i = (i + 1) & d.mask
	}
	return i
}

// remove deletes v and shifts later entries of its probe run back, so that
// lookups never stop early at the hole.
func (d *windowDedup) remove(v uint64) {
	i := hashKey(v) & d.mask
	for d.slots[i] != v {
		if d.slots[i] == 0 {
			return
		}
		i = (i + 1) & d.mask
	}
	for {
		d.slots[i] = 0
		j := i
		for {
			j = (j + 1) & d.mask
			if d.slots[j] == 0 {
				return
			}
			home := hashKey(d.slots[j]) & d.mask
			// move slots[j] into the hole at i unless its home lies
			// cyclically in (i, j]
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				d.slots[i] = d.slots[j]
				i = j
				break
			}
		}
	}
}

// bitmapDedup remembers every target exactly, one bit per target of the
// space, in 8 KiB pages allocated on first use.
type bitmapDedup struct {
	pages map[uint64]*[1024]uint64
}

func newBitmapDedup() *bitmapDedup { return &bitmapDedup{pages: map[uint64]*[1024]uint64{}} }

func (d *bitmapDedup) seen(key uint64) bool {
	pg := d.pages[key>>16]
	if pg == nil {
		pg = new([1024]uint64)
		d.pages[key>>16] = pg
	}
	w, bit := (key>>6)&1023, uint64(1)<<(key&63)
	if pg[w]&bit != 0 {
		return true
	}
	pg[w] |= bit
	return false
}
