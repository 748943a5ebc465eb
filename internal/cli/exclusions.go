package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/exclusion"
	"github.com/vantagehq/vantage/scan"
	"github.com/vantagehq/vantage/target"
)

// A scanner that publishes to the platform obeys the platform's exclusion
// list (approved opt-outs): it loads the list before its first packet,
// follows every new version while it scans, and stops (fail closed) when
// it cannot confirm that its copy is current.

// listSource is where the exclusion list comes from: the server's API (a
// long poll) or the bus's key-value bucket (a watch).
type listSource interface {
	String() string
	// Load returns the current list.
	Load(ctx context.Context) (*exclusion.List, error)
	// Follow calls confirm with every answer (a new version, or the same
	// one confirmed current) and fail with every error, retrying, until
	// ctx ends. after gives the version held.
	Follow(ctx context.Context, after func() uint64, confirm func(*exclusion.List), fail func(error))
	Close()
}

// httpSource long-polls GET /api/v1/exclusions.
type httpSource struct {
	base, key string
	wait      time.Duration // how long the server may hold a poll
	client    *http.Client
}

func newHTTPSource(base, key string, maxAge time.Duration) *httpSource {
	// an answer confirms the copy, so polls must come back well within
	// the bound; the server holds them at most a minute
	wait := min(max(maxAge/3, 100*time.Millisecond), 30*time.Second).Truncate(time.Millisecond)
	return &httpSource{
		base: strings.TrimRight(base, "/"), key: key, wait: wait,
		// the poll's own deadline: past it the server is not answering
		client: &http.Client{Timeout: wait + 10*time.Second},
	}
}

func (h *httpSource) String() string { return h.base }

func (h *httpSource) Close() { h.client.CloseIdleConnections() }

// get asks for the list: at once without after, or the next version
// after *after (at most h.wait later, the current one otherwise).
func (h *httpSource) get(ctx context.Context, after *uint64) (*exclusion.List, error) {
	q := url.Values{}
	if after != nil {
		q.Set("after", fmt.Sprint(*after))
		q.Set("wait", h.wait.String())
	}
	u := h.base + "/api/v1/exclusions"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if h.key != "" {
		req.Header.Set("Authorization", "Bearer "+h.key)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, msg)
	}
	return exclusion.Decode(body)
}

func (h *httpSource) Load(ctx context.Context) (*exclusion.List, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return h.get(ctx, nil)
}

func (h *httpSource) Follow(ctx context.Context, after func() uint64, confirm func(*exclusion.List), fail func(error)) {
	backoff := retryBackoff()
	for ctx.Err() == nil {
		v := after()
		l, err := h.get(ctx, &v)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fail(err)
			sleepCtx(ctx, backoff())
			continue
		}
		backoff = retryBackoff()
		confirm(l)
	}
}

// busSource watches the bucket and reads it again every heartbeat (a
// watch says nothing while nothing changes, so reads confirm the copy).
type busSource struct {
	url       string
	b         *bus.Bus
	heartbeat time.Duration
	log       *slog.Logger
}

func newBusSource(ctx context.Context, natsURL string, maxAge time.Duration, log *slog.Logger) (*busSource, error) {
	b, err := bus.Open(ctx, natsClient(natsURL), log)
	if err != nil {
		return nil, err
	}
	return &busSource{url: natsURL, b: b, heartbeat: min(max(maxAge/4, 250*time.Millisecond), 30*time.Second), log: log}, nil
}

func (s *busSource) String() string { return s.url }

func (s *busSource) Close() { s.b.Close() }

func (s *busSource) load(ctx context.Context) (*exclusion.List, error) {
	ctx, cancel := context.WithTimeout(ctx, min(s.heartbeat, 10*time.Second))
	defer cancel()
	kv, err := s.b.KV(ctx, exclusion.Bucket)
	if err != nil {
		return nil, fmt.Errorf("the %s bucket: %w", exclusion.Bucket, err)
	}
	l, _, err := exclusion.Load(ctx, kv)
	return l, err
}

func (s *busSource) Load(ctx context.Context) (*exclusion.List, error) { return s.load(ctx) }

func (s *busSource) Follow(ctx context.Context, _ func() uint64, confirm func(*exclusion.List), fail func(error)) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // new versions, as soon as the bus has them
		defer wg.Done()
		backoff := retryBackoff()
		for ctx.Err() == nil {
			kv, err := s.b.KV(ctx, exclusion.Bucket)
			if err == nil {
				err = exclusion.Watch(ctx, kv, confirm)
			}
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				fail(err)
			}
			sleepCtx(ctx, backoff())
		}
	}()
	t := time.NewTicker(s.heartbeat) // the heartbeat: a read confirms the copy
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
			if l, err := s.load(ctx); err != nil {
				if ctx.Err() == nil {
					fail(err)
				}
			} else {
				confirm(l)
			}
		}
	}
}

// retryBackoff returns successive waits between failed attempts: 250 ms
// doubling to 4 s.
func retryBackoff() func() time.Duration {
	d := 125 * time.Millisecond
	return func() time.Duration {
		d = min(2*d, 4*time.Second)
		return d
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// listFollower keeps a scan's Live list current from a source and stops
// the scan when the copy has not been confirmed for maxAge.
type listFollower struct {
	src    listSource
	live   *scan.Live
	maxAge time.Duration
	log    *slog.Logger
	status io.Writer // operator-facing lines; nil = quiet
	now    func() time.Time

	mu        sync.Mutex
	cur       *exclusion.List
	confirmed time.Time // the last answer that confirmed cur current
	lastErr   error     // the last error since then
	confirmCh chan struct{}

	applyMu sync.Mutex // one Apply at a time, in version order
}

// loadExclusions loads the list before the scan: an error means the scan
// must not start.
func loadExclusions(ctx context.Context, src listSource, maxAge time.Duration, log *slog.Logger) (*listFollower, error) {
	l, err := src.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot load the exclusion list from %s: %v; not scanning (fail closed)", src, err)
	}
	f := &listFollower{src: src, live: scan.NewLive(), maxAge: maxAge, log: log, now: time.Now, cur: l, confirmCh: make(chan struct{}, 1)}
	f.confirmed = f.now()
	if _, err := f.live.Apply(ctx, l.Version, blocklistOf(l)); err != nil {
		return nil, err
	}
	log.Info(fmt.Sprintf("exclusion list version %d loaded: %d ranges", l.Version, len(l.Entries)),
		"source", src.String(), "version", l.Version, "ranges", len(l.Entries), "updated", l.Updated)
	return f, nil
}

// labeled is the first list as exclusions of the target policy, so that
// the target space (and --dry-run) leaves them out from the start.
func (f *listFollower) labeled() []target.Labeled {
	var out []target.Labeled
	for _, e := range f.cur.Entries {
		if !e.Prefix.Addr().Is4() {
			continue // the scanner scans IPv4 only
		}
		reason := fmt.Sprintf("exclusion list version %d", f.cur.Version)
		if e.Request != "" {
			reason += ", opt-out " + e.Request
		}
		out = append(out, target.Labeled{Range: target.RangeOf(e.Prefix), Reason: reason})
	}
	return out
}

// blocklistOf is the send path's lookup for a list's IPv4 ranges.
func blocklistOf(l *exclusion.List) *target.Blocklist {
	s := &target.Set{}
	var rs []target.Range
	for _, e := range l.Entries {
		if e.Prefix.Addr().Is4() {
			rs = append(rs, target.RangeOf(e.Prefix))
		}
	}
	s.AddRanges(rs)
	return target.NewBlocklist(s)
}

// run follows the list and watches its age until ctx ends or the scan
// is stopped; it returns when both goroutines have.
func (f *listFollower) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		f.watchdog(ctx)
	}()
	f.src.Follow(ctx, f.version, f.confirm, f.fail)
	cancel()
	wg.Wait()
}

func (f *listFollower) version() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur.Version
}

// confirm takes an answer from the source: the copy is current, and a
// newer version is applied before the next packet.
func (f *listFollower) confirm(l *exclusion.List) {
	received := f.now()
	f.mu.Lock()
	f.confirmed, f.lastErr = received, nil
	newer := l.Version > f.cur.Version
	older := l.Version < f.cur.Version
	if newer {
		f.cur = l
	}
	f.mu.Unlock()
	select {
	case f.confirmCh <- struct{}{}:
	default:
	}
	if older {
		// a server restored from an older state, or a second server
		// behind: keep the newer list (it excludes what was approved)
		f.log.Warn("the exclusion list source answered an older version; keeping the newer one",
			"source", f.src.String(), "answered", l.Version, "held", f.version())
	}
	if !newer {
		return
	}
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	if l.Version < f.live.Version() {
		return // a newer one was applied meanwhile
	}
	bl := blocklistOf(l)
	at, err := f.live.Apply(context.Background(), l.Version, bl)
	if err != nil {
		return // scanning has stopped
	}
	msg := fmt.Sprintf("exclusion list version %d applied: %d ranges, %d ms after it was published", l.Version, len(l.Entries), at.Sub(l.Updated).Milliseconds())
	if f.status != nil {
		fmt.Fprintf(f.status, "vantage: %s\n", msg)
	}
	f.log.Info(msg, "version", l.Version, "ranges", len(l.Entries), "addresses", bl.Size(),
		"published", l.Updated.UTC().Format(time.RFC3339Nano), "received", received.UTC().Format(time.RFC3339Nano),
		"applied", at.UTC().Format(time.RFC3339Nano), "after_publish_ms", float64(at.Sub(l.Updated).Microseconds())/1000,
		"after_receipt_ms", float64(at.Sub(received).Microseconds())/1000)
}

func (f *listFollower) fail(err error) {
	f.mu.Lock()
	first := f.lastErr == nil
	f.lastErr = err
	f.mu.Unlock()
	if first {
		f.log.Warn("cannot confirm the exclusion list (retrying)", "source", f.src.String(), "err", err)
	}
}

// watchdog stops the scan when the copy has not been confirmed current
// for maxAge: exactly at the deadline, not at the next tick.
func (f *listFollower) watchdog(ctx context.Context) {
	t := time.NewTimer(f.maxAge)
	defer t.Stop()
	for {
		f.mu.Lock()
		left := f.confirmed.Add(f.maxAge).Sub(f.now())
		lastErr := f.lastErr
		f.mu.Unlock()
		if left <= 0 {
			why := "no answer from " + f.src.String()
			if lastErr != nil {
				why = "source unreachable: " + lastErr.Error()
				if _, ok := f.src.(*httpSource); ok {
					why = "server unreachable: " + lastErr.Error()
				}
			}
			err := fmt.Errorf("exclusion list not confirmed for %v (%s): stopped scanning (fail closed)", f.maxAge, why)
			f.log.Error(err.Error(), "source", f.src.String(), "version", f.version())
			f.live.Stop(ctx, err)
			return
		}
		t.Reset(left)
		select {
		case <-ctx.Done():
			return
		case <-f.live.Stopped():
			return
		case <-t.C:
		case <-f.confirmCh:
		}
	}
}

// exclusionSource picks where a scan's list comes from: --exclusions-from,
// else --server, else --nats; nil when the scan publishes nowhere (a
// standalone scan has no list).
func (f *scanFlags) exclusionSource(ctx context.Context, log *slog.Logger) (listSource, error) {
	switch {
	case f.exclusionsFrom != "":
		return newHTTPSource(f.exclusionsFrom, f.key, f.exclusionsMaxAge), nil
	case f.server != "":
		return newHTTPSource(f.server, f.key, f.exclusionsMaxAge), nil
	case f.nats != "":
		src, err := newBusSource(ctx, f.nats, f.exclusionsMaxAge, log)
		if err != nil {
			return nil, fmt.Errorf("cannot load the exclusion list from %s: %v; not scanning (fail closed)", f.nats, err)
		}
		return src, nil
	}
	return nil, nil
}
