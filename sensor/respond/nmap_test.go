package respond

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNmapScripts runs nmap's NSE clients (SMB, RDP) against the
// responders: real clients of protocols we answer (a few seconds).
func TestNmapScripts(t *testing.T) {
	need(t, "nmap")
	for _, tc := range []struct {
		port         uint16
		script, want string
	}{
		{445, "smb-protocols", "302"},
		{3389, "rdp-enum-encryption", "CredSSP"},
	} {
		// rdp-enum-encryption runs only on port 3389 (above 1023, so
		// no privilege is needed); the others take any port.
		at := "127.0.0.1:0"
		if tc.port == 3389 {
			at = "127.0.0.1:3389"
		}
		addr, ch := listenAt(t, at, tc.port, Limits{Deadline: 3 * time.Second})
		_, port, _ := strings.Cut(addr, ":")
		out, err := exec.Command("nmap", "-Pn", "-sT", "-n", "-p", port, "--script", tc.script,
			"--script-args", "smbport="+port, "127.0.0.1").CombinedOutput()
		if err != nil {
			t.Fatalf("nmap: %v %s", err, out)
		}
		t.Logf("%s:\n%s", tc.script, out)
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: want %q", tc.script, tc.want)
		}
		for len(ch) > 0 {
			s := <-ch
			t.Logf("event: %s %v %q", s.info.Protocol, s.info.Facts, s.ev.Username)
		}
	}
}
