package netlab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/lab"
)

var farmArgs = []string{"--allow-reserved", lab.Farm, lab.Farm, "-c", "2s"}

const minRecall = 99.95

// The recall proof: port 80 of the farm at 10k pps, 100k pps and
// unthrottled finds every open address and nothing else; so do the sendmmsg
// sender and two sending threads.
func TestSYNRecallPort80(t *testing.T) {
	needLab(t)
	truth := truthFor(t, 80)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"rate=10000", []string{"-r", "10000"}},
		{"rate=100000", []string{"-r", "100000"}},
		{"rate=0", []string{"-r", "0"}},
		{"rate=0,sendmmsg", []string{"-r", "0", "--send-method", "mmsg"}},
		{"rate=0,senders=2", []string{"-r", "0", "--senders", "2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := scan(t, nil, append(append([]string{"-q", "-p", "80"}, tt.args...), farmArgs...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			recall := compare(t, "port 80, "+tt.name, r.results, truth)
			if recall < minRecall {
				t.Errorf("recall %.3f%% below %.2f%%", recall, minRecall)
			}
			t.Logf("sent %d probes in %.2fs (%.0f pps), %d replies closed, %d receive drops, %d invalid",
				r.meta.Sent, r.meta.SendSeconds, r.meta.SendRate, r.meta.Closed, r.meta.RecvDrops, r.meta.Invalid)
			if r.meta.Sent != lab.FarmSize || r.meta.Hits != uint64(len(r.results)) {
				t.Errorf("metadata: sent %d (want %d), hits %d, results %d", r.meta.Sent, lab.FarmSize, r.meta.Hits, len(r.results))
			}
		})
	}
}

func TestSYNRecallThreePorts(t *testing.T) {
	needLab(t)
	truth := truthFor(t, 22, 80, 443)
	for _, rate := range []string{"100000", "0"} {
		t.Run("rate="+rate, func(t *testing.T) {
			r := scan(t, nil, append([]string{"-q", "-p", "22,80,443", "-r", rate}, farmArgs...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if recall := compare(t, "ports 22,80,443", r.results, truth); recall < minRecall {
				t.Errorf("recall %.3f%% below %.2f%%", recall, minRecall)
			}
			if r.meta.Sent != 3*lab.FarmSize {
				t.Errorf("sent %d probes, want %d", r.meta.Sent, 3*lab.FarmSize)
			}
		})
	}
}

func TestICMPEchoRecall(t *testing.T) {
	needLab(t)
	up, err := theLab.ICMPTruth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	truth := map[string]bool{}
	for a := range up {
		truth[a.String()] = true
	}
	r := scan(t, nil, append([]string{"-q", "-M", "icmp_echo", "-r", "0"}, farmArgs...)...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if recall := compare(t, "icmp echo", r.results, truth); recall < minRecall {
		t.Errorf("recall %.3f%% below %.2f%%", recall, minRecall)
	}
	for _, res := range r.results[:min(len(r.results), 3)] {
		if res.State != "up" || res.Proto != "icmp" || res.Port != 0 {
			t.Errorf("icmp result %+v", res)
		}
	}
}

// Nothing is sent to an excluded address: a slice of the farm is excluded,
// and an nftables counter in nl-net, in front of everything else, proves
// that not one packet reached it while the rest of the farm got exactly one
// probe per address.
func TestExcludedSliceGetsNoPacket(t *testing.T) {
	needLab(t)
	ctx := context.Background()
	const slice = "198.18.64.0/18"
	const table = "vantage_exclusion_test"
	err := lab.Nft(ctx, lab.NSNet, fmt.Sprintf(`
table inet %[1]s {
	counter excluded { }
	counter farm { }
	chain pre {
		type filter hook prerouting priority -400; policy accept;
		ip daddr %[2]s counter name "excluded"
		ip daddr %[3]s counter name "farm"
	}
}`, table, slice, lab.Farm))
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Nft(ctx, lab.NSNet, "delete table inet "+table)

	exclude := filepath.Join(t.TempDir(), "exclude.conf")
	os.WriteFile(exclude, []byte("# a slice of the farm that must see nothing\n"+slice+" # test slice\n"), 0o644)
	for _, ports := range []string{"80", "22,80,443"} {
		before, err := lab.Counters(ctx, lab.NSNet, "inet", table)
		if err != nil {
			t.Fatal(err)
		}
		r := scan(t, nil, append([]string{"-p", ports, "-r", "0", "--exclude-file", exclude}, farmArgs...)...)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		after, err := lab.Counters(ctx, lab.NSNet, "inet", table)
		if err != nil {
			t.Fatal(err)
		}
		nports := uint64(len(strings.Split(ports, ",")))
		excluded, farm := after["excluded"]-before["excluded"], after["farm"]-before["farm"]
		want := (lab.FarmSize - 1<<14) * nports
		t.Logf("ports %s: %d packets reached the excluded %s, %d the farm (want %d)", ports, excluded, slice, farm, want)
		if excluded != 0 {
			t.Errorf("%d packets reached the excluded slice %s", excluded, slice)
		}
		// the farm counter also sees the scanner's RSTs for SYN-ACKs
		if farm < want {
			t.Errorf("the farm saw %d packets, fewer than the %d probes", farm, want)
		}
		if r.meta.Sent != want {
			t.Errorf("scanner sent %d probes, want %d", r.meta.Sent, want)
		}
		excl := netip.MustParsePrefix(slice)
		for _, res := range r.results {
			if excl.Contains(res.IP) {
				t.Fatalf("result from the excluded slice: %+v", res)
			}
		}
		if !strings.Contains(r.stderr, "excluded by your exclusion lists") {
			t.Errorf("no note about the exclusion on stderr: %s", r.stderr)
		}
	}
}

// Shards of one scan (same seed) are disjoint and together find everything.
func TestShardsCoverTheFarm(t *testing.T) {
	needLab(t)
	truth := truthFor(t, 80)
	var all []result
	var sent uint64
	for shard := 0; shard < 3; shard++ {
		r := scan(t, nil, append([]string{"-q", "-p", "80", "-r", "0", "--shards", "3", "--shard", fmt.Sprint(shard), "--seed", "1234"}, farmArgs...)...)
		if r.code != 0 {
			t.Fatalf("shard %d: exit %d: %s", shard, r.code, r.stderr)
		}
		for _, res := range r.results {
			if res.Shard != shard {
				t.Fatalf("result %+v labelled with the wrong shard", res)
			}
		}
		t.Logf("shard %d: %d probes, %d hits", shard, r.meta.Sent, len(r.results))
		sent += r.meta.Sent
		all = append(all, r.results...)
	}
	if sent != lab.FarmSize {
		t.Errorf("shards sent %d probes together, want %d", sent, lab.FarmSize)
	}
	if recall := compare(t, "3 shards", all, truth); recall < minRecall {
		t.Errorf("recall %.3f%% below %.2f%%", recall, minRecall)
	}
}

// --connect finds the same open ports with ordinary sockets.
func TestConnectMode(t *testing.T) {
	needLab(t)
	const slice = "198.18.0.0/20" // 4096 addresses: connect mode waits out every filtered one
	truth := subset(truthFor(t, 80), slice)
	r := scan(t, nil, "-q", "-p", "80", "--connect", "--connect-timeout", "1s", "--concurrency", "1024", "-r", "0",
		"--allow-reserved", lab.Farm, slice)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.meta.Mode != "connect" {
		t.Errorf("mode %q", r.meta.Mode)
	}
	if recall := compare(t, "connect mode", r.results, truth); recall < 100 {
		t.Errorf("connect mode recall %.2f%%", recall)
	}
}

// Without raw-socket rights the scanner says so and falls back to connect().
func TestFallbackWithoutPrivileges(t *testing.T) {
	needLab(t)
	const slice = "198.18.0.0/22"
	truth := subset(truthFor(t, 80), slice)
	r := scan(t, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"},
		"-p", "80", "--connect-timeout", "1s", "-r", "0", "--allow-reserved", lab.Farm, slice)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "falling back to --connect") {
		t.Errorf("no fallback note on stderr:\n%s", r.stderr)
	}
	if r.meta.Mode != "connect" {
		t.Errorf("mode %q, want connect", r.meta.Mode)
	}
	if recall := compare(t, "fallback", r.results, truth); recall < 100 {
		t.Errorf("fallback recall %.2f%%", recall)
	}
}

func subset(truth map[string]bool, cidr string) map[string]bool {
	p := netip.MustParsePrefix(cidr)
	out := map[string]bool{}
	for k := range truth {
		ap := netip.MustParseAddrPort(k)
		if p.Contains(ap.Addr()) {
			out[k] = true
		}
	}
	return out
}

// Ctrl-C stops sending at once, writes what was found, prints the summary
// and exits with 130.
func TestInterruptWritesSummary(t *testing.T) {
	needLab(t)
	dir, err := os.MkdirTemp("", "vantage-int-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	out, meta := filepath.Join(dir, "out.json"), filepath.Join(dir, "meta.json")
	cmd := lab.Command(context.Background(), lab.NSScan, binary, "scan", "-p", "80", "-r", "10000",
		"--allow-reserved", lab.Farm, lab.Farm, "-o", out, "--metadata", meta, "--status-interval", "100ms")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// wait until the status line shows probes going out, then interrupt
	for i := 0; i < 100 && !strings.Contains(stderr.String(), "sent "); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 130 {
		t.Fatalf("exit %d, want 130\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted after") {
		t.Errorf("no summary on stderr:\n%s", stderr.String())
	}
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	var m summary
	json.Unmarshal(b, &m)
	results, _ := os.ReadFile(out)
	n := strings.Count(string(results), "\n")
	t.Logf("interrupted after %d probes with %d results", m.Sent, n)
	if m.StopReason != "interrupted" || m.Sent == 0 || m.Sent >= lab.FarmSize || uint64(n) != m.Hits {
		t.Errorf("metadata %+v, %d results written", m, n)
	}
}

// --max-targets stops after exactly that many targets.
func TestMaxTargets(t *testing.T) {
	needLab(t)
	r := scan(t, nil, append([]string{"-q", "-p", "22,80", "-r", "0", "-n", "12345"}, farmArgs...)...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.meta.Targets != 12345 || r.meta.Sent != 12345 || r.meta.StopReason != "max-targets" {
		t.Errorf("targets %d, probes %d, stop %q; want 12345, 12345, max-targets", r.meta.Targets, r.meta.Sent, r.meta.StopReason)
	}
}
