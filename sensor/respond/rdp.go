package respond

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"time"

	"github.com/vantagehq/vantage/record"
)

// RDP ([MS-RDPBCGR] 2.2.1.1, 2.2.1.2; X.224 over TPKT, RFC 1006): parses
// the X.224 Connection Request, records the "Cookie: mstshash=NAME" name
// as Username (a routing token as the fact "rdp.token") and the requested
// protocols (fact "rdp.protocols"), answers a Connection Confirm that
// selects TLS (or, when the client did not offer TLS, a negotiation
// failure SSL_REQUIRED_BY_SERVER), then waits briefly for the client's TLS
// ClientHello to record its JA3 and SNI, and closes.
func init() {
	Register(&Responder{Name: "rdp", Detect: detectRDP, Serve: serveRDP})
}

func detectRDP(b []byte) bool {
	// TPKT version 3, reserved 0; X.224 CR TPDU code 0xE0 at offset 5.
	return len(b) >= 6 && b[0] == 3 && b[1] == 0 && b[5]&0xf0 == 0xe0
}

// x224Request is a parsed Connection Request.
type x224Request struct {
	Cookie    string // mstshash name
	Token     string // routing token ("Cookie: msts=...")
	HasNeg    bool
	NegFlags  uint8
	Protocols uint32
}

// parseX224 parses a TPKT-framed Connection Request (the whole TPKT).
func parseX224(b []byte) (*x224Request, error) {
	if len(b) < 11 || b[0] != 3 || b[1] != 0 {
		return nil, errBadRequest
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n != len(b) {
		return nil, errShort
	}
	li := int(b[4])
	if li < 6 || 5+li > len(b) || b[5]&0xf0 != 0xe0 {
		return nil, errBadRequest
	}
	v := b[11 : 5+li] // after LI, code, dst-ref, src-ref, class
	req := &x224Request{}
	if i := bytes.Index(v, []byte("\r\n")); i >= 0 && bytes.HasPrefix(v, []byte("Cookie: ")) {
		c := string(v[len("Cookie: "):i])
		if name, ok := strings.CutPrefix(c, "mstshash="); ok {
			req.Cookie = name
		} else {
			req.Token = c
		}
		v = v[i+2:]
	}
	if len(v) >= 8 && v[0] == 1 { // TYPE_RDP_NEG_REQ
		req.HasNeg = true
		req.NegFlags = v[1]
		req.Protocols = binary.LittleEndian.Uint32(v[4:8])
	}
	return req, nil
}

func rdpProtocolNames(p uint32) string {
	if p == 0 {
		return "rdp"
	}
	var out []string
	for _, x := range []struct {
		bit  uint32
		name string
	}{{1, "ssl"}, {2, "hybrid"}, {4, "rdstls"}, {8, "hybrid_ex"}, {0x10, "rdsaad"}} {
		if p&x.bit != 0 {
			out = append(out, x.name)
			p &^= x.bit
		}
	}
	if p != 0 {
		out = append(out, "other")
	}
	return strings.Join(out, ",")
}

// rdpConfirm builds the Connection Confirm for req.
func rdpConfirm(req *x224Request) []byte {
	cc := []byte{3, 0, 0, 0, 6, 0xd0, 0, 0, 0x12, 0x34, 0}
	if req.HasNeg {
		neg := make([]byte, 8)
		if req.Protocols&1 != 0 {
			neg[0] = 2 // TYPE_RDP_NEG_RSP
			binary.LittleEndian.PutUint16(neg[2:], 8)
			binary.LittleEndian.PutUint32(neg[4:], 1) // PROTOCOL_SSL
		} else {
			neg[0] = 3 // TYPE_RDP_NEG_FAILURE
			binary.LittleEndian.PutUint16(neg[2:], 8)
			binary.LittleEndian.PutUint32(neg[4:], 1) // SSL_REQUIRED_BY_SERVER
		}
		cc = append(cc, neg...)
		cc[4] = 14
	}
	binary.BigEndian.PutUint16(cc[2:], uint16(len(cc)))
	return cc
}

func serveRDP(ctx context.Context, c *Conn, ev *record.Event) error {
	hdr, err := c.Peek(4)
	if err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint16(hdr[2:]))
	if n < 11 {
		return errBadRequest
	}
	b, err := c.ReadFull(n)
	if err != nil {
		return err
	}
	req, err := parseX224(b)
	if err != nil {
		return err
	}
	if req.Cookie != "" {
		ev.Username = clean(req.Cookie, 128)
	}
	if req.Token != "" {
		c.Fact("rdp.token", req.Token)
	}
	if req.HasNeg {
		c.Fact("rdp.protocols", rdpProtocolNames(req.Protocols))
	}
	if err := c.Write(rdpConfirm(req)); err != nil {
		return err
	}
	if !req.HasNeg || req.Protocols&1 == 0 {
		return nil
	}
	// A client that accepted TLS sends its ClientHello next.
	c.WaitRead(2 * time.Second)
	defer c.Restore()
	if first, err := c.Peek(3); err != nil || !detectTLS(first) {
		return nil
	}
	if _, err := recordClientHello(c, ev); err != nil {
		return err
	}
	return c.Write(alertHandshakeFailure)
}
