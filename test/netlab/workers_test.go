package netlab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/lab"
	"github.com/vantagehq/vantage/internal/testbin"
)

// The proof of the scanner workers: a scan of the farm split over
// three `vantage scanner` processes gives exactly what one scanner finds
// (the same services, none twice), and so it does when one worker is
// killed (SIGKILL) in the middle of its shard: the bus gives that shard
// to another worker after a minute, and the shard's records, scanned
// again under the same scan ID, are stored once.
func TestShardedScanOverWorkers(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const ports = "22,80,443"

	// what one scanner finds
	r := scan(t, nil, "-q", "-p", ports, "-r", "50000", "--allow-reserved", lab.Farm, lab.Farm, "-c", "3s")
	if r.code != 0 {
		t.Fatalf("single scan: exit %d: %s", r.code, r.stderr)
	}
	want := map[string]bool{}
	for _, h := range r.results {
		want[netip.AddrPortFrom(h.IP, uint16(h.Port)).String()] = true
	}
	t.Logf("one scanner: %d services on %s", len(want), ports)

	const natsAddr = "127.0.0.1:14223"
	srv := testbin.StartServer(t, testbin.ServerOptions{Namespace: lab.NSScan,
		Args: append([]string{"--nats-listen", natsAddr}, geoArgs()...)})
	var workers []*exec.Cmd
	var logs []*syncBuf
	for i := range 3 {
		out := &syncBuf{}
		cmd := lab.Command(ctx, lab.NSScan, binary, "scanner", "--nats", "nats://"+natsAddr, "--name", fmt.Sprintf("w%d", i),
			"--allow-reserved", lab.Farm, "--max-rate", "50000", "-c", "3s")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stopProcess(cmd) })
		workers, logs = append(workers, cmd), append(logs, out)
	}
	workerLogs := func() string {
		var b strings.Builder
		for i, l := range logs {
			fmt.Fprintf(&b, "worker %d:\n%s\n", i, l.String())
		}
		return b.String()
	}
	jobs := func(args ...string) scanView {
		t.Helper()
		out, err := lab.Command(ctx, lab.NSScan, binary, append(append([]string{"jobs"}, args...), "--json", "--server", srv.URL, "--key", srv.Key)...).Output()
		var v scanView
		if err == nil {
			err = json.Unmarshal(out, &v)
		}
		if err != nil {
			t.Fatalf("vantage jobs %v: %v\n%s", args, err, out)
		}
		return v
	}
	// stored: what search says the scan found, each service counted
	stored := func(id string, published int) map[string]int {
		t.Helper()
		var got map[string]int
		err := testbin.Wait(ctx, 2*time.Minute, func() (bool, error) {
			out, err := lab.Command(ctx, lab.NSScan, binary, "search", "scan:"+id, "--format", "jsonl", "--limit", "1000000",
				"--server", srv.URL, "--key", srv.Key).Output()
			if err != nil {
				return false, err
			}
			got = map[string]int{}
			for _, line := range splitLines(string(out)) {
				var s struct {
					IP   netip.Addr `json:"ip"`
					Port uint16     `json:"port"`
				}
				if err := json.Unmarshal([]byte(line), &s); err != nil {
					return false, err
				}
				got[netip.AddrPortFrom(s.IP, s.Port).String()]++
			}
			return len(got) >= len(want), nil
		})
		if err != nil {
			t.Errorf("scan %s: %d services searchable after the wait (published %d): %v", id, len(got), published, err)
		}
		return got
	}
	compare := func(what string, got map[string]int) {
		t.Helper()
		missing, extra, dups := 0, 0, 0
		for k := range want {
			if got[k] == 0 {
				missing++
			}
		}
		for k, n := range got {
			if !want[k] {
				extra++
			}
			if n > 1 {
				dups++
			}
		}
		t.Logf("%s: %d services, one scanner %d: missing %d, extra %d, duplicates %d", what, len(got), len(want), missing, extra, dups)
		if missing+extra+dups != 0 {
			t.Errorf("%s differs from what one scanner found", what)
		}
	}

	// three workers, nothing killed
	t0 := time.Now()
	v := jobs("submit", "--shards", "3", "-p", ports, "-r", "50000", "--id", "farm3", "--wait", "3m", lab.Farm)
	if v.State != "done" {
		t.Fatalf("scan farm3: %s\n%s", v.State, workerLogs())
	}
	used := map[string]bool{}
	for _, j := range v.Jobs {
		used[j.Worker] = true
	}
	t.Logf("farm3: 3 shards done in %s by %d workers, %d records published", time.Since(t0).Round(100*time.Millisecond), len(used), v.Published)
	compare("three workers", stored("farm3", v.Published))

	// one worker killed in the middle of its shard: slower shards (a
	// fifth of the rate) so that the kill lands mid-scan
	t0 = time.Now()
	jobs("submit", "--shards", "3", "-p", ports, "-r", "8000", "--id", "farmkill", lab.Farm)
	var victim int = -1
	var victimJob string
	err := testbin.Wait(ctx, time.Minute, func() (bool, error) {
		s := jobs("status", "farmkill")
		for _, j := range s.Jobs {
			if j.State == "running" && strings.HasPrefix(j.Worker, "w") {
				fmt.Sscanf(j.Worker, "w%d", &victim)
				victimJob = j.ID
				return time.Since(t0) > 5*time.Second, nil
			}
		}
		return false, nil
	})
	if err != nil || victim < 0 {
		t.Fatalf("no shard started: %v\n%s", err, workerLogs())
	}
	workers[victim].Process.Signal(syscall.SIGKILL)
	t.Logf("killed worker w%d (SIGKILL) %s into the scan, in the middle of %s", victim, time.Since(t0).Round(100*time.Millisecond), victimJob)
	var final scanView
	err = testbin.Wait(ctx, 4*time.Minute, func() (bool, error) {
		final = jobs("status", "farmkill")
		return final.State == "done" || final.State == "failed", nil
	})
	if err != nil || final.State != "done" {
		t.Fatalf("scan farmkill: %s (%v)\n%s", final.State, err, workerLogs())
	}
	for _, j := range final.Jobs {
		t.Logf("  %s: %s by %s, attempt %d, %d published", j.ID, j.State, j.Worker, j.Attempts, j.Published)
		if j.ID == victimJob && (j.Attempts < 2 || j.Worker == fmt.Sprintf("w%d", victim)) {
			t.Errorf("%s: attempt %d by %s; want it redone by another worker", j.ID, j.Attempts, j.Worker)
		}
	}
	t.Logf("farmkill: done in %s", time.Since(t0).Round(100*time.Millisecond))
	compare("three workers, one killed", stored("farmkill", final.Published))
}

type scanView struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Published int    `json:"published"`
	Jobs      []struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		Worker    string `json:"worker"`
		Attempts  int    `json:"attempts"`
		Published int    `json:"published"`
	} `json:"jobs"`
}
