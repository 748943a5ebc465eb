// Package netlab_test runs the vantage binary against ../shared/netlab, the
// simulated Internet: real packets between network namespaces, checked
// against the lab's ground truth. It needs root; without it every test
// skips and says why.
package netlab_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/lab"
	"github.com/vantagehq/vantage/internal/testbin"
)

var (
	theLab  *lab.Lab
	binary  string // the vantage binary under test
	skipWhy string
)

// The main goroutine keeps the main thread, so that netns.Listen (which
// moves a thread into a lab namespace for a moment) never picks it.
func init() { runtime.LockOSThread() }

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if skipWhy = lab.Unavailable(); skipWhy != "" {
		defer testbin.Clean() // TestUpLocal builds the binary without the lab
		return m.Run()
	}
	var err error
	if binary, err = testbin.Build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testbin.Clean()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	theLab, err = lab.Up(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := theLab.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func needLab(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip("skipping lab test: " + skipWhy)
	}
}

// result is one JSON line of vantage scan output.
type result struct {
	IP     netip.Addr `json:"ip"`
	Port   int        `json:"port"`
	Proto  string     `json:"proto"`
	State  string     `json:"state"`
	TTL    int        `json:"ttl"`
	Window int        `json:"window"`
	ScanID string     `json:"scan_id"`
	Shard  int        `json:"shard"`
}

// summary is the part of the metadata file the tests read.
type summary struct {
	ScanID      string  `json:"scan_id"`
	Mode        string  `json:"mode"`
	StopReason  string  `json:"stop_reason"`
	Targets     uint64  `json:"targets_probed"`
	Sent        uint64  `json:"probes_sent"`
	SendRate    float64 `json:"send_rate_pps"`
	Hits        uint64  `json:"hits"`
	Closed      uint64  `json:"closed"`
	Duplicates  uint64  `json:"duplicates"`
	Invalid     uint64  `json:"invalid_replies"`
	RecvDrops   uint64  `json:"recv_drops"`
	SendSeconds float64 `json:"send_duration_s"`
}

type scanRun struct {
	results []result
	meta    summary
	stderr  string
	code    int
}

// scan runs vantage scan in the scanner namespace (or as a plain command
// line prefix, for the fallback test) and parses what it wrote.
func scan(t *testing.T, prefix []string, args ...string) scanRun {
	t.Helper()
	// not t.TempDir: its parent is private, and the fallback test writes
	// as nobody
	dir, err := os.MkdirTemp("", "vantage-scan-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	out, meta := filepath.Join(dir, "out.json"), filepath.Join(dir, "meta.json")
	full := append([]string{"netns", "exec", lab.NSScan}, prefix...)
	full = append(full, binary, "scan", "-o", out, "--metadata", meta)
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	r := scanRun{stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run vantage: %v", err)
	}
	if f, err := os.Open(out); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var res result
			if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
				t.Fatalf("bad output line %q: %v", sc.Text(), err)
			}
			r.results = append(r.results, res)
		}
	}
	if b, err := os.ReadFile(meta); err == nil {
		if err := json.Unmarshal(b, &r.meta); err != nil {
			t.Fatalf("bad metadata: %v", err)
		}
	}
	return r
}

// compare checks found (address, port) hits against the truth and returns
// recall; false positives and duplicates fail the test.
func compare(t *testing.T, what string, results []result, truth map[string]bool) float64 {
	t.Helper()
	seen := map[string]int{}
	for _, r := range results {
		key := r.IP.String()
		if r.Port != 0 {
			key = fmt.Sprintf("%s:%d", r.IP, r.Port)
		}
		seen[key]++
	}
	var fp, dups, found []string
	for k, n := range seen {
		if n > 1 {
			dups = append(dups, k)
		}
		if !truth[k] {
			fp = append(fp, k)
		} else {
			found = append(found, k)
		}
	}
	recall := 100 * float64(len(found)) / float64(len(truth))
	t.Logf("%s: %d results, %d of %d true targets (recall %.3f%%), %d false positives, %d duplicates",
		what, len(results), len(found), len(truth), recall, len(fp), len(dups))
	if len(fp) > 0 {
		t.Errorf("%s: false positives: %v", what, head(fp))
	}
	if len(dups) > 0 {
		t.Errorf("%s: duplicates: %v", what, head(dups))
	}
	return recall
}

func head(s []string) []string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// truthFor builds the set of "ip:port" keys open on the given ports.
func truthFor(t *testing.T, ports ...int) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, p := range ports {
		set, err := theLab.Truth(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		for a := range set {
			out[fmt.Sprintf("%s:%d", a, p)] = true
		}
	}
	return out
}
