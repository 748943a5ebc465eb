package grab

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vantagehq/vantage/record"
)

// SSH (RFC 4253): the server's version line, then our own and a KEXINIT;
// the server's KEXINIT gives the algorithm lists and HASSH-server; then
// one curve25519-sha256 key exchange (RFC 8731) just far enough to read
// SSH_MSG_KEX_ECDH_REPLY (RFC 5656 §4) and its host key. Never NEWKEYS,
// never authentication. Whatever step fails, the version line already
// read is a result: many small devices send it and hang up.
func init() {
	Register(Module{
		Name:   "ssh",
		Ports:  []uint16{22},
		Claims: sshClaims,
		Grab:   grabSSH,
	})
}

const (
	sshClientVersion = "SSH-2.0-Vantage_1.0"
	sshMaxLine       = 1024  // RFC 4253 §4.2 says 255 with CR LF; some send more
	sshMaxPreLines   = 20    // lines a server may send before its version line
	sshMaxPacket     = 35000 // RFC 4253 §6.1: every implementation takes 35000
	sshMaxPackets    = 8     // packets read while waiting for one message
)

// Message numbers (RFC 4253 §12, RFC 5656 §7.1).
const (
	sshMsgDisconnect    = 1
	sshMsgIgnore        = 2
	sshMsgUnimplemented = 3
	sshMsgDebug         = 4
	sshMsgExtInfo       = 7
	sshMsgKexInit       = 20
	sshMsgKexECDHInit   = 30
	sshMsgKexECDHReply  = 31
)

// What we offer. Only curve25519 is ever carried out; the rest is there so
// that the server negotiates instead of disconnecting, which it would log
// as an error. The host key algorithms are in the order whose key we
// prefer to fingerprint (ed25519, as OpenSSH clients do).
var sshOffer = [10]string{
	"curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521," +
		"diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512," +
		"diffie-hellman-group14-sha256,diffie-hellman-group14-sha1,diffie-hellman-group1-sha1",
	"ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-dss",
	sshOfferCiphers, sshOfferCiphers,
	sshOfferMACs, sshOfferMACs,
	"none,zlib@openssh.com,zlib", "none,zlib@openssh.com,zlib",
	"", "",
}

const (
	sshOfferCiphers = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com," +
		"aes128-cbc,aes192-cbc,aes256-cbc,3des-cbc"
	sshOfferMACs = "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64-etm@openssh.com," +
		"umac-128-etm@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1,umac-64@openssh.com,umac-128@openssh.com,hmac-md5"
)

// sshClaims accepts a greeting whose first line starts "SSH-", or one
// where a strict version line ("SSH-2.0-...") follows a few lines of text
// (RFC 4253 §4.2 lets a server send other lines first).
func sshClaims(g []byte) bool {
	if bytes.HasPrefix(g, []byte("SSH-")) {
		return true
	}
	for i := 0; i < sshMaxPreLines && len(g) > 0; i++ {
		line, rest, _ := bytes.Cut(g, []byte{'\n'})
		if sshIsVersionLine(line) {
			return true
		}
		if !sshText(line) {
			return false
		}
		g = rest
	}
	return false
}

// sshIsVersionLine reports whether line is "SSH-<digits>.<digits>-...".
func sshIsVersionLine(line []byte) bool {
	proto, _, ok := sshSplitVersion(string(bytes.TrimRight(line, "\r\n")))
	return ok && proto != ""
}

// sshSplitVersion splits "SSH-protoversion-softwareversion SP comments"
// into the protocol version and the rest; ok only when the protocol
// version is digits.digits.
func sshSplitVersion(line string) (proto, software string, ok bool) {
	rest, found := strings.CutPrefix(line, "SSH-")
	if !found {
		return "", "", false
	}
	proto, software, found = strings.Cut(rest, "-")
	if !found {
		return "", "", false
	}
	major, minor, found := strings.Cut(proto, ".")
	if !found || !sshDigits(major) || !sshDigits(minor) {
		return "", "", false
	}
	return proto, software, true
}

func sshDigits(s string) bool {
	if s == "" || len(s) > 4 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// sshText reports whether a pre-version line is plain text.
func sshText(line []byte) bool {
	for _, c := range line {
		if c < 0x20 && c != '\t' && c != '\r' || c == 0x7f {
			return false
		}
	}
	return true
}

func grabSSH(ctx context.Context, s *Session) (*Result, error) {
	version, pre, err := sshReadVersion(s)
	if err != nil {
		return nil, err
	}
	r := &Result{Protocol: "ssh", Banner: []byte(version), SSH: &record.SSH{Banner: version}}
	if pre = slices.DeleteFunc(pre, func(l string) bool { return strings.TrimSpace(l) == "" }); len(pre) > 0 {
		r.Set("ssh.prebanner", strings.Join(pre, "\n"))
	}
	proto, _, _ := sshSplitVersion(version)
	if proto != "2.0" && proto != "1.99" {
		// SSH-1 only, or a version we do not speak: the line is all
		return r, nil
	}
	// From here on every failure still returns what we have.
	kexInit := sshKexInitPayload()
	out := append([]byte(sshClientVersion+"\r\n"), sshPacket(kexInit)...)
	if err := s.Write(out); err != nil {
		return r, nil
	}
	payload, err := sshReadMessage(s, sshMsgKexInit)
	if err != nil {
		return r, nil
	}
	kex, err := sshParseKexInit(payload)
	if err != nil {
		return r, nil
	}
	kex.describe(r)
	alg, ok := sshNegotiate(sshOffer[0], kex.lists[0])
	if _, hk := sshNegotiate(sshOffer[1], kex.lists[1]); !ok || !hk || !strings.HasPrefix(alg, "curve25519-sha256") {
		sshBye(s)
		return r, nil
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return r, nil
	}
	ecdhInit := []byte{sshMsgKexECDHInit}
	ecdhInit = sshAppendString(ecdhInit, priv.PublicKey().Bytes())
	if err := s.Write(sshPacket(ecdhInit)); err != nil {
		return r, nil
	}
	payload, err = sshReadMessage(s, sshMsgKexECDHReply)
	if err != nil {
		return r, nil
	}
	hostKey, err := sshParseECDHReply(payload)
	if err != nil {
		return r, nil
	}
	r.SSH.HostKeyType = sshKeyType(hostKey)
	r.SSH.HostKeySHA256 = sshFingerprint(hostKey)
	sshBye(s)
	return r, nil
}

// sshBye says goodbye politely: SSH_MSG_DISCONNECT, reason
// SSH_DISCONNECT_BY_APPLICATION.
func sshBye(s *Session) {
	bye := []byte{sshMsgDisconnect, 0, 0, 0, 11}
	bye = sshAppendString(bye, []byte("identification only"))
	bye = sshAppendString(bye, nil)
	s.Write(sshPacket(bye))
}

// sshReadVersion reads lines up to the version line; the lines before it
// are returned too.
func sshReadVersion(s *Session) (version string, pre []string, err error) {
	for i := 0; i <= sshMaxPreLines; i++ {
		line, err := s.ReadLine(sshMaxLine)
		if err != nil {
			// a line without its line end before the server hung up
			if v, p, ok := sshVersionIn(s.Greeting); ok {
				return v, p, nil
			}
			return "", nil, err
		}
		if strings.HasPrefix(line, "SSH-") {
			return line, pre, nil
		}
		pre = append(pre, line)
	}
	return "", nil, NotMine("no SSH version line in %d lines", sshMaxPreLines)
}

// sshVersionIn finds the version line in a greeting that may have ended
// without a line end.
func sshVersionIn(g []byte) (version string, pre []string, ok bool) {
	for i := 0; i <= sshMaxPreLines && len(g) > 0; i++ {
		line, rest, _ := bytes.Cut(g, []byte{'\n'})
		l := string(bytes.TrimRight(line, "\r"))
		if len(l) > sshMaxLine {
			return "", nil, false
		}
		if strings.HasPrefix(l, "SSH-") {
			return l, pre, true
		}
		pre = append(pre, l)
		g = rest
	}
	return "", nil, false
}

// sshPacket frames payload as an unencrypted binary packet (RFC 4253
// §6): block size 8, at least 4 bytes of random padding, no MAC.
func sshPacket(payload []byte) []byte {
	pad := 8 - (5+len(payload))%8
	if pad < 4 {
		pad += 8
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(1+len(payload)+pad))
	out = append(out, byte(pad))
	out = append(out, payload...)
	padding := make([]byte, pad)
	rand.Read(padding)
	return append(out, padding...)
}

func sshAppendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func sshKexInitPayload() []byte {
	p := []byte{sshMsgKexInit}
	cookie := make([]byte, 16)
	rand.Read(cookie)
	p = append(p, cookie...)
	for _, l := range sshOffer {
		p = sshAppendString(p, []byte(l))
	}
	p = append(p, 0)          // first_kex_packet_follows
	p = append(p, 0, 0, 0, 0) // reserved
	return p
}

// sshPacketLength checks a packet_length field read off the wire.
func sshPacketLength(hdr []byte) (int, error) {
	n := binary.BigEndian.Uint32(hdr)
	if n < 2 || n > sshMaxPacket {
		return 0, fmt.Errorf("ssh: packet length %d", n)
	}
	return int(n), nil
}

// sshPayload takes the payload out of a packet body (what follows
// packet_length: padding_length, payload, padding).
func sshPayload(body []byte) ([]byte, error) {
	if len(body) < 2 {
		return nil, errors.New("ssh: short packet")
	}
	pad := int(body[0])
	if pad > len(body)-2 {
		return nil, fmt.Errorf("ssh: padding %d in a %d byte packet", pad, len(body))
	}
	return body[1 : len(body)-pad], nil
}

// sshParsePacket splits one whole packet off b: the unit the fuzz target
// drives; sshReadPacket does the same over the session.
func sshParsePacket(b []byte) (payload, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, errors.New("ssh: short packet")
	}
	n, err := sshPacketLength(b)
	if err != nil {
		return nil, nil, err
	}
	if len(b)-4 < n {
		return nil, nil, errors.New("ssh: truncated packet")
	}
	payload, err = sshPayload(b[4 : 4+n])
	return payload, b[4+n:], err
}

func sshReadPacket(s *Session) ([]byte, error) {
	hdr, err := s.ReadFull(4)
	if err != nil {
		return nil, err
	}
	n, err := sshPacketLength(hdr)
	if err != nil {
		return nil, err
	}
	body, err := s.ReadFull(n)
	if err != nil {
		return nil, err
	}
	return sshPayload(body)
}

// sshReadMessage reads packets until one of type want, skipping the
// messages a server may send at any time; a disconnect ends it.
func sshReadMessage(s *Session, want byte) ([]byte, error) {
	for i := 0; i < sshMaxPackets; i++ {
		p, err := sshReadPacket(s)
		if err != nil {
			return nil, err
		}
		if len(p) == 0 {
			continue
		}
		switch p[0] {
		case want:
			return p, nil
		case sshMsgIgnore, sshMsgDebug, sshMsgUnimplemented, sshMsgExtInfo:
			continue
		case sshMsgDisconnect:
			return nil, errors.New("ssh: server disconnected")
		}
		return nil, fmt.Errorf("ssh: message %d while waiting for %d", p[0], want)
	}
	return nil, fmt.Errorf("ssh: no message %d in %d packets", want, sshMaxPackets)
}

// sshReader reads the wire types of RFC 4251 §5 off a payload.
type sshReader struct {
	b   []byte
	err error
}

func (r *sshReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = errors.New("ssh: truncated message")
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *sshReader) byte() byte {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *sshReader) string() []byte {
	l := r.bytes(4)
	if l == nil {
		return nil
	}
	n := binary.BigEndian.Uint32(l)
	if uint64(n) > uint64(len(r.b)) {
		r.err = errors.New("ssh: string longer than its message")
		return nil
	}
	return r.bytes(int(n))
}

// sshKexInit is a parsed SSH_MSG_KEXINIT (RFC 4253 §7.1).
type sshKexInit struct {
	// kex, host key, ciphers c2s/s2c, MACs c2s/s2c, compression c2s/s2c,
	// languages c2s/s2c: the name-lists as sent
	lists   [10]string
	follows bool
}

func sshParseKexInit(p []byte) (*sshKexInit, error) {
	r := &sshReader{b: p}
	if r.byte() != sshMsgKexInit {
		return nil, errors.New("ssh: not a KEXINIT")
	}
	r.bytes(16) // cookie
	k := &sshKexInit{}
	for i := range k.lists {
		l := r.string()
		if r.err == nil && !sshNameList(l) {
			return nil, fmt.Errorf("ssh: name-list %d is not US-ASCII names", i)
		}
		k.lists[i] = string(l)
	}
	k.follows = r.byte() != 0
	r.bytes(4) // reserved
	if r.err != nil {
		return nil, r.err
	}
	return k, nil
}

// sshNameList checks a name-list is printable US-ASCII (RFC 4251 §5).
func sshNameList(l []byte) bool {
	for _, c := range l {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// hassh is HASSH-server: the MD5 of the key exchange, server-to-client
// cipher, MAC and compression lists joined with ";".
func (k *sshKexInit) hassh() string {
	sum := md5.Sum([]byte(k.lists[0] + ";" + k.lists[3] + ";" + k.lists[5] + ";" + k.lists[7]))
	return hex.EncodeToString(sum[:])
}

func (k *sshKexInit) describe(r *Result) {
	r.SSH.KexAlgorithms = sshSplitList(k.lists[0])
	r.SSH.HASSH = k.hassh()
	r.Set("ssh.host_key_algorithms", k.lists[1])
	r.Set("ssh.ciphers", k.lists[3])
	r.Set("ssh.macs", k.lists[5])
	r.Set("ssh.compression", k.lists[7])
}

func sshSplitList(l string) []string {
	if l == "" {
		return nil
	}
	return strings.Split(l, ",")
}

// sshNegotiate picks the first of the client's algorithms the server also
// lists (RFC 4253 §7.1).
func sshNegotiate(client, server string) (string, bool) {
	srv := sshSplitList(server)
	for _, a := range sshSplitList(client) {
		if slices.Contains(srv, a) {
			return a, true
		}
	}
	return "", false
}

// sshParseECDHReply returns the host key blob K_S of an
// SSH_MSG_KEX_ECDH_REPLY: string K_S, string Q_S, string signature.
func sshParseECDHReply(p []byte) ([]byte, error) {
	r := &sshReader{b: p}
	if r.byte() != sshMsgKexECDHReply {
		return nil, errors.New("ssh: not a KEX_ECDH_REPLY")
	}
	hostKey := r.string()
	r.string() // Q_S
	r.string() // signature
	if r.err != nil {
		return nil, r.err
	}
	if len(hostKey) == 0 {
		return nil, errors.New("ssh: empty host key")
	}
	return hostKey, nil
}

// sshKeyType is the key format name that starts a public key blob
// ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"), or "".
func sshKeyType(blob []byte) string {
	r := &sshReader{b: blob}
	t := r.string()
	if r.err != nil || len(t) == 0 || len(t) > 64 || !sshNameList(t) {
		return ""
	}
	return string(t)
}

// sshFingerprint is the key's fingerprint as OpenSSH prints it.
func sshFingerprint(blob []byte) string {
	sum := sha256.Sum256(blob)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
