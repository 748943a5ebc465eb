package respond

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
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

// The server's side of a KEXINIT, as fuzzing seeds: what a server sends
// first, which clients echo back in their own packets' framing.

// sshPacket frames payload in the unencrypted binary packet format.
func sshPacket(payload []byte) []byte {
	pad := 8 - (5+len(payload))%8
	if pad < 4 {
		pad += 8
	}
	out := make([]byte, 5+len(payload)+pad)
	binary.BigEndian.PutUint32(out, uint32(1+len(payload)+pad))
	out[4] = byte(pad)
	copy(out[5:], payload)
	rand.Read(out[5+len(payload):])
	return out
}

var sshServerLists = [10]string{
	"curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,sntrup761x25519-sha512@openssh.com,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,kex-strict-s-v00@openssh.com",
	"rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519",
	"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
	"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
	"umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
	"umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
	"none,zlib@openssh.com",
	"none,zlib@openssh.com",
	"", "",
}

func sshServerKexInit() []byte {
	p := []byte{20}
	cookie := make([]byte, 16)
	rand.Read(cookie)
	p = append(p, cookie...)
	for _, l := range sshServerLists {
		p = binary.BigEndian.AppendUint32(p, uint32(len(l)))
		p = append(p, l...)
	}
	p = append(p, 0, 0, 0, 0, 0)
	return sshPacket(p)
}
