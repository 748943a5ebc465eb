package respond

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/vantagehq/vantage/record"
)

// TLS (RFC 8446 4.1.2, RFC 5246 7.4.1.2): reads the ClientHello, records
// SNI, ALPN and JA3, answers a fatal handshake_failure alert and closes.
// TLS is never terminated.
func init() {
	Register(&Responder{Name: "tls", Detect: detectTLS, Serve: serveTLS})
}

func detectTLS(b []byte) bool {
	return len(b) >= 3 && b[0] == 0x16 && b[1] == 0x03 && b[2] <= 0x04
}

// clientHello is what a ClientHello says.
type clientHello struct {
	Version      uint16
	Ciphers      []uint16
	Extensions   []uint16
	Curves       []uint16
	PointFormats []uint8
	SNI          string
	ALPN         []string
	Versions     []uint16 // supported_versions
}

var errShort = errors.New("respond: truncated message")

// reader is a bounds-checked cursor over a message.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u8() uint8 {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if len(r.b) < 2 {
		r.bad = true
		r.b = nil
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.bad = true
		r.b = nil
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// vec reads a vector with a length prefix of size 1, 2 or 4 bytes.
func (r *reader) vec(size int) *reader {
	var n int
	switch size {
	case 1:
		n = int(r.u8())
	case 2:
		n = int(r.u16())
	default:
		n = int(r.u32())
	}
	return &reader{b: r.bytes(n), bad: r.bad}
}

// isGREASE reports RFC 8701's reserved values 0x?a?a with equal bytes.
func isGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}

// parseClientHello parses a ClientHello body (after the 4-byte handshake
// header).
func parseClientHello(b []byte) (*clientHello, error) {
	r := &reader{b: b}
	ch := &clientHello{Version: r.u16()}
	r.bytes(32) // random
	r.vec(1)    // legacy_session_id
	cs := r.vec(2)
	for len(cs.b) >= 2 {
		ch.Ciphers = append(ch.Ciphers, cs.u16())
	}
	r.vec(1) // compression methods
	if r.bad || len(cs.b) != 0 {
		return nil, errShort
	}
	if len(r.b) == 0 {
		return ch, nil // no extensions (SSL 3.0 style)
	}
	exts := r.vec(2)
	if r.bad {
		return nil, errShort
	}
	for len(exts.b) > 0 {
		typ := exts.u16()
		data := exts.vec(2)
		if exts.bad {
			return nil, errShort
		}
		ch.Extensions = append(ch.Extensions, typ)
		switch typ {
		case 0: // server_name
			list := data.vec(2)
			for len(list.b) > 0 && !list.bad {
				kind := list.u8()
				name := list.vec(2)
				if kind == 0 && ch.SNI == "" && !name.bad {
					ch.SNI = string(name.b)
				}
			}
		case 10: // supported_groups
			list := data.vec(2)
			for len(list.b) >= 2 {
				ch.Curves = append(ch.Curves, list.u16())
			}
		case 11: // ec_point_formats
			list := data.vec(1)
			for len(list.b) > 0 {
				ch.PointFormats = append(ch.PointFormats, list.u8())
			}
		case 16: // application_layer_protocol_negotiation
			list := data.vec(2)
			for len(list.b) > 0 && !list.bad && len(ch.ALPN) < 16 {
				p := list.vec(1)
				if !p.bad {
					ch.ALPN = append(ch.ALPN, string(p.b))
				}
			}
		case 43: // supported_versions
			list := data.vec(1)
			for len(list.b) >= 2 {
				ch.Versions = append(ch.Versions, list.u16())
			}
		}
	}
	return ch, nil
}

// JA3 returns the JA3 string: SSLVersion,Ciphers,Extensions,
// EllipticCurves,EllipticCurvePointFormats in decimal, values joined by
// "-", GREASE values left out.
func (ch *clientHello) JA3() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(int(ch.Version)))
	b.WriteByte(',')
	join16(&b, ch.Ciphers)
	b.WriteByte(',')
	join16(&b, ch.Extensions)
	b.WriteByte(',')
	join16(&b, ch.Curves)
	b.WriteByte(',')
	for i, v := range ch.PointFormats {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(strconv.Itoa(int(v)))
	}
	return b.String()
}

func join16(b *strings.Builder, vs []uint16) {
	first := true
	for _, v := range vs {
		if isGREASE(v) {
			continue
		}
		if !first {
			b.WriteByte('-')
		}
		first = false
		b.WriteString(strconv.Itoa(int(v)))
	}
}

// JA3Hash is the MD5 of the JA3 string in hex.
func (ch *clientHello) JA3Hash() string {
	sum := md5.Sum([]byte(ch.JA3()))
	return hex.EncodeToString(sum[:])
}

// readClientHello reads TLS records until one whole ClientHello message
// is in hand and returns its body.
func readClientHello(c *Conn) ([]byte, error) {
	var hs []byte
	for records := 0; records < 64; records++ {
		hdr, err := c.ReadFull(5)
		if err != nil {
			return nil, err
		}
		if hdr[0] != 0x16 || hdr[1] != 0x03 {
			return nil, errBadRequest
		}
		n := int(binary.BigEndian.Uint16(hdr[3:]))
		if n == 0 || n > 1<<14+2048 {
			return nil, ErrLimit
		}
		if len(hs)+n > c.Lim.MaxMessage {
			return nil, ErrLimit
		}
		frag, err := c.ReadFull(n)
		if err != nil {
			return nil, err
		}
		hs = append(hs, frag...)
		if len(hs) >= 4 {
			if hs[0] != 1 { // client_hello
				return nil, errBadRequest
			}
			want := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			if want+4 > c.Lim.MaxMessage {
				return nil, ErrLimit
			}
			if len(hs) >= want+4 {
				return hs[4 : want+4], nil
			}
		}
	}
	return nil, ErrLimit
}

// recordClientHello reads and records a ClientHello.
func recordClientHello(c *Conn, ev *record.Event) (*clientHello, error) {
	body, err := readClientHello(c)
	if err != nil {
		return nil, err
	}
	ch, err := parseClientHello(body)
	if err != nil {
		return nil, err
	}
	ev.JA3 = ch.JA3Hash()
	if ch.SNI != "" {
		ev.SNI = clean(ch.SNI, 255)
	}
	c.Fact("tls.ja3", ch.JA3())
	if len(ch.ALPN) > 0 {
		c.Fact("tls.alpn", strings.Join(ch.ALPN, ","))
	}
	if len(ch.Versions) > 0 {
		var vs []string
		for _, v := range ch.Versions {
			if !isGREASE(v) {
				vs = append(vs, "0x"+strconv.FormatUint(uint64(v), 16))
			}
		}
		c.Fact("tls.versions", strings.Join(vs, ","))
	}
	return ch, nil
}

// alertHandshakeFailure is a fatal handshake_failure alert record.
var alertHandshakeFailure = []byte{21, 3, 3, 0, 2, 2, 40}

func serveTLS(ctx context.Context, c *Conn, ev *record.Event) error {
	if _, err := recordClientHello(c, ev); err != nil {
		return err
	}
	return c.Write(alertHandshakeFailure)
}
