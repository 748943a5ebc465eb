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
)

// TestTriageCLI: sources of an sshd log and a firewall log, asked of a
// server whose sensors saw three of them: the one no sensor saw comes
// first (possibly aimed at you), then the malicious one with its tags,
// the unknown noise, and the benign scanner last, by name.
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
		for j := 0; j < 3; j++ {
			evs = append(evs, record.Event{ID: record.NewID(), Time: now.Add(-time.Duration(i*10+j) * time.Second), Sensor: "s1",
				Src: netip.MustParseAddr(s.src), Dst: netip.AddrFrom4([4]byte{198, 18, 0, byte(j + 1)}), DstPort: 22, Transport: "tcp",
				Tags: s.tags, Classification: s.class, Actor: s.actor, Handshake: true})
		}
	}
	if err := c.Ingest(context.Background(), "events", &record.Batch{ID: record.NewID(), Producer: "sensor/t", Events: evs}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	auth := filepath.Join(dir, "auth.log")
	os.WriteFile(auth, []byte(`Nov 27 10:02:00 host sshd[1]: Failed password for root from 203.0.113.50 port 1 ssh2
Nov 27 10:02:01 host sshd[2]: Invalid user admin from 203.0.113.99 port 2
Nov 27 10:02:02 host sshd[3]: Failed password for root from 203.0.113.99 port 3 ssh2
`), 0o644)
	fw := filepath.Join(dir, "fw.log")
	os.WriteFile(fw, []byte(`Nov 27 10:01:00 gw kernel: IN=eth0 SRC=198.51.100.9 DST=198.18.0.1 PROTO=TCP SPT=1 DPT=23 SYN
Nov 27 10:01:01 gw kernel: IN=eth0 SRC=192.0.2.77 DST=198.18.0.1 PROTO=TCP SPT=1 DPT=443 SYN
`), 0o644)
	bin, err := testbin.Build()
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		IP      string `json:"ip"`
		Hits    int    `json:"hits"`
		Verdict string `json:"verdict"`
		Why     string `json:"why"`
	}
	var got string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		out, err := exec.Command(bin, "triage", "--json", "--server", srv.URL, auth, fw).Output()
		if err != nil {
			t.Fatalf("triage: %v\n%s", err, out)
		}
		if err := json.Unmarshal(out, &rows); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, r := range rows {
			parts = append(parts, r.IP+" "+r.Verdict)
		}
		got = strings.Join(parts, ", ")
		if got == "203.0.113.99 not seen, 203.0.113.50 malicious, 198.51.100.9 noise, 192.0.2.77 benign" {
			break
		}
	}
	if got != "203.0.113.99 not seen, 203.0.113.50 malicious, 198.51.100.9 noise, 192.0.2.77 benign" {
		t.Fatalf("triage order and verdicts: %s", got)
	}
	if rows[0].Hits != 2 || !strings.Contains(rows[1].Why, "SSH_BRUTEFORCE") || !strings.Contains(rows[3].Why, "SHODAN") {
		t.Errorf("rows: %+v", rows)
	}
	// the table for people
	out, err := exec.Command(bin, "triage", "--server", srv.URL, auth).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "look closer") || !strings.Contains(string(out), "3 lines, 2 sources") {
		t.Errorf("table: %v\n%s", err, out)
	}
}
