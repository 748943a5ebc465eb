package netlab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/lab"
	"github.com/vantagehq/vantage/internal/testbin"
)

// apiGet reads a JSON answer from the API, from the test's namespace.
func apiGet(t *testing.T, base, key, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", strings.TrimSuffix(base, "/")+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %.300s", path, err, b)
	}
}

type buckets struct {
	Buckets []struct {
		Key   string `json:"key"`
		Count int64  `json:"count"`
	} `json:"buckets"`
}

func (b buckets) keys() map[string]int64 {
	m := map[string]int64{}
	for _, x := range b.Buckets {
		m[x.Key] = x.Count
	}
	return m
}

// TestUpLocal: plain vantage up, no root: the scan of this machine
// (restricted to loopback and one port with --targets and --ports) finds
// a local HTTP server and the API shows it under the host's address.
func TestUpLocal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "up-test/1.0")
		io.WriteString(w, "<html><title>up test page</title></html>")
	})}
	go hs.Serve(ln)
	defer hs.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	t0 := time.Now()
	p := testbin.StartUp(t, testbin.UpOptions{For: 3 * time.Minute, Timeout: 2 * time.Minute,
		Args: []string{"--targets", "127.0.0.1", "--ports", strconv.Itoa(port)}})
	r, key := p.Ready, p.Key
	t.Logf("ready after %s (its own count: %.1f s): %d services", time.Since(t0).Round(100*time.Millisecond), r.Seconds, r.Services)
	var host struct {
		Services []struct {
			Port     int    `json:"port"`
			Protocol string `json:"protocol"`
			HTTP     struct {
				Server string `json:"server"`
				Title  string `json:"title"`
			} `json:"http"`
		} `json:"services"`
	}
	apiGet(t, r.API, key, "/api/v1/host/127.0.0.1", &host)
	found := false
	for _, s := range host.Services {
		if s.Port == port {
			found = true
			if s.Protocol != "http" || s.HTTP.Server != "up-test/1.0" || s.HTTP.Title != "up test page" {
				t.Errorf("the service on %d: %+v", port, s)
			}
		}
	}
	if !found {
		t.Fatalf("127.0.0.1:%d is not among the host's services %+v\n%s", port, host.Services, p.Log())
	}
	for _, want := range []string{"vantage: open http://127.0.0.1:", "sensor off", "reserved addresses allowed because they are this machine's own, and only these: 127.0.0.1"} {
		if !strings.Contains(p.Log(), want) {
			t.Errorf("the output does not say %q:\n%s", want, p.Log())
		}
	}
	if err := p.Stop(); err != nil {
		t.Error(err)
	}
}

// TestUpDemo: vantage up --demo fills every view from the lab: the farm's
// port 22 services match the lab's truth, events come from five source
// countries or more, the matrix has two target countries or more, and the
// verdicts include benign and malicious.
func TestUpDemo(t *testing.T) {
	needLab(t)
	// the lab is up (TestMain holds its lock); the child must not wait for it
	t0 := time.Now()
	p := testbin.StartUp(t, testbin.UpOptions{Demo: true, LockHeld: true, For: 6 * time.Minute, Timeout: 4 * time.Minute,
		Args: []string{"--netlab", theLab.Script}})
	r, key := p.Ready, p.Key
	t.Logf("ready after %s (its own count: %.1f s): %d services, %d events from %d source countries; lab API %s",
		time.Since(t0).Round(100*time.Millisecond), r.Seconds, r.Services, r.Events, r.SourceCountries, r.LabURL)

	truth, err := theLab.Truth(context.Background(), 22)
	if err != nil {
		t.Fatal(err)
	}
	var count struct {
		Total int64 `json:"total"`
	}
	apiGet(t, r.API, key, "/api/v1/count?q="+url.QueryEscape("port:22 ip:"+lab.Farm), &count)
	t.Logf("farm port 22: %d services searchable, %d open in the lab", count.Total, len(truth))
	if count.Total != int64(len(truth)) {
		t.Errorf("farm port 22: %d services, the lab has %d", count.Total, len(truth))
	}
	var daemons struct {
		Total int64 `json:"total"`
	}
	apiGet(t, r.API, key, "/api/v1/count?q="+url.QueryEscape("ip:203.0.113.0/27"), &daemons)
	if daemons.Total < 10 {
		t.Errorf("only %d of the 12 lab daemons searchable", daemons.Total)
	}

	var countries, classes buckets
	apiGet(t, r.API, key, "/api/v1/sensors/stats?by=src_country&window=1h", &countries)
	apiGet(t, r.API, key, "/api/v1/sensors/stats?by=classification&window=1h", &classes)
	var matrix struct {
		Cells []struct {
			Src, Dst string
			Count    int64
		} `json:"cells"`
	}
	apiGet(t, r.API, key, "/api/v1/sensors/matrix", &matrix)
	dst := map[string]bool{}
	for _, c := range matrix.Cells {
		dst[c.Dst] = true
	}
	t.Logf("source countries %v; verdicts %v; matrix: %d cells, target countries %v", countries.keys(), classes.keys(), len(matrix.Cells), dst)
	if len(countries.keys()) < 5 {
		t.Errorf("events from %d source countries, want 5 or more", len(countries.keys()))
	}
	if len(dst) < 2 {
		t.Errorf("the matrix has %d target countries, want 2 or more", len(dst))
	}
	if c := classes.keys(); c["benign"] == 0 || c["malicious"] == 0 {
		t.Errorf("verdicts %v: want benign and malicious", c)
	}
	// the lab's side of the server answers too
	out, err := lab.Command(context.Background(), lab.NSSensor, "curl", "-s", "-m", "5", r.LabURL+"/healthz").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("the API inside the lab (%s) from nl-sensor: %v %s", r.LabURL, err, out)
	}
	// the same server, as people see it: the web UI in Chromium (web_test.go)
	t.Run("web UI", func(t *testing.T) { checkWebUI(t, r.API, key) })
	t.Run("triage", func(t *testing.T) { checkTriage(t, r.API, key) })

	if err := p.Stop(); err != nil {
		t.Error(err)
	}
	// what it added is gone: the sources' addresses, the sensor's redirect
	addrs, _ := exec.Command("ip", "-n", lab.NSScan, "-4", "addr", "show", "dev", lab.ScanIF).Output()
	for i := 11; i <= 16; i++ {
		if a := fmt.Sprintf("192.0.2.%d/", i); strings.Contains(string(addrs), a) {
			t.Errorf("%s is still on %s after exit", a, lab.ScanIF)
		}
	}
	tables, _ := exec.Command("ip", "netns", "exec", lab.NSSensor, "nft", "list", "tables").Output()
	if strings.Contains(string(tables), "vantage_sensor_") {
		t.Errorf("the sensor's redirect is still loaded after exit: %s", tables)
	}
	if !lab.NamespaceExists(lab.NSScan) {
		t.Errorf("vantage up took down a lab it did not bring up")
	}
}

// checkTriage is the triage proof on what the demo's sensor saw: a
// sample edge log whose sources are a lab host that scanned the sensor's
// dark range (noise), the known benign scanner of the actors' ranges
// (benign), an exploiting host (malicious) and an address never seen
// (possibly aimed at us), in three log formats with one malformed line.
func checkTriage(t *testing.T, api, key string) {
	log := strings.Join([]string{
		`192.0.2.10 - - [27/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 404 153 "-" "Mozilla/5.0"`,
		`Nov 27 10:00:01 fw kernel: [1234.5] IN=eth0 OUT= MAC=02:00:00:00:00:01:02:00:00:00:00:02:08:00 SRC=192.0.2.11 DST=203.0.113.5 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=TCP SPT=40000 DPT=80 WINDOW=1024 RES=0x00 SYN URGP=0`,
		`Nov 27 10:00:02 www sshd[812]: Failed password for root from 192.0.2.13 port 40022 ssh2`,
		`192.0.2.99 - - [27/Nov/2026:10:00:03 +0000] "POST /wp-login.php HTTP/1.1" 200 512 "-" "curl/8.5"`,
		`this line is no log format at all ###`,
	}, "\n") + "\n"
	file := filepath.Join(t.TempDir(), "edge.log")
	if err := os.WriteFile(file, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "triage", "--json", "--server", api, "--key", key, file).Output()
	if err != nil {
		t.Fatalf("vantage triage: %v\n%s", err, out)
	}
	var rep struct {
		Lines, Malformed int
		Sources          []struct {
			IP, Verdict, Actor, Why string
		}
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("triage JSON: %v\n%s", err, out)
	}
	want := map[string]string{"192.0.2.10": "noise", "192.0.2.11": "benign", "192.0.2.13": "malicious", "192.0.2.99": "not seen"}
	got := map[string]string{}
	for _, s := range rep.Sources {
		got[s.IP] = s.Verdict
		t.Logf("triage %s: %s (%s) %s", s.IP, s.Verdict, s.Why, s.Actor)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("verdicts %v, want %v", got, want)
	}
	if len(rep.Sources) > 0 && rep.Sources[0].Verdict != "not seen" {
		t.Errorf("the first row is %s: what no sensor saw comes first", rep.Sources[0].Verdict)
	}
	if rep.Lines != 5 || rep.Malformed != 1 {
		t.Errorf("%d lines, %d malformed; want 5 and 1", rep.Lines, rep.Malformed)
	}
}
