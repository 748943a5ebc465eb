package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/metrics"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/sensor"
	"github.com/vantagehq/vantage/spool"
)

// scrape reads /metrics and returns the text and each unlabelled
// series' value (labelled ones under their full name).
func scrape(t *testing.T, url string) (string, map[string]float64) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	vals := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			vals[line[:i]] = v
		}
	}
	return string(b), vals
}

func loopbackListener(t *testing.T) (net.Listener, uint16) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln, uint16(ln.Addr().(*net.TCPAddr).Port)
}

var metricsAddrRE = regexp.MustCompile(`metrics on http://(\S+)/metrics`)

// `vantage scan --metrics 127.0.0.1:0` says where it serves, and a scrape
// during a connect scan of a loopback listener shows its counters; the
// server goes away with the scan.
func TestScanMetricsFlag(t *testing.T) {
	_, port := loopbackListener(t)
	// the listener's port and 19 closed ones, at 2 probes/s: a seed that
	// probes the listener first finds the hit at once, then keeps the scan
	// running for ten seconds more
	var ports []string
	for i := 0; i < 20; i++ {
		p := int(port) + i
		if port > 60000 {
			p = int(port) - i
		}
		ports = append(ports, strconv.Itoa(p))
	}
	portList := strings.Join(ports, ",")
	seed := ""
	for s := 1; s < 500 && seed == ""; s++ {
		code, out, errs := runCLI(t, "", "scan", "--dry-run", "-p", portList, "--seed", strconv.Itoa(s), "--allow-reserved", "127.0.0.1/32", "127.0.0.1")
		if code != 0 {
			t.Fatalf("dry run: exit %d: %s", code, errs)
		}
		if strings.HasPrefix(out, "127.0.0.1:"+strconv.Itoa(int(port))+"\n") {
			seed = strconv.Itoa(s)
		}
	}
	if seed == "" {
		t.Fatal("no seed probes the listener first")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- inProcess(ctx, &stderr, "scan", "--connect", "-p", portList, "--seed", seed, "-r", "2",
			"--allow-reserved", "127.0.0.1/32", "-o", os.DevNull, "--status-interval", "1h", "--metrics", "127.0.0.1:0", "127.0.0.1")
	}()
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		if m := metricsAddrRE.FindStringSubmatch(stderr.String()); m != nil {
			url = "http://" + m[1] + "/metrics"
		} else if time.Now().After(deadline) {
			t.Fatalf("no metrics address on stderr:\n%s", stderr.String())
		}
	}
	var text string
	var v map[string]float64
	for deadline := time.Now().Add(8 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		text, v = scrape(t, url)
		if v["vantage_scan_hits_total"] >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hit after 8 s:\n%s\nstderr:\n%s", text, stderr.String())
		}
	}
	for _, want := range []string{
		"# HELP vantage_scan_probes_sent_total ", "# TYPE vantage_scan_probes_sent_total counter",
		"# HELP vantage_scan_recv_drops_total ", "# HELP vantage_scan_grabs_total ", "# TYPE vantage_scan_running gauge",
		`vantage_build_info{`, `role="scan"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for name, want := range map[string]float64{"vantage_scan_running": 1, "vantage_scan_targets_expected": 20, "vantage_scan_rate_limit_pps": 2, "vantage_scan_scans_total": 0} {
		if v[name] != want {
			t.Errorf("%s = %v, want %v", name, v[name], want)
		}
	}
	if v["vantage_scan_targets_total"] < 1 || v["vantage_scan_probes_sent_total"] < v["vantage_scan_hits_total"] || v["vantage_scan_results_total"] < 1 {
		t.Errorf("counters do not add up: targets %v sent %v hits %v results %v", v["vantage_scan_targets_total"],
			v["vantage_scan_probes_sent_total"], v["vantage_scan_hits_total"], v["vantage_scan_results_total"])
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("scan: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("scan still running after cancel")
	}
	if _, err := http.Get(url); err == nil {
		t.Fatal("metrics still served after the scan ended")
	}
}

// A scanner worker's metrics (one registry, through the context) sum the
// scans it runs in-process, one per job.
func TestScanMetricsSumJobs(t *testing.T) {
	_, port := loopbackListener(t)
	reg := metrics.NewRegistry("scanner")
	m := newScanMetrics(reg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := metrics.Start(ctx, "127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	jctx := withScanMetrics(ctx, m)
	for i := 0; i < 2; i++ {
		var stderr lockedBuffer
		if err := inProcess(jctx, &stderr, "scan", "-q", "--connect", "-p", strconv.Itoa(int(port)), "-r", "0",
			"--allow-reserved", "127.0.0.1/32", "-o", os.DevNull, "127.0.0.1"); err != nil {
			t.Fatalf("scan %d: %v\n%s", i, err, stderr.String())
		}
	}
	_, v := scrape(t, "http://"+srv.Addr().String()+"/metrics")
	for name, want := range map[string]float64{
		"vantage_scan_scans_total": 2, "vantage_scan_running": 0, "vantage_scan_targets_total": 2,
		"vantage_scan_probes_sent_total": 2, "vantage_scan_hits_total": 2, "vantage_scan_results_total": 2,
	} {
		if v[name] != want {
			t.Errorf("%s = %v, want %v", name, v[name], want)
		}
	}
}

// The sensor's metrics: its counters, the batcher's and the spool's.
func TestSensorMetrics(t *testing.T) {
	sp, err := spool.Open(t.Context(), spool.Config{Dir: t.TempDir(), Log: slog.New(slog.DiscardHandler),
		Send: func(context.Context, *record.Batch) error { return errors.New("bus down") }})
	if err != nil {
		t.Fatal(err)
	}
	pub := &publisher{spool: sp, batcher: record.NewBatcher(record.BatcherConfig{Producer: "sensor/test", Send: func(_ context.Context, b *record.Batch) error { return sp.Put(b) }})}
	for i := 0; i < 3; i++ {
		pub.batcher.AddEvent(record.Event{Sensor: "test"})
	}
	if err := pub.batcher.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var st sensor.Stats
	st.Packets.Add(7)
	st.Events.Add(3)
	st.RingDrops.Add(1)

	reg := metrics.NewRegistry("sensor")
	newSensorMetrics(reg, &st, pub)
	srv, err := metrics.Start(t.Context(), "127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	text, v := scrape(t, "http://"+srv.Addr().String()+"/metrics")
	for name, want := range map[string]float64{
		"vantage_sensor_packets_total": 7, "vantage_sensor_events_total": 3, "vantage_sensor_ring_drops_total": 1,
		"vantage_sensor_batched_events_total": 3, "vantage_sensor_spool_batches": 1, "vantage_sensor_spool_delivered_batches_total": 0,
		"vantage_sensor_publish_failures_total": 0,
	} {
		if got, ok := v[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, want := range []string{"# HELP vantage_sensor_ring_drops_total ", "# TYPE vantage_sensor_spool_batches gauge", `role="sensor"`} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// --metrics is offered by the roles that have no API address.
func TestMetricsFlagHelp(t *testing.T) {
	for _, cmd := range []string{"scan", "sensor"} {
		code, out, _ := runCLI(t, "", cmd, "--help")
		if code != 0 || !strings.Contains(out, "--metrics ADDR") {
			t.Errorf("%s --help: exit %d, no --metrics ADDR:\n%s", cmd, code, out)
		}
	}
	code, _, errs := runCLI(t, "", "scan", "--connect", "-p", "1", "--allow-reserved", "127.0.0.1/32", "--metrics", "127.0.0.1:notaport", "127.0.0.1")
	if code != ExitFailure || !strings.Contains(errs, "metrics:") {
		t.Errorf("bad --metrics address: exit %d: %s", code, errs)
	}
}
