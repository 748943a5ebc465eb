package respond

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vantagehq/vantage/record"
)

// SSH (RFC 4253): a real key exchange and user authentication
// (golang.org/x/crypto/ssh's server, with a host key made at start) in
// which every attempt fails: the client's version line is recorded as
// UserAgent, its KEXINIT as HASSH (read from the bytes it sent), and the
// user names and passwords it tries as credentials. No session, no shell,
// no channel is ever opened.
func init() {
	Register(&Responder{Name: "ssh", Ports: []uint16{22, 2222}, ServerFirst: true,
		Detect: detectSSH, Serve: serveSSH})
}

// detectSSH claims a client that speaks first with a version line (some
// do, RFC 4253 4.2 allows it).
func detectSSH(b []byte) bool { return bytes.HasPrefix(b, []byte("SSH-")) }

const sshServerVersion = "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10"

// sshMaxPacket is RFC 4253 6.1's bound an implementation must accept.
const sshMaxPacket = 35000

// sshKexInit is a parsed SSH_MSG_KEXINIT.
type sshKexInit struct {
	Lists [10][]string // kex, hostkey, enc c2s, enc s2c, mac c2s, mac s2c, comp c2s, comp s2c, lang c2s, lang s2c
}

// parseKexInit parses an SSH_MSG_KEXINIT payload (message number first).
func parseKexInit(p []byte) (*sshKexInit, error) {
	r := &reader{b: p}
	if r.u8() != 20 {
		return nil, errBadRequest
	}
	r.bytes(16) // cookie
	k := &sshKexInit{}
	for i := range k.Lists {
		l := r.vec(4)
		if r.bad || l.bad {
			return nil, errShort
		}
		if len(l.b) > 0 {
			k.Lists[i] = strings.Split(string(l.b), ",")
		}
	}
	r.u8()  // first_kex_packet_follows
	r.u32() // reserved
	if r.bad {
		return nil, errShort
	}
	return k, nil
}

// HASSHString is "kex;enc_c2s;mac_c2s;comp_c2s" (the client HASSH).
func (k *sshKexInit) HASSHString() string {
	return strings.Join([]string{
		strings.Join(k.Lists[0], ","), strings.Join(k.Lists[2], ","),
		strings.Join(k.Lists[4], ","), strings.Join(k.Lists[6], ","),
	}, ";")
}

// HASSH is the MD5 of HASSHString in hex.
func (k *sshKexInit) HASSH() string {
	s := md5.Sum([]byte(k.HASSHString()))
	return hex.EncodeToString(s[:])
}

// readSSHVersion reads the client's version line (at most 255 bytes, RFC
// 4253 4.2). Only servers may send other lines first: anything else ends
// the conversation (it is in the payload).
func readSSHVersion(c *Conn) (string, error) {
	line, err := c.ReadLine(255)
	if err != nil {
		return string(line), err
	}
	if !bytes.HasPrefix(line, []byte("SSH-")) {
		return "", errBadRequest
	}
	return string(line), nil
}

// sshMaxAttempts bounds the authentication attempts recorded per
// connection (x/crypto/ssh ends the connection after them).
const sshMaxAttempts = 6

var errSSHDenied = errors.New("permission denied")

// sshHostKey is made once per process: a sensor's key is as good as any.
var sshHostKey = sync.OnceValues(func() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
})

func serveSSH(ctx context.Context, c *Conn, ev *record.Event) error {
	key, err := sshHostKey()
	if err != nil {
		return err
	}
	var creds []string
	login := func(user, password string) {
		if ev.Username == "" {
			ev.Username, ev.Password = clean(user, 255), clean(password, 255)
		}
		if len(creds) < sshMaxAttempts {
			creds = append(creds, clean(user, 64)+":"+clean(password, 64))
		}
	}
	cfg := &ssh.ServerConfig{
		ServerVersion: sshServerVersion,
		MaxAuthTries:  sshMaxAttempts,
		PasswordCallback: func(m ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
			login(m.User(), string(password))
			return nil, errSSHDenied
		},
		KeyboardInteractiveCallback: func(m ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			answers, err := ask(m.User(), "", []string{"Password: "}, []bool{false})
			if err == nil && len(answers) == 1 {
				login(m.User(), answers[0])
			}
			return nil, errSSHDenied
		},
		PublicKeyCallback: func(m ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			// offering a key is not trying a password: kept as a fact
			c.Fact("ssh.publickey", clean(m.User(), 64)+" "+k.Type()+" "+ssh.FingerprintSHA256(k))
			return nil, errSSHDenied
		},
	}
	cfg.AddHostKey(key)
	// the version exchange is ours, so a client that is not SSH is told
	// apart at once (x/crypto/ssh would wait for a version line); the
	// library then gets the client's line replayed and its own swallowed
	if err := c.Write([]byte(sshServerVersion + "\r\n")); err != nil {
		return err
	}
	v, err := readSSHVersion(c)
	if v != "" {
		ev.UserAgent = clean(v, 255)
	}
	if err != nil {
		return err
	}
	tee := &sshTee{c: c, pending: []byte(v + "\r\n"), swallow: []byte(sshServerVersion + "\r\n")}
	_, _, _, err = ssh.NewServerConn(tee, cfg)
	// what the client sent in the clear: its version line, then KEXINIT
	if line, rest, ok := bytes.Cut(tee.seen, []byte("\n")); ok && bytes.HasPrefix(line, []byte("SSH-")) {
		if len(rest) > 5 {
			n := int(binary.BigEndian.Uint32(rest))
			if n >= 5 && n <= sshMaxPacket && len(rest) >= 4+n && int(rest[4]) < n {
				if k, kerr := parseKexInit(rest[5 : 4+n-int(rest[4])]); kerr == nil {
					ev.HASSH = k.HASSH()
					c.Fact("ssh.hassh", k.HASSHString())
					c.Fact("ssh.hostkey_algorithms", strings.Join(k.Lists[1], ","))
				}
			}
		}
	}
	if len(creds) > 0 {
		c.Fact("ssh.credentials", strings.Join(creds, ", "))
	}
	if errors.Is(err, errSSHDenied) || err != nil && strings.Contains(err.Error(), "no auth passed yet") {
		return nil // the usual end: every attempt refused
	}
	return err
}

// sshTee is the connection as x/crypto/ssh sees it: reads go through the
// responder's capped reader (the client's version line, already read,
// first), the first bytes are kept for the HASSH, and the library's own
// version line, already sent, is dropped.
type sshTee struct {
	c       *Conn
	seen    []byte
	pending []byte
	swallow []byte
}

func (t *sshTee) Read(p []byte) (n int, err error) {
	if len(t.pending) > 0 {
		n = copy(p, t.pending)
		t.pending = t.pending[n:]
	} else {
		n, err = t.c.Read(p)
	}
	if room := 8192 - len(t.seen); room > 0 && n > 0 {
		t.seen = append(t.seen, p[:min(n, room)]...)
	}
	return n, err
}

func (t *sshTee) Write(p []byte) (int, error) {
	if t.swallow != nil && bytes.Equal(p, t.swallow) {
		t.swallow = nil
		return len(p), nil
	}
	if err := t.c.Write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (t *sshTee) Close() error                       { return t.c.nc.Close() }
func (t *sshTee) LocalAddr() net.Addr                { return t.c.nc.LocalAddr() }
func (t *sshTee) RemoteAddr() net.Addr               { return t.c.nc.RemoteAddr() }
func (t *sshTee) SetDeadline(d time.Time) error      { return t.c.nc.SetDeadline(d) }
func (t *sshTee) SetReadDeadline(d time.Time) error  { return t.c.nc.SetReadDeadline(d) }
func (t *sshTee) SetWriteDeadline(d time.Time) error { return t.c.nc.SetWriteDeadline(d) }
