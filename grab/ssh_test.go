package grab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

// Helpers shared by the tests of the server-first modules (ssh, ftp, smtp,
// pop3, imap, telnet, vnc).

// greetGrab grabs the service at addr through a Grabber. port, when not
// zero, is the port the target claims to be on: the connection still
// goes to addr, so a module's own-port rules can be tried without
// binding 21 or 25. proto names the module to use, or "" for none.
func greetGrab(t *testing.T, addr netip.AddrPort, port uint16, proto string) (record.Service, error, time.Duration) {
	t.Helper()
	cfg := Config{Timeout: 3 * time.Second, GreetingWait: 400 * time.Millisecond}
	target := Target{Addr: addr, Protocol: proto}
	if port != 0 {
		target.Addr = netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port)
		cfg.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr.String())
		}
	}
	start := time.Now()
	svc, err := New(cfg).Grab(context.Background(), target)
	return svc, err, time.Since(start)
}

// greetLines reads CRLF or LF lines from c and answers each via answer
// until it returns "" and close, or the client hangs up.
func greetLines(c net.Conn, answer func(line string) (reply string, close bool)) {
	r := bufio.NewReader(c)
	for i := 0; i < 100; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		reply, done := answer(strings.TrimRight(line, "\r\n"))
		if reply != "" {
			c.Write([]byte(reply))
		}
		if done {
			return
		}
	}
}

// A fake sshd, written from RFC 4253, RFC 5656 and RFC 8731.

type fakeSSH struct {
	prebanner string
	version   string
	lists     [10]string
	silent    bool // send the version line and hang up
	hostKey   ed25519.PrivateKey
	// what the client sent
	gotVersion chan string
	gotKexInit chan []byte
}

func sshTestKey() ed25519.PrivateKey {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// sshTestKeyFingerprint is what ssh-keygen -lf prints for sshTestKey.
const sshTestKeyFingerprint = "SHA256:lbmsoA0yIEcEiVDRnMWuzm+nV+3ZEEpVIURqFoeSspg"

var openSSH92 = [10]string{
	"sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,kex-strict-s-v00@openssh.com",
	"ssh-ed25519,rsa-sha2-512,rsa-sha2-256",
	"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
	"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
	"umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
	"umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
	"none,zlib@openssh.com", "none,zlib@openssh.com", "", "",
}

// HASSH-server of openSSH92, computed with md5sum over the joined lists.
const openSSH92HASSH = "425d29fe50d8e4f5e37efb6e24bcf660"

// An OpenSSH 5.3 server's lists, from the HASSH README; no curve25519.
var openSSH53 = [10]string{
	"diffie-hellman-group-exchange-sha256,diffie-hellman-group-exchange-sha1,diffie-hellman-group14-sha1,diffie-hellman-group1-sha1",
	"ssh-rsa,ssh-dss",
	"aes128-ctr,aes192-ctr,aes256-ctr,arcfour256,arcfour128,aes128-cbc,3des-cbc,blowfish-cbc,cast128-cbc,aes192-cbc,aes256-cbc,arcfour,rijndael-cbc@lysator.liu.se",
	"aes128-ctr,aes192-ctr,aes256-ctr,arcfour256,arcfour128,aes128-cbc,3des-cbc,blowfish-cbc,cast128-cbc,aes192-cbc,aes256-cbc,arcfour,rijndael-cbc@lysator.liu.se",
	"hmac-md5,hmac-sha1,umac-64@openssh.com,hmac-ripemd160,hmac-ripemd160@openssh.com,hmac-sha1-96,hmac-md5-96",
	"hmac-md5,hmac-sha1,umac-64@openssh.com,hmac-ripemd160,hmac-ripemd160@openssh.com,hmac-sha1-96,hmac-md5-96",
	"none,zlib@openssh.com", "none,zlib@openssh.com", "", "",
}

const openSSH53HASSH = "b1c6c0d56317555b85c7005a3de29325"

func testSSHString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func testSSHPacket(payload []byte) []byte {
	pad := 8 - (5+len(payload))%8
	if pad < 4 {
		pad += 8
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(1+len(payload)+pad))
	out = append(out, byte(pad))
	out = append(out, payload...)
	return append(out, make([]byte, pad)...)
}

func testSSHReadPacket(r *bufio.Reader) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 5 || n > 35000 || int(hdr[4]) > int(n)-1 {
		return nil, errors.New("bad packet")
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body[:len(body)-int(hdr[4])], nil
}

func testKexInit(lists [10]string) []byte {
	p := append([]byte{20}, bytes.Repeat([]byte{0xA5}, 16)...)
	for _, l := range lists {
		p = testSSHString(p, []byte(l))
	}
	return append(p, 0, 0, 0, 0, 0)
}

func (f *fakeSSH) serve(c net.Conn) {
	vs := f.version
	c.Write([]byte(f.prebanner + vs + "\r\n"))
	if f.silent {
		return
	}
	iS := testKexInit(f.lists)
	c.Write(testSSHPacket(iS))
	r := bufio.NewReader(c)
	vc, err := r.ReadString('\n')
	if err != nil {
		return
	}
	vc = strings.TrimRight(vc, "\r\n")
	if f.gotVersion != nil {
		f.gotVersion <- vc
	}
	iC, err := testSSHReadPacket(r)
	if err != nil || iC[0] != 20 {
		return
	}
	if f.gotKexInit != nil {
		f.gotKexInit <- iC
	}
	init, err := testSSHReadPacket(r)
	if err != nil || init[0] != 30 || len(init) != 1+4+32 {
		return
	}
	qC := init[5:]
	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	peer, err := ecdh.X25519().NewPublicKey(qC)
	if err != nil {
		return
	}
	secret, err := priv.ECDH(peer)
	if err != nil {
		return
	}
	pub := f.hostKey.Public().(ed25519.PublicKey)
	kS := testSSHString(testSSHString(nil, []byte("ssh-ed25519")), pub)
	qS := priv.PublicKey().Bytes()
	// H = SHA256(V_C || V_S || I_C || I_S || K_S || Q_C || Q_S || K)
	var h []byte
	for _, s := range [][]byte{[]byte(vc), []byte(vs), iC, iS, kS, qC, qS} {
		h = testSSHString(h, s)
	}
	k := new(big.Int).SetBytes(secret).Bytes()
	if len(k) > 0 && k[0]&0x80 != 0 {
		k = append([]byte{0}, k...)
	}
	h = testSSHString(h, k)
	sum := sha256.Sum256(h)
	sig := testSSHString(testSSHString(nil, []byte("ssh-ed25519")), ed25519.Sign(f.hostKey, sum[:]))
	reply := []byte{31}
	for _, s := range [][]byte{kS, qS, sig} {
		reply = testSSHString(reply, s)
	}
	c.Write(append(testSSHPacket(reply), testSSHPacket([]byte{21})...)) // and NEWKEYS
	io.Copy(io.Discard, r)
}

func TestSSHGrab(t *testing.T) {
	key := sshTestKey()
	tests := []struct {
		name  string
		srv   *fakeSSH
		proto string
		// expected
		banner, hassh, keyType, fingerprint, prebanner string
	}{
		{
			name:   "openssh named",
			srv:    &fakeSSH{version: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", lists: openSSH92, hostKey: key},
			proto:  "ssh",
			banner: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", hassh: openSSH92HASSH,
			keyType: "ssh-ed25519", fingerprint: sshTestKeyFingerprint,
		},
		{
			name:   "openssh on another port",
			srv:    &fakeSSH{version: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", lists: openSSH92, hostKey: key},
			banner: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", hassh: openSSH92HASSH,
			keyType: "ssh-ed25519", fingerprint: sshTestKeyFingerprint,
		},
		{
			name:   "version line only, then hang up",
			srv:    &fakeSSH{version: "SSH-2.0-dropbear_2019.78", silent: true},
			proto:  "ssh",
			banner: "SSH-2.0-dropbear_2019.78",
		},
		{
			name:   "no curve25519: KEXINIT only",
			srv:    &fakeSSH{version: "SSH-2.0-OpenSSH_5.3", lists: openSSH53, hostKey: key},
			banner: "SSH-2.0-OpenSSH_5.3", hassh: openSSH53HASSH,
		},
		{
			name: "1.99 after lines of text",
			srv: &fakeSSH{prebanner: "Welcome to the gateway\r\nAuthorised use only\r\n",
				version: "SSH-1.99-Cisco-1.25", lists: openSSH92, hostKey: key},
			banner: "SSH-1.99-Cisco-1.25", hassh: openSSH92HASSH,
			keyType: "ssh-ed25519", fingerprint: sshTestKeyFingerprint,
			prebanner: "Welcome to the gateway\nAuthorised use only",
		},
		{
			name:   "SSH-1 only",
			srv:    &fakeSSH{version: "SSH-1.5-1.2.27", silent: true},
			banner: "SSH-1.5-1.2.27",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.srv.serve)
			svc, err, took := greetGrab(t, addr, 0, tt.proto)
			if err != nil {
				t.Fatal(err)
			}
			if svc.Protocol != "ssh" || string(svc.Banner) != tt.banner {
				t.Fatalf("got %s %q", svc.Protocol, svc.Banner)
			}
			if svc.SSH == nil || svc.SSH.Banner != tt.banner {
				t.Fatalf("ssh record %+v", svc.SSH)
			}
			if svc.SSH.HASSH != tt.hassh || svc.SSH.HostKeyType != tt.keyType || svc.SSH.HostKeySHA256 != tt.fingerprint {
				t.Errorf("got hassh %q key %q %q (took %v)", svc.SSH.HASSH, svc.SSH.HostKeyType, svc.SSH.HostKeySHA256, took)
			}
			if tt.hassh != "" {
				if len(svc.SSH.KexAlgorithms) == 0 || svc.Data["ssh.host_key_algorithms"] == "" || svc.Data["ssh.ciphers"] == "" {
					t.Errorf("algorithm lists missing: %v %v", svc.SSH.KexAlgorithms, svc.Data)
				}
			}
			if svc.Data["ssh.prebanner"] != tt.prebanner {
				t.Errorf("prebanner %q", svc.Data["ssh.prebanner"])
			}
		})
	}
}

// The client's side: our version line and a KEXINIT a server accepts.
func TestSSHClientHello(t *testing.T) {
	srv := &fakeSSH{version: "SSH-2.0-OpenSSH_9.2p1", lists: openSSH92, hostKey: sshTestKey(),
		gotVersion: make(chan string, 1), gotKexInit: make(chan []byte, 1)}
	addr := fakeServer(t, srv.serve)
	if _, err, _ := greetGrab(t, addr, 0, "ssh"); err != nil {
		t.Fatal(err)
	}
	var v string
	var kexInit []byte
	select {
	case v = <-srv.gotVersion:
	case <-time.After(time.Second):
		t.Fatal("the server got no version line")
	}
	select {
	case kexInit = <-srv.gotKexInit:
	case <-time.After(time.Second):
		t.Fatal("the server got no KEXINIT")
	}
	if v != "SSH-2.0-Vantage_1.0" {
		t.Errorf("client version %q", v)
	}
	k, err := sshParseKexInit(kexInit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.lists[0], "curve25519-sha256,") || k.follows {
		t.Errorf("client KEXINIT %+v", k)
	}
}

// Hostile servers: an endless version line, a 4 GB packet, a slow drip.
func TestSSHHostile(t *testing.T) {
	tests := []struct {
		name   string
		handle func(c net.Conn)
		banner string // expected, "" for any
	}{
		{"endless version line", func(c net.Conn) {
			c.Write([]byte("SSH-2.0-"))
			chunk := bytes.Repeat([]byte("A"), 4096)
			for i := 0; i < 1000; i++ {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}, ""},
		{"huge packet length", func(c net.Conn) {
			c.Write([]byte("SSH-2.0-Evil\r\n\xff\xff\xff\xf0\x04\x14"))
			io.Copy(io.Discard, c)
		}, "SSH-2.0-Evil"},
		{"garbage after the version line", func(c net.Conn) {
			c.Write([]byte("SSH-2.0-Evil\r\n"))
			c.Write(bytes.Repeat([]byte{0}, 64))
			io.Copy(io.Discard, c)
		}, "SSH-2.0-Evil"},
		{"not a version line", func(c net.Conn) {
			for i := 0; i < 1000; i++ {
				if _, err := c.Write([]byte("SSH-but not really a version\r\n")); err != nil {
					return
				}
			}
		}, "SSH-but not really a version"},
		{"endless lines before the version", func(c net.Conn) {
			for i := 0; i < 1000; i++ {
				if _, err := c.Write([]byte("Welcome\r\n")); err != nil {
					return
				}
			}
		}, "-"},
		{"slow drip", func(c net.Conn) {
			c.Write([]byte("SSH-2.0-Slow\r\n"))
			p := testSSHPacket(testKexInit(openSSH92))
			for _, b := range p {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}, "SSH-2.0-Slow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.handle)
			svc, _, took := greetGrab(t, addr, 0, "ssh")
			if took > 4*time.Second {
				t.Errorf("took %v", took)
			}
			if tt.banner == "-" {
				// never a version line: not claimed
				if svc.Protocol == "ssh" {
					t.Errorf("claimed: %+v", svc)
				}
				return
			}
			if svc.Protocol != "ssh" {
				t.Errorf("protocol %q", svc.Protocol)
			}
			if tt.banner != "" && !strings.HasPrefix(string(svc.Banner), tt.banner) {
				t.Errorf("banner %q", clip(svc.Banner, 80))
			}
			if svc.SSH != nil && svc.SSH.HASSH != "" {
				t.Errorf("hassh from a hostile server: %+v", svc.SSH)
			}
		})
	}
}

func TestSSHClaims(t *testing.T) {
	tests := []struct {
		g    string
		want bool
	}{
		{"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n", true},
		{"SSH-1.99-Cisco-1.25\n", true},
		{"SSH-2.0-dropbear", true},
		{"Welcome\r\nSSH-2.0-X\r\n", true},
		{"220 mail ESMTP\r\n", false},
		{"\x00\x01SSH-2.0-X\r\n", false},
		{"RFB 003.008\n", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := sshClaims([]byte(tt.g)); got != tt.want {
			t.Errorf("sshClaims(%q) = %v", tt.g, got)
		}
	}
}

func TestSSHParse(t *testing.T) {
	k, err := sshParseKexInit(testKexInit(openSSH53))
	if err != nil {
		t.Fatal(err)
	}
	if k.hassh() != openSSH53HASSH {
		t.Errorf("hassh %s", k.hassh())
	}
	if a, ok := sshNegotiate(sshOffer[0], k.lists[0]); !ok || a != "diffie-hellman-group-exchange-sha256" {
		t.Errorf("negotiated %q", a)
	}
	blob := testSSHString(testSSHString(nil, []byte("ssh-ed25519")), sshTestKey().Public().(ed25519.PublicKey))
	if got := sshFingerprint(blob); got != sshTestKeyFingerprint {
		t.Errorf("fingerprint %s", got)
	}
	if got := sshKeyType(blob); got != "ssh-ed25519" {
		t.Errorf("key type %q", got)
	}
	for _, bad := range [][]byte{nil, {20}, testKexInit(openSSH53)[:100], {21, 0}} {
		if _, err := sshParseKexInit(bad); err == nil {
			t.Errorf("parsed %x", bad)
		}
	}
	if _, _, err := sshParsePacket([]byte{0xff, 0xff, 0xff, 0xff, 4, 20}); err == nil {
		t.Error("a 4 GB packet parsed")
	}
}

// FuzzSSHPacket drives the packet, KEXINIT and ECDH reply parsers with
// whatever a server might send after its version line.
func FuzzSSHPacket(f *testing.F) {
	f.Add(testSSHPacket(testKexInit(openSSH92)))
	f.Fuzz(func(t *testing.T, data []byte) {
		for i := 0; i < 4 && len(data) > 0; i++ {
			payload, rest, err := sshParsePacket(data)
			if err != nil {
				return
			}
			if len(rest) >= len(data) {
				t.Fatal("no progress")
			}
			data = rest
			if k, err := sshParseKexInit(payload); err == nil {
				k.hassh()
				sshNegotiate(sshOffer[0], k.lists[0])
				var r Result
				r.SSH = &record.SSH{}
				k.describe(&r)
			}
			if key, err := sshParseECDHReply(payload); err == nil {
				sshKeyType(key)
				sshFingerprint(key)
			}
		}
	})
}
