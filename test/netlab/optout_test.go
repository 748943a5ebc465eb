package netlab_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/lab"
	"github.com/vantagehq/vantage/internal/testbin"
)

// The opt-out proofs of issue 7, scanner side: an opt-out approved in the
// middle of a slow scan of the farm stops every packet to its range from
// the moment the scanner applies the new list version (captured where the
// packets arrive, on nl-net's side of the scanner's link), and a scanner
// without a current list does not scan (fail closed).

// syn is one SYN seen on the wire.
type syn struct {
	at  time.Time
	dst netip.Addr
}

// capture is tcpdump on nl-net's end of the scanner's link.
type capture struct {
	cmd    *exec.Cmd
	file   string
	stderr syncBuf
}

// startCapture records every SYN from the scanner to the farm.
func startCapture(t *testing.T) *capture {
	t.Helper()
	c := &capture{file: filepath.Join(t.TempDir(), "syn.pcap")}
	c.cmd = lab.Command(context.Background(), lab.NSNet, "tcpdump", "-n", "-i", "net-scan", "-B", "16384", "-w", c.file,
		"tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0 and src host "+lab.ScanIP+" and dst net "+lab.Farm)
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.stderr.String(), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump not listening after 10 s: %s", c.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

var tcpdumpLine = regexp.MustCompile(`^(\d+)\.(\d+) IP \S+ > (\d+\.\d+\.\d+\.\d+)\.\d+:`)

// stop ends the capture and returns the SYNs in arrival order; a capture
// that lost packets fails the test (it could not prove anything).
func (c *capture) stop(t *testing.T) []syn {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGINT)
	c.cmd.Wait()
	if m := regexp.MustCompile(`(\d+) packets dropped by kernel`).FindStringSubmatch(c.stderr.String()); m == nil || m[1] != "0" {
		t.Fatalf("the capture lost packets or did not report: %s", c.stderr.String())
	}
	out, err := exec.Command("tcpdump", "-tt", "-n", "-r", c.file).Output()
	if err != nil {
		t.Fatalf("tcpdump -r: %v", err)
	}
	var syns []syn
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := tcpdumpLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("unexpected tcpdump line %q", sc.Text())
		}
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		frac := m[2] + strings.Repeat("0", 9-len(m[2]))
		nsec, _ := strconv.ParseInt(frac, 10, 64)
		syns = append(syns, syn{time.Unix(sec, nsec), netip.MustParseAddr(m[3])})
	}
	return syns
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bgScan is a vantage scan running in nl-scan while the test acts.
type bgScan struct {
	cmd       *exec.Cmd
	out, meta string
	mu        sync.Mutex
	lines     []string
	done      chan struct{}
	code      int
}

func startScan(t *testing.T, args ...string) *bgScan {
	t.Helper()
	dir := t.TempDir()
	s := &bgScan{out: filepath.Join(dir, "out.json"), meta: filepath.Join(dir, "meta.json"), done: make(chan struct{})}
	s.cmd = lab.Command(context.Background(), lab.NSScan, binary, append([]string{"scan", "-o", s.out, "--metadata", s.meta}, args...)...)
	pr, pw := io.Pipe()
	s.cmd.Stderr = pw
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
	}()
	go func() {
		err := s.cmd.Wait()
		pw.Close()
		if ee, ok := err.(*exec.ExitError); ok {
			s.code = ee.ExitCode()
		} else if err != nil {
			s.code = -1
		}
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// line waits for a stderr line containing substr.
func (s *bgScan) line(t *testing.T, substr string, timeout time.Duration) string {
	t.Helper()
	find := func() (string, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, l := range s.lines {
			if strings.Contains(l, substr) {
				return l, true
			}
		}
		return "", false
	}
	for deadline := time.Now().Add(timeout); ; time.Sleep(5 * time.Millisecond) {
		ended := false
		select {
		case <-s.done:
			ended = true
			time.Sleep(50 * time.Millisecond) // the last lines
		default:
		}
		if l, ok := find(); ok {
			return l
		}
		if ended {
			t.Fatalf("the scan ended (exit %d) without a line containing %q:\n%s", s.code, substr, s.stderr())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line containing %q after %v:\n%s", substr, timeout, s.stderr())
		}
	}
}

func (s *bgScan) stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

func (s *bgScan) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		t.Fatalf("the scan did not end within %v:\n%s", timeout, s.stderr())
	}
}

type optoutMeta struct {
	summary
	StopError        string  `json:"stop_error"`
	ExclusionVersion *uint64 `json:"exclusion_list_version"`
	ExcludedInFlight uint64  `json:"excluded_in_flight"`
}

func (s *bgScan) metadata(t *testing.T) (m optoutMeta, results int) {
	t.Helper()
	b, err := os.ReadFile(s.meta)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(s.out)
	return m, bytes.Count(out, []byte("\n"))
}

// attr reads a key=value attribute of a slog text line.
func attr(line, key string) string {
	m := regexp.MustCompile(`(?:^| )` + key + `=("(?:[^"\\]|\\.)*"|\S+)`).FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	if v, err := strconv.Unquote(m[1]); err == nil {
		return v
	}
	return m[1]
}

func attrTime(t *testing.T, line, key string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, attr(line, key))
	if err != nil {
		t.Fatalf("%s= in %q: %v", key, line, err)
	}
	return v
}

// approve adds and approves an opt-out through the API, from inside nl-scan
// where the server listens; it returns the decision's time.
func approve(t *testing.T, srv *testbin.Server, cidr string) (decided time.Time, version uint64) {
	t.Helper()
	body := fmt.Sprintf(`{"cidrs":[%q],"contact":"lab@example.org","reason":"lab test","approve":true}`, cidr)
	out, err := lab.Command(context.Background(), lab.NSScan, "curl", "-sS", "--fail-with-body", "-X", "POST",
		"-H", "Authorization: Bearer "+srv.Key, "-H", "Content-Type: application/json", "-d", body, srv.URL+"/api/v1/optouts").Output()
	if err != nil {
		t.Fatalf("approve %s: %v: %s", cidr, err, out)
	}
	var a struct {
		State   string    `json:"state"`
		Version uint64    `json:"version"`
		Decided time.Time `json:"decided"`
	}
	if err := json.Unmarshal(out, &a); err != nil || a.State != "approved" || a.Version == 0 {
		t.Fatalf("approve %s: answer %s (%v)", cidr, out, err)
	}
	return a.Decided, a.Version
}

// A long, slow scan of the farm (port 80 at 3,000 probes/s, about 44 s)
// publishing to a server; after 10 s an opt-out for 198.19.0.0/17 (a
// quarter of the farm) is approved through the API. From the moment the
// scanner says it applied the new version, not one SYN may reach the
// slice; the rest of the farm is still scanned.
func TestOptOutMidScan(t *testing.T) {
	needLab(t)
	slice := netip.MustParsePrefix("198.19.0.0/17")
	srv := testbin.StartServer(t, testbin.ServerOptions{Namespace: lab.NSScan})
	capt := startCapture(t)
	sc := startScan(t, append([]string{"--log-level", "info", "-p", "80", "-r", "3000", "--server", srv.URL, "--key", srv.Key, "--status-interval", "5s"}, farmArgs...)...)
	sc.line(t, "obeying exclusion list version 0", 20*time.Second)
	time.Sleep(10 * time.Second)

	decided, version := approve(t, srv, slice.String())
	answered := time.Now()
	applied := sc.line(t, fmt.Sprintf("msg=\"exclusion list version %d applied", version), 10*time.Second)
	appliedAt := attrTime(t, applied, "applied")
	sc.wait(t, 2*time.Minute)
	syns := capt.stop(t)

	if sc.code != 0 {
		t.Fatalf("scan: exit %d:\n%s", sc.code, sc.stderr())
	}
	var before, gap, after, afterElsewhere int
	var lastInSlice time.Time
	for _, s := range syns {
		in := slice.Contains(s.dst)
		switch {
		case in && s.at.Before(decided):
			before++
			lastInSlice = s.at
		case in && !s.at.After(appliedAt):
			gap++
			lastInSlice = s.at
		case in:
			after++
			if after <= 5 {
				t.Errorf("SYN to %s at %s, after the scanner applied version %d at %s", s.dst, s.at.Format(time.RFC3339Nano), version, appliedAt.Format(time.RFC3339Nano))
			}
		case s.at.After(appliedAt):
			afterElsewhere++
		}
	}
	meta, results := sc.metadata(t)
	t.Logf("%s", applied)
	t.Logf("opt-out for %s approved at %s (the API answered %v later); the scanner applied version %d at %s: approval to effect %v",
		slice, decided.Format("15:04:05.000000"), answered.Sub(decided).Round(time.Microsecond), version,
		appliedAt.Format("15:04:05.000000"), appliedAt.Sub(decided).Round(time.Microsecond))
	t.Logf("SYNs to the slice: %d before the approval, %d between approval and application (the last %v before the application), %d after; %d SYNs to the rest of the farm after",
		before, gap, appliedAt.Sub(lastInSlice).Round(time.Microsecond), after, afterElsewhere)
	t.Logf("scan: %d probes sent, %d excluded in flight, list version %v at the end, %d results, %d SYNs captured",
		meta.Sent, meta.ExcludedInFlight, deref(meta.ExclusionVersion), results, len(syns))
	if after > 0 {
		t.Errorf("%d SYNs reached %s after the scanner applied the opt-out", after, slice)
	}
	if before == 0 || afterElsewhere == 0 {
		t.Errorf("the scan did not straddle the approval (before %d, after elsewhere %d): the test proves nothing", before, afterElsewhere)
	}
	if d := appliedAt.Sub(decided); d > time.Second {
		t.Errorf("approval to effect took %v, goal under 1 s", d)
	}
	if meta.ExclusionVersion == nil || *meta.ExclusionVersion != version || meta.ExcludedInFlight == 0 {
		t.Errorf("metadata: version %v, excluded in flight %d", deref(meta.ExclusionVersion), meta.ExcludedInFlight)
	}
	if meta.Sent+meta.ExcludedInFlight != lab.FarmSize || uint64(len(syns)) != meta.Sent {
		t.Errorf("sent %d + excluded %d != %d targets, or %d SYNs captured", meta.Sent, meta.ExcludedInFlight, lab.FarmSize, len(syns))
	}
}

func deref(p *uint64) any {
	if p == nil {
		return "none"
	}
	return *p
}

// Fail closed: a scanner whose server is not there does not start; a
// running scanner whose server dies, or whose polls the network drops,
// stops within --exclusions-max-age and says why, keeping what it found.
func TestOptOutFailClosed(t *testing.T) {
	needLab(t)
	t.Run("no server", func(t *testing.T) {
		capt := startCapture(t)
		start := time.Now()
		sc := startScan(t, append([]string{"-p", "80", "-r", "3000", "--server", "http://127.0.0.1:9", "--key", "k"}, farmArgs...)...)
		sc.wait(t, 30*time.Second)
		took := time.Since(start)
		syns := capt.stop(t)
		msg := sc.line(t, "cannot load the exclusion list", time.Second)
		t.Logf("refused in %v (exit %d): %s", took.Round(time.Millisecond), sc.code, msg)
		if sc.code == 0 || !strings.Contains(msg, "not scanning (fail closed)") {
			t.Errorf("exit %d: %s", sc.code, sc.stderr())
		}
		if len(syns) != 0 {
			t.Errorf("%d SYNs sent by a scanner that refused to start", len(syns))
		}
		if _, err := os.Stat(sc.meta); err == nil {
			t.Error("a scan that did not start wrote metadata")
		}
	})
	for _, how := range []string{"server killed", "polls dropped"} {
		t.Run(how, func(t *testing.T) {
			const maxAge = 5 * time.Second
			srv := testbin.StartServer(t, testbin.ServerOptions{Namespace: lab.NSScan})
			capt := startCapture(t)
			sc := startScan(t, append([]string{"-p", "80", "-r", "3000", "--server", srv.URL, "--key", srv.Key,
				"--exclusions-max-age", maxAge.String(), "--status-interval", "5s"}, farmArgs...)...)
			sc.line(t, "obeying exclusion list version", 20*time.Second)
			time.Sleep(5 * time.Second)
			var cut time.Time
			switch how {
			case "server killed":
				cut = time.Now()
				srv.Kill()
			case "polls dropped":
				port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
				if err := lab.Nft(context.Background(), lab.NSScan, fmt.Sprintf(`table inet vantage_optout_test {
	chain out {
		type filter hook output priority 0; policy accept;
		tcp dport %s drop
		tcp sport %s drop
	}
}
`, port, port)); err != nil {
					t.Fatal(err)
				}
				cut = time.Now()
				t.Cleanup(func() { lab.Nft(context.Background(), lab.NSScan, "delete table inet vantage_optout_test\n") })
			}
			stopLine := sc.line(t, "stopped scanning (fail closed)", maxAge+10*time.Second)
			// the publisher tries a minute to deliver the last results to
			// the server that is gone before the scanner exits
			sc.wait(t, 2*time.Minute)
			syns := capt.stop(t)
			stoppedAt, err := time.Parse(time.RFC3339Nano, attr(stopLine, "time"))
			if err != nil {
				t.Fatalf("time of %q: %v", stopLine, err)
			}
			var last time.Time
			if len(syns) > 0 {
				last = syns[len(syns)-1].at
			}
			meta, results := sc.metadata(t)
			t.Logf("%s: %s", how, attr(stopLine, "msg"))
			t.Logf("%s at %s; the scanner stopped %v later (bound %v after the last confirmation); last SYN %v after the stop; exit %d, stop_reason %s, %d probes sent, %d results kept",
				how, cut.Format("15:04:05.000"), stoppedAt.Sub(cut).Round(time.Millisecond), maxAge, last.Sub(stoppedAt).Round(time.Millisecond),
				sc.code, meta.StopReason, meta.Sent, results)
			if d := stoppedAt.Sub(cut); d > maxAge+time.Second {
				t.Errorf("stopped %v after the cut, bound %v", d, maxAge)
			}
			// the log's time has millisecond precision: the last SYN may
			// carry the same millisecond
			if last.After(stoppedAt.Add(time.Millisecond)) {
				t.Errorf("a SYN went out at %s, after the scanner stopped at %s", last.Format(time.RFC3339Nano), stoppedAt.Format(time.RFC3339Nano))
			}
			if sc.code == 0 || meta.StopReason != "fail-closed" || !strings.Contains(meta.StopError, "not confirmed for 5s") {
				t.Errorf("exit %d, stop_reason %q, stop_error %q", sc.code, meta.StopReason, meta.StopError)
			}
			if !strings.Contains(sc.stderr(), "exclusion list not confirmed for 5s") {
				t.Errorf("the scanner did not say why:\n%s", sc.stderr())
			}
			if meta.Sent == 0 || meta.Sent >= lab.FarmSize || results == 0 || uint64(len(syns)) != meta.Sent {
				t.Errorf("sent %d, results %d, SYNs captured %d", meta.Sent, results, len(syns))
			}
		})
	}
}
