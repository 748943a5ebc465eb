package grab

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// MySQL (and MariaDB, TiDB, ...): the server speaks first with an
// initial handshake packet, Protocol::HandshakeV10 (or V9 from servers
// older than 3.21), or with an error packet when it refuses the client
// ("Host '...' is not allowed to connect", "Too many connections"). We
// read it and close; no handshake response is ever sent.
func init() {
	Register(Module{
		Name:   "mysql",
		Ports:  []uint16{3306},
		Claims: mysqlClaims,
		Grab:   grabMySQL,
	})
}

const mysqlMaxGreeting = 16 << 10 // a handshake is about 100 bytes

// Capability flags (MySQL include/mysql_com.h).
const (
	mysqlClientLongPassword = 1 << 0 // "CLIENT_MYSQL" to MariaDB
	mysqlClientSSL          = 1 << 11
	mysqlClientSecureConn   = 1 << 15
	mysqlClientPluginAuth   = 1 << 19
)

// mysqlGreeting is what the first packet says.
type mysqlGreeting struct {
	protocol   byte // 10, 9, or 0xff for an error packet
	version    string
	threadID   uint32
	caps       uint32
	mariaCaps  uint32 // MariaDB's extended capabilities (10.2+)
	hasMaria   bool
	charset    byte
	hasCharset bool
	status     uint16
	authPlugin string
	errCode    uint16
	errState   string
	errMsg     string
}

func mysqlClaims(g []byte) bool {
	_, _, err := parseMySQLGreeting(g)
	return err == nil
}

// parseMySQLGreeting reads the packet at the start of b: a 3-byte
// little-endian payload length, sequence id 0, and the payload, which
// must be complete. It returns the bytes the packet took.
func parseMySQLGreeting(b []byte) (*mysqlGreeting, int, error) {
	if len(b) < 5 {
		return nil, 0, NotMine("too short for a MySQL packet")
	}
	n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
	if b[3] != 0 || n < 1 || n > mysqlMaxGreeting {
		return nil, 0, NotMine("not a first MySQL packet: length %d, sequence %d", n, b[3])
	}
	if len(b) < 4+n {
		return nil, 0, NotMine("MySQL packet of %d bytes, %d came", n, len(b)-4)
	}
	p := b[4 : 4+n]
	var g *mysqlGreeting
	var err error
	switch p[0] {
	case 10:
		g, err = parseMySQLHandshakeV10(p)
	case 9:
		g, err = parseMySQLHandshakeV9(p)
	case 0xff:
		g, err = parseMySQLError(p)
	default:
		err = NotMine("MySQL protocol version %d", p[0])
	}
	if err != nil {
		return nil, 0, err
	}
	return g, 4 + n, nil
}

// mysqlVersionString reads the NUL-terminated server version: printable
// ASCII, not empty.
func mysqlVersionString(p []byte) (string, []byte, error) {
	i := bytes.IndexByte(p, 0)
	if i <= 0 || i > 256 {
		return "", nil, NotMine("no server version")
	}
	v := p[:i]
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			return "", nil, NotMine("server version %q", clip(v, 40))
		}
	}
	return string(v), p[i+1:], nil
}

// parseMySQLHandshakeV10 reads Protocol::HandshakeV10. Everything after
// the lower capability flags is optional in the specification, and
// servers cut it short in various places: read what is there.
func parseMySQLHandshakeV10(p []byte) (*mysqlGreeting, error) {
	g := &mysqlGreeting{protocol: 10}
	var err error
	var rest []byte
	if g.version, rest, err = mysqlVersionString(p[1:]); err != nil {
		return nil, err
	}
	// thread id 4, auth-plugin-data-part-1 8, filler 1, capability flags 2
	if len(rest) < 15 {
		return nil, NotMine("MySQL handshake cut short")
	}
	g.threadID = binary.LittleEndian.Uint32(rest)
	if rest[12] != 0 {
		return nil, NotMine("MySQL handshake filler %#x", rest[12])
	}
	g.caps = uint32(binary.LittleEndian.Uint16(rest[13:]))
	rest = rest[15:]
	if len(rest) < 16 {
		// charset, status, upper flags, auth data length, reserved 10
		return g, nil
	}
	g.charset, g.hasCharset = rest[0], true
	g.status = binary.LittleEndian.Uint16(rest[1:])
	g.caps |= uint32(binary.LittleEndian.Uint16(rest[3:])) << 16
	authLen := int(rest[5])
	if g.caps&mysqlClientLongPassword == 0 {
		// MariaDB 10.2+: the last 4 of the 10 reserved bytes are its
		// extended capabilities
		g.mariaCaps, g.hasMaria = binary.LittleEndian.Uint32(rest[12:]), true
	}
	rest = rest[16:]
	if g.caps&mysqlClientSecureConn != 0 {
		n := max(13, authLen-8)
		if len(rest) < n {
			return g, nil
		}
		rest = rest[n:]
	}
	if g.caps&mysqlClientPluginAuth != 0 && len(rest) > 0 {
		// NUL-terminated, though some 5.5 releases left out the NUL
		if i := bytes.IndexByte(rest, 0); i >= 0 {
			rest = rest[:i]
		}
		if len(rest) <= 64 && mysqlPrintable(rest) {
			g.authPlugin = string(rest)
		}
	}
	return g, nil
}

// parseMySQLHandshakeV9 reads Protocol::HandshakeV9: version, thread
// id, scramble.
func parseMySQLHandshakeV9(p []byte) (*mysqlGreeting, error) {
	g := &mysqlGreeting{protocol: 9}
	var err error
	var rest []byte
	if g.version, rest, err = mysqlVersionString(p[1:]); err != nil {
		return nil, err
	}
	if len(rest) < 4 {
		return nil, NotMine("MySQL v9 handshake cut short")
	}
	g.threadID = binary.LittleEndian.Uint32(rest)
	return g, nil
}

// parseMySQLError reads an ERR_Packet sent instead of the handshake:
// 0xff, error code, an optional "#" and SQL state, the message.
func parseMySQLError(p []byte) (*mysqlGreeting, error) {
	if len(p) < 4 {
		return nil, NotMine("MySQL error packet cut short")
	}
	g := &mysqlGreeting{protocol: 0xff, errCode: binary.LittleEndian.Uint16(p[1:])}
	msg := p[3:]
	if len(msg) >= 6 && msg[0] == '#' && mysqlPrintable(msg[1:6]) {
		g.errState, msg = string(msg[1:6]), msg[6:]
	}
	if g.errCode < 1000 || !mysqlPrintableText(msg) {
		return nil, NotMine("MySQL error packet %d %q", g.errCode, clip(msg, 40))
	}
	g.errMsg = string(msg)
	return g, nil
}

func mysqlPrintable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// mysqlPrintableText allows UTF-8 messages (a localised error) but no
// control characters.
func mysqlPrintableText(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return false
		}
	}
	return true
}

func grabMySQL(ctx context.Context, s *Session) (*Result, error) {
	hdr, err := s.ReadFull(4)
	if err != nil {
		return nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if hdr[3] != 0 || n < 1 || n > mysqlMaxGreeting {
		return nil, NotMine("not a first MySQL packet: length %d, sequence %d", n, hdr[3])
	}
	body, err := s.ReadFull(n)
	if err != nil {
		return nil, err
	}
	pkt := append(bytes.Clone(hdr), body...)
	g, _, err := parseMySQLGreeting(pkt)
	if err != nil {
		return nil, err
	}
	return mysqlDescribe(g, pkt), nil
}

// mysqlDescribe turns the greeting into a Result: the version string as
// sent, split into product and version where the string says them.
func mysqlDescribe(g *mysqlGreeting, raw []byte) *Result {
	r := &Result{Protocol: "mysql", Banner: raw}
	if g.protocol == 0xff {
		r.Set("mysql.error_code", strconv.Itoa(int(g.errCode)))
		r.Set("mysql.error_state", g.errState)
		r.Set("mysql.error", g.errMsg)
		return r
	}
	r.Set("mysql.protocol", strconv.Itoa(int(g.protocol)))
	r.Set("mysql.server_version", g.version)
	r.Product, r.Version = mysqlProduct(g.version)
	if g.protocol == 10 {
		r.Set("mysql.capabilities", fmt.Sprintf("%08x", g.caps))
		if g.hasMaria {
			r.Set("mysql.mariadb_capabilities", fmt.Sprintf("%08x", g.mariaCaps))
		}
		if g.hasCharset {
			r.Set("mysql.charset", strconv.Itoa(int(g.charset)))
		}
		r.Set("mysql.auth_plugin", g.authPlugin)
		if g.caps&mysqlClientSSL != 0 {
			r.Set("mysql.ssl", "yes")
		} else {
			r.Set("mysql.ssl", "no")
		}
	}
	return r
}

// mysqlProduct splits a server version string. MariaDB prefixes its
// version with "5.5.5-" for old replication clients
// ("5.5.5-10.11.6-MariaDB-0+deb12u1"); TiDB appends its own
// ("8.0.11-TiDB-v7.5.0"); anything else starting with a version number
// is taken for MySQL ("8.0.36", "5.7.44-log", "8.0.35-0ubuntu0.22.04.1").
func mysqlProduct(v string) (product, version string) {
	switch {
	case strings.Contains(v, "MariaDB"):
		return "MariaDB", mysqlLeadingVersion(strings.TrimPrefix(v, "5.5.5-"))
	case strings.Contains(v, "-TiDB-"):
		_, tv, _ := strings.Cut(v, "-TiDB-")
		return "TiDB", mysqlLeadingVersion(strings.TrimPrefix(tv, "v"))
	}
	if ver := mysqlLeadingVersion(v); ver != "" {
		return "MySQL", ver
	}
	return "", ""
}

// mysqlLeadingVersion is the dotted number v starts with ("10.11.6"), if
// it has at least two parts.
func mysqlLeadingVersion(v string) string {
	end, dots := 0, 0
	for end < len(v) && end < 32 {
		c := v[end]
		if c == '.' {
			if end == 0 || v[end-1] == '.' {
				break
			}
			dots++
		} else if c < '0' || c > '9' {
			break
		}
		end++
	}
	out := strings.TrimSuffix(v[:end], ".")
	if dots == 0 || !strings.Contains(out, ".") {
		return ""
	}
	return out
}
