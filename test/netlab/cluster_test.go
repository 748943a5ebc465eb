package netlab_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/internal/lab"
	"github.com/vantagehq/vantage/internal/natstest"
	"github.com/vantagehq/vantage/internal/netns"
	"github.com/vantagehq/vantage/internal/testbin"
)

// TestClusterNodeLossDuringIngest is issue 9's proof: a three-node NATS
// cluster (vantage nats in nl-scan, clients on 192.0.2.10, which nl-sensor
// reaches through nl-net, and on 2001:db8:e::10), a server with
// bus.replicas = 3, two sensors publishing with --nats and a spool, a
// scanner publishing the farm with --nats, and a flood at each sensor. In
// the middle, the node that leads the EVENTS stream is killed with SIGKILL.
// Every event the sensors recorded and every service the scanner published
// is stored exactly once, and what was recorded after the kill is stored
// too.
//
// The sensor answers DNS and SIP on UDP ports of its namespace, so two
// cannot share one: sensor A has nl-sensor and the /25 (zmap floods it),
// sensor B a namespace of the test's own, joined to nl-scan by a veth pair
// carrying IPv6 (a far-away site), with the dark 2001:db8:d::/64 (nmap
// floods it) and its bus connection over that link.
func TestClusterNodeLossDuringIngest(t *testing.T) {
	needLab(t)
	const ip = lab.ScanIP
	farNS, farIF, farDark, farHost := farSensorNamespace(t)
	var clients, routes, urls4, urls6 []string
	for i := range 3 {
		clients = append(clients, fmt.Sprintf("[::]:%d", 14221+i)) // every address of nl-scan
		routes = append(routes, fmt.Sprintf("%s:%d", ip, 16221+i))
		urls4 = append(urls4, fmt.Sprintf("nats://%s:%d", ip, 14221+i))
		urls6 = append(urls6, fmt.Sprintf("nats://[%s]:%d", farHost, 14221+i))
	}
	c := natstest.Start(t, natstest.Options{Clients: clients, Routes: routes, Namespace: lab.NSScan, Binary: binary})
	url, farURL := strings.Join(urls4, ","), strings.Join(urls6, ",")

	// the test's own view of the bus, dialled from inside nl-scan
	nc, err := nats.Connect(url, nats.SetCustomDialer(nsDialer{lab.NSScan}), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	conf := filepath.Join(t.TempDir(), "vantage.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("[bus]\nurl = %q\nreplicas = 3\n", url)), 0o644)
	srv := testbin.StartServer(t, testbin.ServerOptions{Namespace: lab.NSScan, Args: append([]string{"--config", conf}, geoArgs()...)})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	for _, name := range []string{bus.StreamResults, bus.StreamEvents, bus.StreamJobs, bus.StreamAudit, "KV_scanjobs", "KV_apikeys", "KV_watchlists", "KV_alerts", "KV_monitor", "KV_exclusions", "KV_optouts"} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}

	sensors := []*clusterSensor{
		startClusterSensor(t, sensorNS, sensorIF, "lab-sensor-a", sensorRange, url),
		startClusterSensor(t, farNS, farIF, "lab-sensor-b", farDark, farURL),
	}

	// the bus's progress, sampled every 200 ms: stream last sequences
	// (publishing) and the ingest consumers' ack floors (storing)
	mon := startBusMonitor(js)

	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	scanOut, scanMeta := filepath.Join(dir, "scan.jsonl"), filepath.Join(dir, "meta.json")
	// bounded: the farm x 3 ports at 10,000 probes/s, about 40 s
	scanCmd := lab.Command(ctx, lab.NSScan, binary, "scan", "-q", "-p", "22,80,443", "-r", "10000", "--nats", url,
		"-o", scanOut, "--metadata", scanMeta, "--allow-reserved", lab.Farm, lab.Farm, "-c", "2s")
	var scanErr strings.Builder
	scanCmd.Stderr = &scanErr
	blocklist := filepath.Join(dir, "empty.conf")
	os.WriteFile(blocklist, nil, 0o644)
	// bounded: 128 addresses x 300 SYNs at 1,000 probes/s, about 40 s
	zmap := lab.Command(ctx, lab.NSScan, "zmap", "-q", "-p", "80", "-r", "1000", "-P", "300", "-i", lab.ScanIF, "-S", lab.ScanIP,
		"-G", lab.GatewayMC, "-b", blocklist, "-c", "1", "-o", "/dev/null", sensorRange)
	var zmapOut strings.Builder
	zmap.Stdout, zmap.Stderr = &zmapOut, &zmapOut
	// bounded: 64 addresses x 300 ports at 500 probes/s, about 40 s
	nmapArgs := []string{"-6", "-sS", "-Pn", "-n", "-p", "1-300", "--max-retries", "0", "--min-rate", "500", "--max-rate", "500",
		"--host-timeout", "90s", "-oN", "/dev/null"}
	far := netip.MustParsePrefix(farDark).Addr()
	for range 64 {
		far = far.Next()
		nmapArgs = append(nmapArgs, far.String())
	}
	nmap := lab.Command(ctx, lab.NSScan, "nmap", nmapArgs...)
	var nmapOut strings.Builder
	nmap.Stdout, nmap.Stderr = &nmapOut, &nmapOut
	start := time.Now()
	for _, cmd := range []*exec.Cmd{scanCmd, zmap, nmap} {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}

	// kill the EVENTS leader in the middle
	time.Sleep(15 * time.Second)
	leaders := map[string]string{}
	for _, s := range []string{bus.StreamEvents, bus.StreamResults} {
		if st, err := js.Stream(ctx, s); err == nil && st.CachedInfo().Cluster != nil {
			leaders[s] = st.CachedInfo().Cluster.Leader
		}
		if cs, err := js.Consumer(ctx, s, "ingest-"+s); err == nil && cs.CachedInfo().Cluster != nil {
			leaders["ingest-"+s] = cs.CachedInfo().Cluster.Leader
		}
	}
	victim := -1
	for i, n := range c.Nodes {
		if n.Name == leaders[bus.StreamEvents] {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("no leader of %s among the nodes: %v", bus.StreamEvents, leaders)
	}
	killedAt := time.Now()
	c.Kill(victim)
	t.Logf("%.1f s in: killed %s with SIGKILL (leaders: %v)", killedAt.Sub(start).Seconds(), c.Nodes[victim].Name, leaders)

	if err := zmap.Wait(); err != nil {
		t.Fatalf("zmap: %v\n%s", err, zmapOut.String())
	}
	if err := nmap.Wait(); err != nil {
		t.Fatalf("nmap: %v\n%s", err, nmapOut.String())
	}
	if err := scanCmd.Wait(); err != nil {
		t.Fatalf("scan: %v\n%s", err, scanErr.String())
	}
	trafficEnd := time.Now()
	time.Sleep(time.Second)
	for _, s := range sensors {
		s.stop(t) // drains its spool onto the bus
	}
	t.Logf("traffic took %.1f s; scanner: %s", trafficEnd.Sub(start).Seconds(), lastLine(scanErr.String(), "published"))

	// everything on the bus is stored
	if err := testbin.Wait(ctx, 2*time.Minute, func() (bool, error) {
		for _, s := range []string{bus.StreamResults, bus.StreamEvents} {
			cs, err := js.Consumer(ctx, s, "ingest-"+s)
			if err != nil {
				return false, err
			}
			info := cs.CachedInfo()
			if info.NumPending != 0 || info.NumAckPending != 0 {
				return false, fmt.Errorf("%s: %d pending, %d unacknowledged", s, info.NumPending, info.NumAckPending)
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("ingest never caught up: %v\n%s", err, srv.Log())
	}
	samples := mon.stop()

	// events: every one recorded is stored once
	recorded := map[string]time.Time{}
	afterKill := 0
	for _, s := range sensors {
		for id, at := range s.events(t) {
			recorded[id] = at
			if at.After(killedAt) {
				afterKill++
			}
		}
	}
	stored := map[string]int{}
	for _, s := range sensors {
		for id, n := range storedEventsOf(t, srv.URL, s.name) {
			stored[id] += n
		}
	}
	missing, dups, extra, missingAfter := 0, 0, 0, 0
	for id, at := range recorded {
		if stored[id] == 0 {
			missing++
			if at.After(killedAt) {
				missingAfter++
			}
		}
	}
	for id, n := range stored {
		if n > 1 {
			dups++
		}
		if _, ok := recorded[id]; !ok {
			extra++
		}
	}
	t.Logf("events: the sensors recorded %d (%d after the kill), stored %d distinct: %d missing (%d of them after the kill), %d stored twice, %d not recorded",
		len(recorded), afterKill, len(stored), missing, missingAfter, dups, extra)
	if missing+dups+extra != 0 {
		t.Errorf("events lost, duplicated or invented")
	}
	if afterKill == 0 {
		t.Errorf("no event was recorded after the kill: the test proves nothing about ingest continuing")
	}

	// services: every one the scanner published is stored once (the
	// current services by count, each observation in the history table)
	published, publishedAfter := scanResults(t, scanOut, killedAt)
	total := countServices(t, srv.URL)
	metrics := scrape(t, srv.URL, srv.Key)
	history := int(metrics[`vantage_store_rows{table="service_history"}`])
	storedEvents := int(metrics[`vantage_store_rows{table="events"}`])
	t.Logf("services: the scanner published %d (%d after the kill); the store holds %d services and %d observations; events table %d rows; batches stored %v, redelivered and skipped %v",
		published, publishedAfter, total, history, storedEvents, metrics["vantage_ingest_batches_total"], metrics["vantage_ingest_redelivered_total"])
	if total != published || history != published {
		t.Errorf("services: %d stored, %d observations, want %d of each", total, history, published)
	}
	if storedEvents != len(recorded) {
		t.Errorf("the events table has %d rows, the sensors recorded %d", storedEvents, len(recorded))
	}
	if publishedAfter == 0 {
		t.Errorf("the scanner published nothing after the kill")
	}

	// how long publishing and storing stood still around the kill
	// pub: the stream's last sequence (producers' batches accepted); dlv:
	// the ingest consumer's delivered sequence (batches handed to the
	// store); ack: its ack floor (the oldest batch not yet acknowledged:
	// batches the killed leader had delivered come back after the ack wait)
	for _, k := range []string{"pub " + bus.StreamEvents, "pub " + bus.StreamResults, "dlv " + bus.StreamEvents, "dlv " + bus.StreamResults, "ack " + bus.StreamEvents, "ack " + bus.StreamResults} {
		gap, at := longestStall(samples[k], killedAt.Add(-2*time.Second), trafficEnd.Add(-3*time.Second))
		t.Logf("%-12s longest stall %5.1f s (from %+.1f s after the kill); %d samples", k, gap.Seconds(), at.Sub(killedAt).Seconds(), len(samples[k]))
	}
	t.Logf("fetch/info errors seen by the monitor: %d", mon.errors)

	// the node comes back on its store and catches up
	if err := c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	if err := testbin.Wait(ctx, time.Minute, func() (bool, error) {
		for _, name := range []string{bus.StreamResults, bus.StreamEvents, "KV_scanjobs"} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return false, err
			}
			cl := s.CachedInfo().Cluster
			if cl == nil || len(cl.Replicas) != 2 {
				return false, fmt.Errorf("%s: %+v", name, cl)
			}
			for _, r := range cl.Replicas {
				if !r.Current || r.Offline {
					return false, fmt.Errorf("%s: replica %s not current", name, r.Name)
				}
			}
		}
		return true, nil
	}); err != nil {
		t.Errorf("the restarted node never caught up: %v", err)
	} else {
		t.Logf("%s restarted and current on every stream after %.1f s", c.Nodes[victim].Name, time.Since(back).Seconds())
	}
	if t.Failed() {
		for i := range c.Nodes {
			t.Logf("node %d log:\n%s", i+1, tail(c.Log(i), 40))
		}
		for _, s := range sensors {
			t.Logf("sensor %s log:\n%s", s.name, tail(s.logText(), 20))
		}
		t.Logf("server log:\n%s", tail(srv.Log(), 60))
	}
}

// farSensorNamespace makes a namespace of the test's own for the second
// sensor, joined to nl-scan by a veth pair carrying IPv6 (documentation
// prefixes only), with a dark /64 routed to it; it is deleted at the end.
func farSensorNamespace(t *testing.T) (ns, iface, dark, natsHost string) {
	t.Helper()
	ns, iface = "nl-vantage-far", "far0"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	exec.Command("ip", "-n", lab.NSScan, "link", "del", "farscan").Run() // left by a killed run
	exec.Command("ip", "netns", "del", ns).Run()
	run("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("-n", lab.NSScan, "link", "add", "farscan", "type", "veth", "peer", "name", iface, "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "-n", lab.NSScan, "link", "del", "farscan").Run() })
	run("-n", lab.NSScan, "addr", "add", "2001:db8:e::10/64", "dev", "farscan", "nodad")
	run("-n", ns, "addr", "add", "2001:db8:e::2/64", "dev", iface, "nodad")
	run("-n", lab.NSScan, "link", "set", "farscan", "up")
	run("-n", ns, "link", "set", iface, "up")
	run("-n", ns, "link", "set", "lo", "up")
	run("-n", lab.NSScan, "-6", "route", "add", "2001:db8:d::/64", "via", "2001:db8:e::2")
	return ns, iface, "2001:db8:d::/64", "2001:db8:e::10"
}

// nsDialer dials from inside a network namespace: the socket stays there.
type nsDialer struct{ ns string }

func (d nsDialer) Dial(network, address string) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(d.ns, func() error {
		var err error
		c, err = net.DialTimeout(network, address, 2*time.Second)
		return err
	})
	return c, err
}

type clusterSensor struct {
	name, out, dir string
	cmd            *exec.Cmd
	log            *os.File
	done           bool
}

func startClusterSensor(t *testing.T, ns, iface, name, prefix, url string) *clusterSensor {
	t.Helper()
	dir := t.TempDir()
	s := &clusterSensor{name: name, dir: dir, out: filepath.Join(dir, "events.jsonl")}
	s.log, _ = os.Create(filepath.Join(dir, "sensor.log"))
	s.cmd = exec.Command("ip", "netns", "exec", ns, binary, "sensor", "-i", iface, "--addresses", prefix,
		"--name", name, "--nats", url, "--spool", filepath.Join(dir, "spool"), "-o", s.out, "--status-interval", "5s")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stop(t) })
	if err := testbin.Wait(context.Background(), 20*time.Second, func() (bool, error) {
		out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").Output()
		return strings.Contains(string(out), "vantage_sensor_"), nil
	}); err != nil {
		t.Fatalf("sensor %s never loaded its redirect:\n%s", name, s.logText())
	}
	time.Sleep(300 * time.Millisecond)
	return s
}

func (s *clusterSensor) stop(t *testing.T) {
	if s.done {
		return
	}
	s.done = true
	s.cmd.Process.Signal(syscall.SIGINT)
	waited := make(chan error, 1)
	go func() { waited <- s.cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(90 * time.Second):
		s.cmd.Process.Kill()
		<-waited
		t.Errorf("sensor %s did not stop on SIGINT", s.name)
	}
	s.log.Close()
	if rest := spooled(t, filepath.Join(s.dir, "spool")); len(rest) != 0 {
		t.Errorf("sensor %s: %d events still spooled after a clean stop", s.name, len(rest))
	}
}

func (s *clusterSensor) logText() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "sensor.log"))
	return string(b)
}

// events reads the IDs and times of the events in the sensor's -o file.
func (s *clusterSensor) events(t *testing.T) map[string]time.Time {
	t.Helper()
	f, err := os.Open(s.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]time.Time{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			ID   string    `json:"id"`
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.ID == "" {
			t.Fatalf("sensor %s: bad event line %.200q: %v", s.name, sc.Text(), err)
		}
		out[e.ID] = e.Time
	}
	return out
}

// storedEventsOf pages through the events the server holds for one sensor
// and returns how often each ID is stored.
func storedEventsOf(t *testing.T, url, sensor string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	cursor := ""
	for page := 0; page < 1000; page++ {
		args := []string{"search", "--events", "sensor:" + sensor, "--json", "--limit", "1000", "--server", url}
		if cursor != "" {
			args = append(args, "--cursor", cursor)
		}
		out, err := lab.Command(context.Background(), lab.NSScan, binary, args...).Output()
		if err != nil {
			t.Fatalf("search events: %v", err)
		}
		var r struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
			Next string `json:"next"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("search events: %v: %.200s", err, out)
		}
		for _, e := range r.Events {
			ids[e.ID]++
		}
		if r.Next == "" || len(r.Events) == 0 {
			break
		}
		cursor = r.Next
	}
	return ids
}

// scanResults counts the TCP results in the scanner's -o file (what its
// publisher sent), and those found after t.
func scanResults(t *testing.T, name string, after time.Time) (all, later int) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			Proto string    `json:"proto"`
			Time  time.Time `json:"time"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad scan line %q: %v", sc.Text(), err)
		}
		if r.Proto != "tcp" {
			continue
		}
		all++
		if r.Time.After(after) {
			later++
		}
	}
	return all, later
}

func countServices(t *testing.T, url string) int {
	t.Helper()
	out, err := lab.Command(context.Background(), lab.NSScan, binary, "count", "", "--json", "--server", url).Output()
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	var r struct {
		Total int `json:"total"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("count: %v: %s", err, out)
	}
	return r.Total
}

var metricLine = regexp.MustCompile(`^(vantage_\S+)\s+(\S+)$`)

// scrape reads the server's /metrics (from inside nl-scan).
func scrape(t *testing.T, url, key string) map[string]float64 {
	t.Helper()
	out, err := lab.Command(context.Background(), lab.NSScan, "curl", "-sf", "-H", "Authorization: Bearer "+key, url+"/metrics").Output()
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		if g := metricLine.FindStringSubmatch(line); g != nil {
			v, _ := strconv.ParseFloat(g[2], 64)
			m[g[1]] = v
		}
	}
	return m
}

type sample struct {
	at  time.Time
	val uint64
}

type busMonitor struct {
	mu      sync.Mutex
	samples map[string][]sample
	errors  int
	done    chan struct{}
	stopped chan struct{}
}

func startBusMonitor(js jetstream.JetStream) *busMonitor {
	m := &busMonitor{samples: map[string][]sample{}, done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(m.stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.done:
				return
			case <-t.C:
			}
			for _, s := range []string{bus.StreamEvents, bus.StreamResults} {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				now := time.Now()
				if st, err := js.Stream(ctx, s); err == nil {
					m.add("pub "+s, now, st.CachedInfo().State.LastSeq)
				} else {
					m.fail()
				}
				if cs, err := js.Consumer(ctx, s, "ingest-"+s); err == nil {
					m.add("ack "+s, now, cs.CachedInfo().AckFloor.Stream)
					m.add("dlv "+s, now, cs.CachedInfo().Delivered.Stream)
				} else {
					m.fail()
				}
				cancel()
			}
		}
	}()
	return m
}

func (m *busMonitor) add(k string, at time.Time, v uint64) {
	m.mu.Lock()
	m.samples[k] = append(m.samples[k], sample{at, v})
	m.mu.Unlock()
}

func (m *busMonitor) fail() { m.mu.Lock(); m.errors++; m.mu.Unlock() }

func (m *busMonitor) stop() map[string][]sample {
	close(m.done)
	<-m.stopped
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.samples
}

// longestStall is the longest time between from and to in which the value
// did not grow (missing samples, when the bus did not answer, count as
// standing still), and when it began.
func longestStall(ss []sample, from, to time.Time) (time.Duration, time.Time) {
	var best time.Duration
	var bestAt time.Time
	last, lastVal := from, uint64(0)
	for _, s := range ss {
		if s.at.Before(from) {
			lastVal = s.val
			continue
		}
		if s.at.After(to) {
			break
		}
		if s.val > lastVal {
			if d := s.at.Sub(last); d > best {
				best, bestAt = d, last
			}
			last, lastVal = s.at, s.val
		}
	}
	if d := to.Sub(last); d > best {
		best, bestAt = d, last
	}
	return best, bestAt
}

func lastLine(s, containing string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], containing) {
			return lines[i]
		}
	}
	return ""
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
