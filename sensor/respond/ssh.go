package respond

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"strings"

	"github.com/vantagehq/vantage/record"
)

// SSH (RFC 4253): sends a version line, reads the client's version line
// (recorded as UserAgent) and its KEXINIT (HASSH into Event.HASSH), sends a
// KEXINIT of our own and closes before the key exchange: no key exchange
// is done, so no authentication is ever attempted, let alone allowed, and
// no credentials are recorded.
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

// readSSHPacket reads one unencrypted binary packet and returns its
// payload.
func readSSHPacket(c *Conn) ([]byte, error) {
	hdr, err := c.ReadFull(5)
	if err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	pad := int(hdr[4])
	if n < 5 || n > sshMaxPacket || int(n) > c.Lim.MaxMessage || pad >= int(n) {
		return nil, ErrLimit
	}
	body, err := c.ReadFull(int(n) - 1)
	if err != nil {
		return nil, err
	}
	return body[:len(body)-pad], nil
}

func serveSSH(ctx context.Context, c *Conn, ev *record.Event) error {
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
	if err := c.Write(sshServerKexInit()); err != nil {
		return err
	}
	p, err := readSSHPacket(c)
	if err != nil {
		return err
	}
	k, err := parseKexInit(p)
	if err != nil {
		return err
	}
	ev.HASSH = k.HASSH()
	c.Fact("ssh.hassh", k.HASSHString())
	c.Fact("ssh.hostkey_algorithms", strings.Join(k.Lists[1], ","))
	return nil
}
