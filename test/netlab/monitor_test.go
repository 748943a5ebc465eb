package netlab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vantagehq/vantage/internal/lab"
	"github.com/vantagehq/vantage/internal/netns"
	"github.com/vantagehq/vantage/internal/testbin"
	"github.com/vantagehq/vantage/monitor"
	"github.com/vantagehq/vantage/notify"
)

// Where the test's own services run: on two of the daemons' addresses, on
// ports those daemons do not use.
const (
	svcNS       = "nl-svc"
	bannerAddr  = "203.0.113.10" // sshd's host: a second SSH banner on 2222
	bannerPort  = 2222
	newSvcAddr  = "203.0.113.11" // nginx's host: a new HTTP service on 8080
	newSvcPort  = 8080
	watchedFarm = "198.18.0.0/22" // part of the farm: 1,024 addresses
	monitorPort = "22,80,443,2222,8080"
	webhookKey  = "lab-webhook-secret"
)

// The proof of the monitor: a watchlist on part of the farm and
// two service hosts; a baseline rescan; then a service is opened on a new
// port and another service's version changes; the next rescan raises
// exactly those two alerts, delivered to a webhook receiver (signed) and a
// local SMTP sink. The rescans are scan jobs on the bus, run by a real
// scanner worker in the scanner's namespace with raw SYN probes.
func TestMonitorRescanAlerts(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	if err := theLab.ServicesUp(ctx); err != nil {
		t.Fatalf("netlab services up: %v", err)
	}

	// the receivers listen inside the scanner's namespace, where the
	// server runs
	hooks := startWebhookReceiver(t)
	sink := startSMTPSink(t)
	conf := filepath.Join(t.TempDir(), "vantage.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("[monitor]\nsmtp_addr = %q\nsmtp_tls = \"none\"\nsmtp_from = \"vantage@lab.test\"\n", sink.addr)), 0o644)
	const natsAddr = "127.0.0.1:14222"
	srv := testbin.StartServer(t, testbin.ServerOptions{Namespace: lab.NSScan,
		Args: append([]string{"--config", conf, "--nats-listen", natsAddr, "--log-level", "info"}, geoArgs()...)})
	worker := startWorker(t, ctx, "nats://"+natsAddr)

	// the SSH banner that will change version, before the baseline
	stopOld := startBanner(t, ctx, bannerAddr, bannerPort, "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10")

	vantage := func(args ...string) []byte {
		t.Helper()
		cmd := lab.Command(ctx, lab.NSScan, binary, append(args, "--server", srv.URL, "--key", srv.Key)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("vantage %s: %v\n%s%s\nserver:\n%s\nworker:\n%s", strings.Join(args, " "), err, out, stderr.String(), srv.Log(), worker.String())
		}
		return out
	}
	vantage("monitor", "add", "lab", "--cidr", watchedFarm, "--cidr", bannerAddr+"/31", "-p", monitorPort, "-r", "5000",
		"--every", "24h", "--webhook", hooks.url, "--webhook-secret", webhookKey, "--email", "soc@lab.test")

	rescan := func(what string) string {
		t.Helper()
		var st struct {
			ID, State, Error string
			Published        int
		}
		t0 := time.Now()
		if err := json.Unmarshal(vantage("monitor", "scan", "lab", "--wait", "3m", "--json"), &st); err != nil {
			t.Fatal(err)
		}
		if st.State != "done" {
			t.Fatalf("%s: job %s is %s: %s\nworker:\n%s", what, st.ID, st.State, st.Error, worker.String())
		}
		// the evaluation follows the job
		err := testbin.Wait(ctx, 3*time.Minute, func() (bool, error) {
			var vs []monitor.View
			err := json.Unmarshal(vantage("monitor", "list", "--json"), &vs)
			return err == nil && len(vs) == 1 && vs[0].State.LastJob == st.ID, err
		})
		if err != nil {
			t.Fatalf("%s: job %s never evaluated: %v\n%s", what, st.ID, err, srv.Log())
		}
		t.Logf("%s: job %s, %d services published, scanned and evaluated in %s", what, st.ID, st.Published, time.Since(t0).Round(100*time.Millisecond))
		return st.ID
	}
	rescan("baseline")
	var vs []monitor.View
	json.Unmarshal(vantage("monitor", "list", "--json"), &vs)
	t.Logf("baseline: %d hosts, %d services; %d webhook deliveries and %d e-mails for standing problems",
		vs[0].State.Hosts, vs[0].State.Services, len(hooks.got()), len(sink.got()))
	// the baseline must have seen the test's banner and the farm slice
	farm22 := 0
	truth, err := theLab.Truth(ctx, 22)
	if err != nil {
		t.Fatal(err)
	}
	for a := range truth {
		if a.Is4() && a.As4()[0] == 198 && a.As4()[1] == 18 && a.As4()[2] < 4 {
			farm22++
		}
	}
	if vs[0].State.Services < farm22+1 {
		t.Fatalf("baseline holds %d services; the farm slice alone has %d on port 22", vs[0].State.Services, farm22)
	}
	hooks.reset()
	sink.reset()

	// the changes: a new service on a new port, and an upgrade
	stopOld()
	startBanner(t, ctx, bannerAddr, bannerPort, "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5")
	startHTTP(t, ctx, newSvcAddr, newSvcPort)

	rescanStart := time.Now()
	job := rescan("rescan")
	want := map[string]string{
		monitor.NewService:     fmt.Sprintf("%s:%d", newSvcAddr, newSvcPort),
		monitor.VersionChanged: fmt.Sprintf("%s:%d", bannerAddr, bannerPort),
	}
	// every alert first raised since the rescan began, as the API lists
	// them: changes and standing problems alike
	var alerts []monitor.Alert
	json.Unmarshal(vantage("monitor", "alerts", "--watchlist", "lab", "--json", "-n", "10000", "--muted"), &alerts)
	raised := map[string]string{}
	n := 0
	for _, a := range alerts {
		if a.FirstSeen.Before(rescanStart) {
			t.Logf("standing since the baseline (seen %d times): %s", a.Count, a.Title)
			continue
		}
		n++
		raised[a.Kind] = fmt.Sprintf("%s:%d", a.IP, a.Port)
		t.Logf("raised by the rescan: %s: %s", a.Kind, a.Title)
	}
	if n != len(want) || raised[monitor.NewService] != want[monitor.NewService] || raised[monitor.VersionChanged] != want[monitor.VersionChanged] {
		t.Errorf("the rescan raised %v; want exactly %v", raised, want)
	}
	for _, a := range alerts {
		if a.Kind == monitor.VersionChanged && a.Evidence.Job == job {
			if a.Evidence.Before == nil || a.Evidence.After == nil || a.Evidence.Before.Version != "8.9p1" || a.Evidence.After.Version != "9.6p1" {
				t.Errorf("version change evidence: %+v -> %+v", a.Evidence.Before, a.Evidence.After)
			}
		}
	}

	// delivered: two signed webhook calls, one e-mail naming both
	if err := testbin.Wait(ctx, time.Minute, func() (bool, error) { return len(hooks.got()) >= 2 && len(sink.got()) >= 1, nil }); err != nil {
		t.Fatalf("deliveries: %d webhook calls, %d e-mails", len(hooks.got()), len(sink.got()))
	}
	time.Sleep(2 * time.Second) // anything more would arrive now
	calls := hooks.got()
	gotHooks := map[string]string{}
	for _, c := range calls {
		if err := notify.Verify(webhookKey, c.signature, c.body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
		}
		var a monitor.Alert
		if err := json.Unmarshal(c.body, &a); err != nil {
			t.Fatalf("webhook body: %v\n%s", err, c.body)
		}
		gotHooks[a.Kind] = fmt.Sprintf("%s:%d", a.IP, a.Port)
	}
	if len(calls) != 2 || !mapsEqual(gotHooks, want) {
		t.Errorf("webhook received %d calls %v; want exactly %v", len(calls), gotHooks, want)
	}
	mails := sink.got()
	if len(mails) != 1 {
		t.Fatalf("the SMTP sink received %d e-mails; want 1", len(mails))
	}
	msg, err := mail.ReadMessage(bytes.NewReader(mails[0]))
	if err != nil {
		t.Fatalf("e-mail: %v\n%s", err, mails[0])
	}
	body, _ := io.ReadAll(msg.Body)
	text := string(body)
	for _, s := range []string{"New service exposed on " + want[monitor.NewService], "Version changed on " + want[monitor.VersionChanged]} {
		if !strings.Contains(strings.ReplaceAll(text, "=\r\n", ""), s) {
			t.Errorf("the e-mail does not say %q:\n%s", s, text)
		}
	}
	t.Logf("delivered: %d signed webhook calls, 1 e-mail to %s: %q", len(calls), strings.Join(msg.Header["To"], ","), msg.Header.Get("Subject"))

	// acknowledged alerts stay acknowledged; the same finding is not sent again
	for _, a := range alerts {
		if a.Evidence.Job == job {
			vantage("monitor", "ack", a.ID)
		}
	}
	var open []monitor.Alert
	json.Unmarshal(vantage("monitor", "alerts", "--watchlist", "lab", "--state", "open", "--kind", monitor.NewService, "--json"), &open)
	if len(open) != 0 {
		t.Errorf("after ack, %d new_service alerts are still open", len(open))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// startWorker runs `vantage scanner` in the scanner's namespace.
func startWorker(t *testing.T, ctx context.Context, natsURL string) *syncBuf {
	t.Helper()
	out := &syncBuf{}
	cmd := lab.Command(ctx, lab.NSScan, binary, "scanner", "--nats", natsURL, "--allow-reserved", lab.Farm,
		"--allow-reserved", "203.0.113.0/24", "-c", "2s")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopProcess(cmd) })
	return out
}

func stopProcess(cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// startBanner serves a server-first banner (an SSH version line, then
// close, as many small devices do) in the services' namespace; the
// returned function stops it.
func startBanner(t *testing.T, ctx context.Context, addr string, port int, banner string) func() {
	t.Helper()
	script := fmt.Sprintf(`import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((%q,%d)); s.listen(64)
print("ready", flush=True)
while True:
    c,_=s.accept()
    try: c.sendall(%q.encode()+b"\r\n")
    except Exception: pass
    c.close()`, addr, port, banner)
	return startPython(t, ctx, script)
}

// startHTTP serves HTTP in the services' namespace.
func startHTTP(t *testing.T, ctx context.Context, addr string, port int) func() {
	t.Helper()
	script := fmt.Sprintf(`import http.server
class H(http.server.BaseHTTPRequestHandler):
    server_version = "LabApp/2.1"
    sys_version = ""
    def do_GET(self):
        b = b"<html><head><title>lab app</title></head><body>hello</body></html>"
        self.send_response(200); self.send_header("Content-Type","text/html"); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer((%q,%d), H)
print("ready", flush=True)
s.serve_forever()`, addr, port)
	return startPython(t, ctx, script)
}

func startPython(t *testing.T, ctx context.Context, script string) func() {
	t.Helper()
	cmd := lab.Command(ctx, svcNS, "python3", "-c", script)
	out, _ := cmd.StdoutPipe()
	var stderr syncBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 6)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "ready\n" {
		stopProcess(cmd)
		t.Fatalf("a test service did not start: %v %q %s", err, line, stderr.String())
	}
	var once sync.Once
	stop := func() { once.Do(func() { stopProcess(cmd) }) }
	t.Cleanup(stop)
	return stop
}

// webhookReceiver records signed POSTs in the scanner's namespace.
type webhookReceiver struct {
	url   string
	mu    sync.Mutex
	calls []webhookCall
}

type webhookCall struct {
	signature string
	body      []byte
}

func startWebhookReceiver(t *testing.T) *webhookReceiver {
	t.Helper()
	ln, err := netns.Listen(lab.NSScan, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &webhookReceiver{url: "http://" + ln.Addr().String() + "/hook"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.calls = append(r.calls, webhookCall{signature: req.Header.Get("X-Vantage-Signature"), body: body})
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *webhookReceiver) got() []webhookCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *webhookReceiver) reset() {
	r.mu.Lock()
	r.calls = nil
	r.mu.Unlock()
}

// smtpSink is a real SMTP server (go-smtp) in the scanner's namespace that
// keeps every message it accepts.
type smtpSink struct {
	addr  string
	mu    sync.Mutex
	mails [][]byte
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := netns.Listen(lab.NSScan, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{addr: ln.Addr().String()}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &sinkSession{s: s}, nil }))
	srv.Domain = "sink.lab.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *smtpSink) got() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails)
}

func (s *smtpSink) reset() {
	s.mu.Lock()
	s.mails = nil
	s.mu.Unlock()
}

type sinkSession struct{ s *smtpSink }

func (ss *sinkSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (ss *sinkSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.mails = append(ss.s.mails, b)
	ss.s.mu.Unlock()
	return nil
}
func (ss *sinkSession) Reset()        {}
func (ss *sinkSession) Logout() error { return nil }

var _ net.Listener // the receivers' listeners come from netns.Listen
