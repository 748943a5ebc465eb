package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/exclusion"
	"github.com/vantagehq/vantage/target"
)

// fakeListServer implements the server's side of GET /api/v1/exclusions:
// the list at once when newer than after (or without after), otherwise
// the next version or, after wait, the current one.
type fakeListServer struct {
	mu      sync.Mutex
	list    *exclusion.List
	changed chan struct{}
	mode    string // "", "fail" (503), "hang" (never answers)
	polls   int
	keys    []string
}

func newFakeListServer(t *testing.T) (*fakeListServer, *httptest.Server) {
	f := &fakeListServer{list: &exclusion.List{Entries: []exclusion.Entry{}}, changed: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeListServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/exclusions" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.polls++
	f.keys = append(f.keys, r.Header.Get("Authorization"))
	mode, l, changed := f.mode, f.list, f.changed
	f.mu.Unlock()
	switch mode {
	case "fail":
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"the bus is down"}`))
		return
	case "hang":
		<-r.Context().Done()
		return
	case "unauthorized":
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"this key has no scan scope"}`))
		return
	}
	if a := r.URL.Query().Get("after"); a != "" {
		after, _ := strconv.ParseUint(a, 10, 64)
		wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
		if err != nil {
			http.Error(w, "bad wait", http.StatusBadRequest)
			return
		}
		if l.Version <= after {
			select {
			case <-changed:
			case <-time.After(wait):
			case <-r.Context().Done():
				return
			}
			f.mu.Lock()
			l = f.list
			f.mu.Unlock()
		}
	}
	json.NewEncoder(w).Encode(l)
}

func (f *fakeListServer) publish(cidrs ...string) *exclusion.List {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := &exclusion.List{Version: f.list.Version + 1, Updated: time.Now().UTC(), Entries: append([]exclusion.Entry(nil), f.list.Entries...)}
	var ps []netip.Prefix
	for _, c := range cidrs {
		ps = append(ps, netip.MustParsePrefix(c))
	}
	next.Add(ps, "test", "req-1", time.Now())
	f.list = next
	close(f.changed)
	f.changed = make(chan struct{})
	return next
}

func (f *fakeListServer) setMode(m string) {
	f.mu.Lock()
	f.mode = m
	f.mu.Unlock()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLog() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func addr(s string) uint32 { return target.AddrTo(netip.MustParseAddr(s)) }

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, timeout)
	return 0
}

// The follower loads the list, applies each new version within
// milliseconds of the server publishing it, and logs it.
func TestFollowerHTTP(t *testing.T) {
	fs, srv := newFakeListServer(t)
	fs.publish("198.51.100.0/24")
	log, logBuf := testLog()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f, err := loadExclusions(ctx, newHTTPSource(srv.URL, "k1", 5*time.Minute), 5*time.Minute, log)
	if err != nil {
		t.Fatal(err)
	}
	if f.live.Version() != 1 || f.live.Allowed(addr("198.51.100.7")) || !f.live.Allowed(addr("198.51.101.7")) {
		t.Fatalf("first list not in force: version %d", f.live.Version())
	}
	if ls := f.labeled(); len(ls) != 1 || ls[0].Range != target.RangeOf(netip.MustParsePrefix("198.51.100.0/24")) || !strings.Contains(ls[0].Reason, "version 1") {
		t.Fatalf("labeled = %+v", ls)
	}
	done := make(chan struct{})
	go func() { defer close(done); f.run(ctx) }()

	time.Sleep(50 * time.Millisecond) // the poll is waiting
	start := time.Now()
	fs.publish("203.0.113.0/25", "2001:db8::/32")
	took := waitUntil(t, 2*time.Second, "version 2 applied", func() bool { return f.live.Version() == 2 })
	t.Logf("version 2 applied %v after it was published", took)
	if took > 500*time.Millisecond {
		t.Errorf("applying took %v: the long poll should answer at once", took)
	}
	if f.live.Allowed(addr("203.0.113.5")) || !f.live.Allowed(addr("203.0.113.200")) || f.live.Allowed(addr("198.51.100.1")) {
		t.Fatal("version 2 not in force")
	}
	_ = start
	waitUntil(t, time.Second, "the log line", func() bool {
		return strings.Contains(logBuf.String(), "exclusion list version 2 applied: 3 ranges")
	})
	cancel()
	<-done
	select {
	case <-f.live.Stopped():
		t.Fatal("the scan was stopped although the list was current")
	default:
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, k := range fs.keys {
		if k != "Bearer k1" {
			t.Fatalf("Authorization %q", k)
		}
	}
}

// A source that fails, or stops answering, stops the scan once the copy
// has not been confirmed for maxAge: not before, and not much later.
func TestFollowerFailsClosed(t *testing.T) {
	for _, mode := range []string{"fail", "hang"} {
		t.Run(mode, func(t *testing.T) {
			fs, srv := newFakeListServer(t)
			maxAge := 600 * time.Millisecond
			log, logBuf := testLog()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f, err := loadExclusions(ctx, newHTTPSource(srv.URL, "", maxAge), maxAge, log)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); f.run(ctx) }()
			// confirmed for a while: polls answer at least every maxAge/3
			for i := 0; i < 3; i++ {
				time.Sleep(200 * time.Millisecond)
				fs.publish("192.0.2." + strconv.Itoa(i*8) + "/29")
			}
			waitUntil(t, time.Second, "version 3", func() bool { return f.live.Version() == 3 })
			f.mu.Lock()
			last := f.confirmed
			f.mu.Unlock()
			fs.setMode(mode)
			<-f.live.Stopped()
			f.mu.Lock()
			if f.confirmed.After(last) { // a poll answered between the read above and the switch
				last = f.confirmed
			}
			f.mu.Unlock()
			stale := time.Since(last)
			t.Logf("%s: stopped %v after the last confirmation (bound %v): %v", mode, stale, maxAge, f.live.Err())
			if stale < maxAge || stale > maxAge+300*time.Millisecond {
				t.Errorf("stopped %v after the last confirmation, want just after %v", stale, maxAge)
			}
			msg := f.live.Err().Error()
			want := "no answer from"
			if mode == "fail" {
				want = "server unreachable: 503 Service Unavailable: the bus is down"
			}
			if !strings.Contains(msg, "exclusion list not confirmed for 600ms") || !strings.Contains(msg, want) || !strings.Contains(msg, "fail closed") {
				t.Errorf("error %q lacks the reason %q", msg, want)
			}
			if !strings.Contains(logBuf.String(), "level=ERROR") {
				t.Errorf("no error logged:\n%s", logBuf.String())
			}
			if f.live.Allowed(addr("198.18.0.1")) {
				t.Error("a stopped scan still allows probes")
			}
			cancel()
			<-done
		})
	}
}

// Without the list, no scan: an absent server, a refusing one, a bad list.
func TestLoadExclusionsRefuses(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	absent := "http://" + ln.Addr().String()
	ln.Close()
	fs, srv := newFakeListServer(t)
	fs.setMode("unauthorized")
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"version":0,"entries":[{"prefix":"10.0.0.1/8"}]}`))
	}))
	defer bad.Close()
	for _, c := range []struct{ url, want string }{
		{absent, "connection refused"},
		{srv.URL, "401 Unauthorized: this key has no scan scope"},
		{bad.URL, "exclusion list:"},
	} {
		log, _ := testLog()
		_, err := loadExclusions(context.Background(), newHTTPSource(c.url, "", time.Minute), time.Minute, log)
		if err == nil || !strings.Contains(err.Error(), "cannot load the exclusion list from "+c.url) ||
			!strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "not scanning (fail closed)") {
			t.Errorf("%s: error %v, want the reason %q and fail closed", c.url, err, c.want)
		}
	}
}

// The scan command itself: the list's ranges leave the target space (the
// dry run shows it), and a server that is not there means no scan.
func TestScanObeysServerList(t *testing.T) {
	fs, srv := newFakeListServer(t)
	fs.publish("198.18.0.0/31")
	code, stdout, stderr := runCLI(t, "", "scan", "--dry-run", "-M", "icmp_echo", "--seed", "1", "--allow-reserved", "198.18.0.0/15",
		"--server", srv.URL, "--key", "k", "198.18.0.0/30")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := strings.Fields(stdout); len(got) != 2 || strings.Contains(stdout, "198.18.0.0\n") || strings.Contains(stdout, "198.18.0.1\n") {
		t.Fatalf("dry run with 198.18.0.0/31 opted out printed %q", stdout)
	}
	if !strings.Contains(stderr, "obeying exclusion list version 1") || !strings.Contains(stderr, "skipping 2 target addresses excluded") {
		t.Errorf("stderr: %s", stderr)
	}
	// --exclusions-from: a scanner that only writes a file obeys it too
	code, stdout, _ = runCLI(t, "", "scan", "--dry-run", "-M", "icmp_echo", "--seed", "1", "--allow-reserved", "198.18.0.0/15",
		"--exclusions-from", srv.URL, "198.18.0.0/30")
	if code != 0 || len(strings.Fields(stdout)) != 2 {
		t.Fatalf("--exclusions-from: exit %d, %q", code, stdout)
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	absent := "http://" + ln.Addr().String()
	ln.Close()
	start := time.Now()
	code, stdout, stderr = runCLI(t, "", "scan", "--dry-run", "-M", "icmp_echo", "--allow-reserved", "198.18.0.0/15",
		"--server", absent, "198.18.0.0/30")
	if code == 0 || stdout != "" || !strings.Contains(stderr, "cannot load the exclusion list from "+absent) || !strings.Contains(stderr, "fail closed") {
		t.Fatalf("absent server: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	t.Logf("refused to start in %v: %s", time.Since(start), strings.TrimSpace(stderr))
	code, _, stderr = runCLI(t, "", "scan", "--dry-run", "-M", "icmp_echo", "--exclusions-max-age", "0s", "--server", srv.URL, "198.18.0.0/30")
	if code != ExitUsage || !strings.Contains(stderr, "--exclusions-max-age") {
		t.Fatalf("--exclusions-max-age 0: exit %d: %s", code, stderr)
	}
}

// The bus path: the list read from the bucket, new versions from the
// watch, and a bus that goes away stops the scan within the bound.
func TestFollowerBus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	server, err := bus.Open(ctx, bus.Config{Dir: t.TempDir(), Listen: listen}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	kv, err := server.KV(ctx, exclusion.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(cidr string) *exclusion.List {
		l, err := exclusion.Update(ctx, kv, time.Now, func(l *exclusion.List) error {
			l.Add([]netip.Prefix{netip.MustParsePrefix(cidr)}, "test", "", time.Now())
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	publish("198.51.100.0/24")

	maxAge := 2 * time.Second
	log, logBuf := testLog()
	src, err := newBusSource(ctx, "nats://"+listen, maxAge, log)
	if err != nil {
		t.Fatal(err)
	}
	f, err := loadExclusions(ctx, src, maxAge, log)
	if err != nil {
		t.Fatal(err)
	}
	if f.live.Version() != 1 || f.live.Allowed(addr("198.51.100.1")) {
		t.Fatal("first list from the bus not in force")
	}
	done := make(chan struct{})
	go func() { defer close(done); f.run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	publish("203.0.113.0/24")
	took := waitUntil(t, 2*time.Second, "version 2 from the watch", func() bool { return f.live.Version() == 2 })
	t.Logf("bus: version 2 applied %v after it was stored", took)
	if f.live.Allowed(addr("203.0.113.9")) {
		t.Fatal("version 2 not in force")
	}
	// heartbeats keep it fresh past the bound
	time.Sleep(maxAge + 500*time.Millisecond)
	select {
	case <-f.live.Stopped():
		t.Fatalf("stopped although the bus answers: %v\n%s", f.live.Err(), logBuf.String())
	default:
	}
	server.Close()
	gone := time.Now()
	select {
	case <-f.live.Stopped():
	case <-time.After(maxAge + 2*time.Second):
		t.Fatalf("still scanning %v after the bus went away", time.Since(gone))
	}
	t.Logf("bus gone: stopped %v later: %v", time.Since(gone), f.live.Err())
	if !strings.Contains(f.live.Err().Error(), "not confirmed for 2s") {
		t.Errorf("error: %v", f.live.Err())
	}
	cancel()
	<-done
	closing := time.Now()
	src.Close()
	t.Logf("closing the bus connection took %v", time.Since(closing))
}

// Whatever list a source sends, once it decodes, the send path's lookup
// agrees with the list itself on every IPv4 address probed (the range
// edges and a few others); a list that does not decode is refused whole.
func FuzzListBlocklist(f *testing.F) {
	f.Add([]byte(`{"version":3,"updated":"2026-11-27T15:00:00Z","entries":[{"prefix":"198.19.0.0/17"},{"prefix":"2001:db8::/32"},{"prefix":"0.0.0.0/0"}]}`), uint32(0xc6130001))
	f.Add([]byte(`{"version":1,"entries":[{"prefix":"10.0.0.0/8"},{"prefix":"10.1.0.0/16"},{"prefix":"255.255.255.255/32"}]}`), uint32(0x0a010203))
	f.Add([]byte(`{"version":0,"entries":[]}`), uint32(1))
	f.Fuzz(func(t *testing.T, body []byte, probe uint32) {
		l, err := exclusion.Decode(body)
		if err != nil {
			return
		}
		bl := blocklistOf(l)
		check := func(a uint32) {
			if got, want := bl.Contains(a), l.Contains(target.AddrFrom(a)); got != want {
				t.Fatalf("blocklist says %v for %s, the list %v", got, target.AddrFrom(a), want)
			}
		}
		check(probe)
		for _, e := range l.Entries {
			if !e.Prefix.Addr().Is4() {
				continue
			}
			r := target.RangeOf(e.Prefix)
			for _, a := range []uint32{r.Lo - 1, r.Lo, r.Hi, r.Hi + 1} {
				check(a)
			}
		}
	})
}
