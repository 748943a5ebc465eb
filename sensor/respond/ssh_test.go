package respond

import (
	"crypto/md5"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestSSHOpenSSH: a real OpenSSH client gets our version and KEXINIT, we
// record its version line and HASSH; the HASSH's lists must be the ones
// ssh -G says it will offer.
func TestSSHOpenSSH(t *testing.T) {
	need(t, "ssh")
	addr, ch := listen(t, 22, Limits{})
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=5", "-F", "/dev/null", "-p", port, "scanner@" + host}
	out, err := exec.Command("ssh", append(args, "true")...).CombinedOutput()
	if err == nil {
		t.Fatalf("ssh succeeded: %s", out)
	}
	s := wait(t, ch, 5*time.Second)
	if !strings.HasPrefix(s.ev.UserAgent, "SSH-2.0-OpenSSH_") || s.info.Protocol != "ssh" {
		t.Errorf("event %+v", s.ev)
	}
	hs := s.info.Facts["ssh.hassh"]
	sum := md5.Sum([]byte(hs))
	if s.ev.HASSH != hex.EncodeToString(sum[:]) {
		t.Errorf("HASSH %s for %s", s.ev.HASSH, hs)
	}
	g, err := exec.Command("ssh", append([]string{"-G"}, args...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	conf := map[string]string{}
	for _, l := range strings.Split(string(g), "\n") {
		k, v, _ := strings.Cut(l, " ")
		conf[k] = v
	}
	parts := strings.Split(hs, ";")
	if len(parts) != 4 || !strings.HasPrefix(parts[0], conf["kexalgorithms"]) ||
		parts[1] != conf["ciphers"] || parts[2] != conf["macs"] || !strings.HasPrefix(parts[3], "none") {
		t.Errorf("HASSH string %q does not match ssh -G %v", hs, conf)
	}
	t.Logf("%s HASSH %s", s.ev.UserAgent, s.ev.HASSH)
	if !strings.Contains(string(out), "closed") && !strings.Contains(string(out), "reset") {
		t.Logf("ssh said: %s", out)
	}
}

func TestSSHNotSSH(t *testing.T) {
	addr, ch := listen(t, 2222, Limits{})
	c := dial(t, addr)
	readUntil(t, c, "\r\n")
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	s := wait(t, ch, 5*time.Second)
	if s.err == nil || !strings.Contains(string(s.ev.Payload), "GET / HTTP/1.0") {
		t.Errorf("%v %q", s.err, s.ev.Payload)
	}
}

// TestSSHPasswordsRecorded: a client that completes the key exchange and
// tries passwords is refused every time, and the attempts are recorded.
func TestSSHPasswordsRecorded(t *testing.T) {
	addr, ch := listen(t, 22, Limits{})
	tries := []string{"hunter2", "123456", "admin"}
	i := 0
	cfg := &ssh.ClientConfig{
		User: "root",
		Auth: []ssh.AuthMethod{ssh.RetryableAuthMethod(ssh.PasswordCallback(func() (string, error) {
			p := tries[i%len(tries)]
			i++
			return p, nil
		}), len(tries))},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		ClientVersion:   "SSH-2.0-Go-bruteforcer",
		Timeout:         5 * time.Second,
	}
	if c, err := ssh.Dial("tcp", addr, cfg); err == nil {
		c.Close()
		t.Fatal("a login succeeded")
	}
	s := wait(t, ch, 10*time.Second)
	if s.ev.Username != "root" || s.ev.Password != "hunter2" || s.ev.UserAgent != "SSH-2.0-Go-bruteforcer" || s.ev.HASSH == "" {
		t.Errorf("user %q password %q client %q hassh %q", s.ev.Username, s.ev.Password, s.ev.UserAgent, s.ev.HASSH)
	}
	if got := s.info.Facts["ssh.credentials"]; got != "root:hunter2, root:123456, root:admin" {
		t.Errorf("credentials %q", got)
	}
}
