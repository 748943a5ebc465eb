package e2e_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/client"
	"github.com/vantagehq/vantage/internal/testbin"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/triage"
)

// TestTriageCLI: sources of an sshd log and a firewall log, asked of a
// server whose sensors saw three of them: the one no sensor saw comes
// first (possibly aimed at you), then the malicious one with its tags,
// the unknown noise, and the benign scanner last, by name. The same log
// sent to the API (POST /api/v1/triage) gets the same answer; and once
// the server has stopped, `vantage triage --data` asks its store directly
// (while it runs, --data says to use --server).
func TestTriageCLI(t *testing.T) {
	srv := testbin.StartServer(t, testbin.ServerOptions{})
	c := client.New(srv.URL, srv.Key)
	now := time.Now().UTC()
	var evs []record.Event
	for i, s := range []struct {
		src, class, actor string
		tags              []string
	}{
		{"203.0.113.50", "malicious", "", []string{"SSH_BRUTEFORCE"}},
		{"198.51.100.9", "unknown", "", []string{"TCP_SYN", "ZMAP"}},
		{"192.0.2.77", "benign", "SHODAN", []string{"SHODAN"}},
	} {
		for j := 0; j < 3; j++ { // each reaches three sensor addresses: noise, not rare
			evs = append(evs, record.Event{ID: record.NewID(), Time: now.Add(-time.Duration(i*10+j) * time.Second), Sensor: "s1",
				Src: netip.MustParseAddr(s.src), Dst: netip.AddrFrom4([4]byte{198, 18, 0, byte(j + 1)}), DstPort: 22, Transport: "tcp",
				Tags: s.tags, Classification: s.class, Actor: s.actor, Handshake: true})
		}
	}
	if err := c.Ingest(context.Background(), "events", &record.Batch{ID: record.NewID(), Producer: "sensor/t", Events: evs}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	authLog := `Nov 27 10:02:00 host sshd[1]: Failed password for root from 203.0.113.50 port 1 ssh2
Nov 27 10:02:01 host sshd[2]: Invalid user admin from 203.0.113.99 port 2
Nov 27 10:02:02 host sshd[3]: Failed password for root from 203.0.113.99 port 3 ssh2
`
	fwLog := `Nov 27 10:01:00 gw kernel: IN=eth0 SRC=198.51.100.9 DST=198.18.0.1 PROTO=TCP SPT=1 DPT=23 SYN
Nov 27 10:01:01 gw kernel: IN=eth0 SRC=192.0.2.77 DST=198.18.0.1 PROTO=TCP SPT=1 DPT=443 SYN
a line of no known format
`
	auth := filepath.Join(dir, "auth.log")
	fw := filepath.Join(dir, "fw.log")
	os.WriteFile(auth, []byte(authLog), 0o644)
	os.WriteFile(fw, []byte(fwLog), 0o644)
	bin, err := testbin.Build()
	if err != nil {
		t.Fatal(err)
	}
	const want = "203.0.113.99 not seen, 203.0.113.50 malicious, 198.51.100.9 noise, 192.0.2.77 benign"
	verdicts := func(rep *triage.Report) string {
		var parts []string
		for _, r := range rep.Sources {
			parts = append(parts, r.Addr.String()+" "+r.Verdict)
		}
		return strings.Join(parts, ", ")
	}
	triageJSON := func(args ...string) (*triage.Report, error) {
		cmd := exec.Command(bin, append([]string{"triage", "--json"}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, &exec.ExitError{ProcessState: cmd.ProcessState, Stderr: []byte(stderr.String())}
		}
		var rep triage.Report
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		return &rep, nil
	}
	var rep *triage.Report
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		if rep, err = triageJSON("--server", srv.URL, auth, fw); err != nil {
			t.Fatalf("triage: %v\n%s", err, err.(*exec.ExitError).Stderr)
		}
		if verdicts(rep) == want {
			break
		}
	}
	if got := verdicts(rep); got != want {
		t.Fatalf("triage order and verdicts: %s", got)
	}
	rows := rep.Sources
	if rows[0].Hits != 2 || rows[0].File != auth || rows[0].FirstLine != 2 || rows[0].LastLine != 3 ||
		!strings.Contains(rows[1].Why, "SSH_BRUTEFORCE") || !strings.Contains(rows[3].Why, "SHODAN") || rows[2].Destinations != 3 {
		t.Errorf("rows: %+v", rows)
	}
	if rep.Lines != 6 || rep.Malformed != 1 || len(rep.MalformedExamples) != 1 || rep.MalformedExamples[0].File != fw ||
		rep.Formats["ssh"] != 3 || rep.Formats["firewall"] != 2 {
		t.Errorf("stats: %d lines, %d malformed %+v, formats %v", rep.Lines, rep.Malformed, rep.MalformedExamples, rep.Formats)
	}

	// the table for people
	out, err := exec.Command(bin, "triage", "--server", srv.URL, auth).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "look closer") || !strings.Contains(string(out), "3 lines, 2 sources") {
		t.Errorf("table: %v\n%s", err, out)
	}

	// the API reads the log itself
	api, err := c.Triage(context.Background(), strings.NewReader(authLog+fwLog))
	if err != nil {
		t.Fatal(err)
	}
	if got := verdicts(api); got != want || api.Lines != 6 || api.Malformed != 1 {
		t.Errorf("POST /api/v1/triage: %s; %d lines, %d malformed", got, api.Lines, api.Malformed)
	}

	// --data while the server holds the store, --data with --server
	out, err = exec.Command(bin, "triage", "--data", srv.Data, auth).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "the data directory is in use by a running server: use --server URL") {
		t.Errorf("--data of a running server's directory: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "triage", "--data", srv.Data, "--server", srv.URL, auth).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "none of the others can be") {
		t.Errorf("--data with --server: %v\n%s", err, out)
	}

	// --data once it has stopped
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if rep, err = triageJSON("--data", srv.Data, auth, fw); err != nil {
		t.Fatalf("triage --data: %v\n%s", err, err.(*exec.ExitError).Stderr)
	}
	if got := verdicts(rep); got != want {
		t.Errorf("triage --data: %s", got)
	}
	out, err = exec.Command(bin, "triage", "--data", dir, auth).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "holds no store") {
		t.Errorf("--data of a directory without a store: %v\n%s", err, out)
	}
}
