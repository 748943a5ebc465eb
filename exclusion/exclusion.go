// Package exclusion is the versioned list of address ranges that no
// scanner may touch: approved opt-out requests and the operator's own
// entries. The server writes it to the bus (key-value bucket "exclusions",
// key "list"); every scanner reads it before its first packet and follows
// its new versions, directly from the bus or from the server's API
// (GET /api/v1/exclusions, a long poll). A scanner that cannot load the
// list, or whose copy has not been confirmed current for too long, stops:
// it fails closed.
//
// Every change makes a new version (one more than the last), written with a
// compare-and-swap on the bucket's revision, so two servers never lose each
// other's changes.
package exclusion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket and Key locate the list on the bus.
const (
	Bucket = "exclusions"
	Key    = "list"
)

// MaxEntries bounds the list (and what Decode accepts).
const MaxEntries = 100_000

// Entry is one excluded range.
type Entry struct {
	Prefix  netip.Prefix `json:"prefix"`
	Reason  string       `json:"reason,omitempty"`
	Request string       `json:"request,omitempty"` // the opt-out request behind it, if any
	Added   time.Time    `json:"added"`
}

// List is one version of the exclusion list.
type List struct {
	Version uint64    `json:"version"`
	Updated time.Time `json:"updated"`
	Entries []Entry   `json:"entries"`
}

// Contains reports whether a lies in an excluded range.
func (l *List) Contains(a netip.Addr) bool {
	if l == nil {
		return false
	}
	a = a.Unmap()
	for _, e := range l.Entries {
		if e.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

// Prefixes returns the excluded ranges.
func (l *List) Prefixes() []netip.Prefix {
	if l == nil {
		return nil
	}
	out := make([]netip.Prefix, len(l.Entries))
	for i, e := range l.Entries {
		out[i] = e.Prefix
	}
	return out
}

// Encode is the list's stored form (JSON).
func (l *List) Encode() []byte {
	b, _ := json.Marshal(l) // a List always marshals
	return b
}

// Decode reads a stored list and checks it: valid prefixes (masked), at
// most MaxEntries, and no version 0 with entries.
func Decode(b []byte) (*List, error) {
	var l List
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("exclusion list: %w", err)
	}
	if len(l.Entries) > MaxEntries {
		return nil, fmt.Errorf("exclusion list: %d entries, at most %d", len(l.Entries), MaxEntries)
	}
	if l.Version == 0 && len(l.Entries) > 0 {
		return nil, errors.New("exclusion list: entries in version 0")
	}
	for i, e := range l.Entries {
		if !e.Prefix.IsValid() {
			return nil, fmt.Errorf("exclusion list: entry %d has no valid prefix", i)
		}
		if e.Prefix.Addr().Is4In6() {
			return nil, fmt.Errorf("exclusion list: entry %d: %s is IPv4 in IPv6: write it as IPv4", i, e.Prefix)
		}
		if e.Prefix != e.Prefix.Masked() {
			return nil, fmt.Errorf("exclusion list: entry %d: %s has host bits set", i, e.Prefix)
		}
	}
	return &l, nil
}

// Load reads the current list from the bucket; a bucket without one holds
// the empty list, version 0. rev is the bucket revision, for Update.
func Load(ctx context.Context, kv jetstream.KeyValue) (l *List, rev uint64, err error) {
	e, err := kv.Get(ctx, Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &List{Entries: []Entry{}}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load the exclusion list: %w", err)
	}
	l, err = Decode(e.Value())
	return l, e.Revision(), err
}

// Update applies change to the current list and stores the result as the
// next version, retrying when another writer got there first. A change
// that returns an error stores nothing. now stamps the new version.
func Update(ctx context.Context, kv jetstream.KeyValue, now func() time.Time, change func(*List) error) (*List, error) {
	for attempt := 0; ; attempt++ {
		cur, rev, err := Load(ctx, kv)
		if err != nil {
			return nil, err
		}
		next := &List{Version: cur.Version + 1, Updated: now().UTC(), Entries: slices.Clone(cur.Entries)}
		if err := change(next); err != nil {
			return nil, err
		}
		if len(next.Entries) > MaxEntries {
			return nil, fmt.Errorf("exclusion list: %d entries, at most %d", len(next.Entries), MaxEntries)
		}
		if rev == 0 {
			_, err = kv.Create(ctx, Key, next.Encode())
		} else {
			_, err = kv.Update(ctx, Key, next.Encode(), rev)
		}
		if err == nil {
			return next, nil
		}
		if attempt >= 20 || ctx.Err() != nil {
			return nil, fmt.Errorf("store exclusion list version %d: %w", next.Version, err)
		}
	}
}

// Watch calls fn with the current list and then with every new version
// until ctx ends. It returns the error that stopped it (nil when ctx ended).
func Watch(ctx context.Context, kv jetstream.KeyValue, fn func(*List)) error {
	w, err := kv.Watch(ctx, Key)
	if err != nil {
		return fmt.Errorf("watch the exclusion list: %w", err)
	}
	defer w.Stop()
	sawInitial := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("watch the exclusion list: the bus closed the watch")
			}
			if e == nil { // the end of the initial values
				if !sawInitial {
					fn(&List{Entries: []Entry{}})
				}
				sawInitial = true
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			l, err := Decode(e.Value())
			if err != nil {
				return err
			}
			sawInitial = true
			fn(l)
		}
	}
}

// Add puts prefixes on the list with a reason, skipping any already
// covered by an entry; it reports what it added.
func (l *List) Add(prefixes []netip.Prefix, reason, request string, now time.Time) []netip.Prefix {
	var added []netip.Prefix
	for _, p := range prefixes {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		covered := false
		for _, e := range l.Entries {
			if e.Prefix.Bits() <= p.Bits() && e.Prefix.Contains(p.Addr()) {
				covered = true
				break
			}
		}
		if covered {
			continue
		}
		// a wider new range replaces the narrower ones it covers
		l.Entries = slices.DeleteFunc(l.Entries, func(e Entry) bool {
			return p.Bits() <= e.Prefix.Bits() && p.Contains(e.Prefix.Addr())
		})
		l.Entries = append(l.Entries, Entry{Prefix: p, Reason: reason, Request: request, Added: now.UTC()})
		added = append(added, p)
	}
	return added
}

// Remove takes every entry of a request (or, with request "", the entries
// equal to the prefixes) off the list; it reports how many went.
func (l *List) Remove(request string, prefixes []netip.Prefix) int {
	n := len(l.Entries)
	l.Entries = slices.DeleteFunc(l.Entries, func(e Entry) bool {
		if request != "" {
			return e.Request == request
		}
		return slices.Contains(prefixes, e.Prefix)
	})
	return n - len(l.Entries)
}

// Tracker keeps the current list as the bus changes it, for readers that
// want it at once (the API's lookups) or when it changes (long polls).
type Tracker struct {
	mu      sync.Mutex
	cur     *List
	changed chan struct{} // closed and replaced at every new version
	ready   chan struct{} // closed once the first list is known
}

// NewTracker returns a tracker that knows no list yet.
func NewTracker() *Tracker {
	return &Tracker{changed: make(chan struct{}), ready: make(chan struct{})}
}

// Run follows the bucket until ctx ends, retrying a watch that fails.
func (t *Tracker) Run(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	for ctx.Err() == nil {
		err := Watch(ctx, kv, t.Set)
		if err != nil && ctx.Err() == nil {
			log.Warn("exclusion list watch", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// Set makes l the current list if it is newer than the one held.
func (t *Tracker) Set(l *List) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur != nil && l.Version <= t.cur.Version {
		return
	}
	if t.cur == nil {
		close(t.ready)
	}
	t.cur = l
	close(t.changed)
	t.changed = make(chan struct{})
}

// Current is the list held now (nil before the first one is known).
func (t *Tracker) Current() *List {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur
}

// Wait returns the first list with a version above after, or the current
// one when ctx ends first (nil if none is known yet).
func (t *Tracker) Wait(ctx context.Context, after uint64) *List {
	for {
		t.mu.Lock()
		cur, changed := t.cur, t.changed
		t.mu.Unlock()
		if cur != nil && cur.Version > after {
			return cur
		}
		select {
		case <-ctx.Done():
			return cur
		case <-changed:
		}
	}
}

// Ready waits until the first list is known.
func (t *Tracker) Ready(ctx context.Context) error {
	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("exclusion list not loaded: %w", ctx.Err())
	}
}
