package grab

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// RDP (MS-RDPBCGR 2.2.1.1-2): an X.224 Connection Request in a TPKT
// (RFC 1006) carrying an RDP Negotiation Request, and the server's
// Connection Confirm with its RDP Negotiation Response (the security
// protocol it selected, and flags) or Negotiation Failure (why it refuses).
// Nothing after the Connection Confirm is sent: no TLS, no CredSSP, no MCS.
//
// The first request offers TLS, CredSSP (NLA) and CredSSP with Early User
// Authorization; the server picks the one it prefers. To learn what else
// it accepts, at most two more connections ask for a narrower set (TLS
// alone, then standard RDP security), only after the first one answered as
// RDP and only while the answers leave something to learn. Data
// "rdp.selected" is the first answer, "rdp.protocols" every protocol the
// server selected in some answer.
//
// The raw Connection Confirm is the Banner and its negotiation part is
// Match["rdp.neg"] in hex: Microsoft's servers and xrdp fill the response
// differently (flags, which fields they set), which fingerprint rules use.

func init() {
	Register(Module{
		Name:  "rdp",
		Ports: []uint16{3389},
		Rank:  35,
		Grab:  grabRDP,
	})
}

// requestedProtocols / selectedProtocol values
const (
	rdpProtoRDP      = 0x00 // standard RDP security
	rdpProtoSSL      = 0x01
	rdpProtoHybrid   = 0x02
	rdpProtoRDSTLS   = 0x04
	rdpProtoHybridEx = 0x08
	rdpProtoRDSAAD   = 0x10

	rdpMaxConfirm = 4096 // a Connection Confirm is 19 bytes
	rdpMaxConns   = 3
)

const (
	x224CR = 0xe0 // Connection Request
	x224CC = 0xd0 // Connection Confirm
	x224DR = 0x80 // Disconnect Request
)

// rdpRequest builds TPKT + X.224 CR + RDP_NEG_REQ.
func rdpRequest(protocols uint32) []byte {
	b := []byte{
		3, 0, 0, 19, // TPKT: version 3, length 19
		14, x224CR, 0, 0, 0, 0, 0, // X.224: LI, CR CDT, DST-REF, SRC-REF, class 0
		1, 0, 8, 0, // RDP_NEG_REQ: type, flags, length 8
	}
	return binary.LittleEndian.AppendUint32(b, protocols)
}

// rdpConfirm is a parsed X.224 answer to the Connection Request.
type rdpConfirm struct {
	Code     byte // TPDU code: x224CC, x224DR, ...
	HasNeg   bool
	Neg      []byte // the 8-byte negotiation structure
	NegType  byte   // 2 response, 3 failure
	Flags    byte
	Selected uint32 // for a response
	Failure  uint32 // for a failure
}

// parseRDPConfirm parses one TPKT packet holding the X.224 TPDU sent in
// answer to the Connection Request. Bytes that are no TPKT/X.224 at all
// give an error wrapping ErrNotMine.
func parseRDPConfirm(b []byte) (rdpConfirm, error) {
	var c rdpConfirm
	if len(b) < 4 || b[0] != 3 || b[1] != 0 {
		return c, NotMine("rdp: no TPKT header: % x", clip(b, 8))
	}
	tl := int(binary.BigEndian.Uint16(b[2:]))
	if tl < 7 {
		return c, NotMine("rdp: TPKT length %d", tl)
	}
	if tl > len(b) {
		return c, fmt.Errorf("rdp: TPKT of %d bytes truncated to %d", tl, len(b))
	}
	b = b[:tl]
	li := int(b[4])
	if li < 2 || 5+li > tl {
		return c, NotMine("rdp: X.224 length indicator %d in a %d-byte TPKT", li, tl)
	}
	c.Code = b[5] & 0xf0
	switch c.Code {
	case x224CC, x224DR:
	default:
		return c, NotMine("rdp: X.224 TPDU code %#x", b[5])
	}
	if c.Code != x224CC || li < 6 {
		return c, nil
	}
	// the negotiation structure follows the fixed part of the CC; the
	// specification counts it in the length indicator, but take it from
	// the TPKT even where an implementation does not
	if neg := b[11:]; len(neg) >= 8 {
		c.HasNeg = true
		c.Neg = neg[:8:8]
		c.NegType, c.Flags = neg[0], neg[1]
		switch c.NegType {
		case 2:
			c.Selected = binary.LittleEndian.Uint32(neg[4:])
		case 3:
			c.Failure = binary.LittleEndian.Uint32(neg[4:])
		}
	}
	return c, nil
}

var rdpProtoNames = []struct {
	bit  uint32
	name string
}{{rdpProtoSSL, "ssl"}, {rdpProtoHybrid, "hybrid"}, {rdpProtoRDSTLS, "rdstls"}, {rdpProtoHybridEx, "hybrid_ex"}, {rdpProtoRDSAAD, "rdsaad"}}

// rdpProtoName names one selected protocol, or a requested set joined by '+'.
func rdpProtoName(p uint32) string {
	if p == rdpProtoRDP {
		return "rdp"
	}
	var out []string
	for _, x := range rdpProtoNames {
		if p&x.bit != 0 {
			out = append(out, x.name)
			p &^= x.bit
		}
	}
	if p != 0 {
		out = append(out, fmt.Sprintf("%#x", p))
	}
	return strings.Join(out, "+")
}

var rdpFailureNames = map[uint32]string{
	1: "SSL_REQUIRED_BY_SERVER",
	2: "SSL_NOT_ALLOWED_BY_SERVER",
	3: "SSL_CERT_NOT_ON_SERVER",
	4: "INCONSISTENT_FLAGS",
	5: "HYBRID_REQUIRED_BY_SERVER",
	6: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
}

func rdpFailureName(code uint32) string {
	if n, ok := rdpFailureNames[code]; ok {
		return n
	}
	return fmt.Sprintf("failure %#x", code)
}

var rdpFlagNames = []string{"extended_client_data", "dynvc_gfx", "reserved", "restricted_admin", "redirected_auth"}

func rdpFlags(f byte) string {
	var out []string
	for i, n := range rdpFlagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	if rest := f &^ (1<<len(rdpFlagNames) - 1); rest != 0 {
		out = append(out, fmt.Sprintf("%#x", rest))
	}
	return strings.Join(out, ",")
}

// rdpExchange sends one Connection Request and reads the answer.
func rdpExchange(s *Session, protocols uint32) (rdpConfirm, []byte, error) {
	if err := s.Write(rdpRequest(protocols)); err != nil {
		return rdpConfirm{}, nil, err
	}
	h, err := s.ReadFull(4)
	if err != nil {
		return rdpConfirm{}, nil, err
	}
	if h[0] != 3 || h[1] != 0 {
		return rdpConfirm{}, nil, NotMine("rdp: no TPKT header: % x", h)
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n < 7 {
		return rdpConfirm{}, nil, NotMine("rdp: TPKT length %d", n)
	}
	if n > rdpMaxConfirm {
		return rdpConfirm{}, nil, fmt.Errorf("rdp: %w: %d-byte TPKT announced", ErrTooLarge, n)
	}
	rest, err := s.ReadFull(n - 4)
	if err != nil {
		return rdpConfirm{}, nil, err
	}
	pkt := append(append(make([]byte, 0, n), h...), rest...)
	c, err := parseRDPConfirm(pkt)
	return c, pkt, err
}

func grabRDP(ctx context.Context, s *Session) (*Result, error) {
	const first = rdpProtoSSL | rdpProtoHybrid | rdpProtoHybridEx
	c, pkt, err := rdpExchange(s, first)
	if err != nil {
		return nil, err
	}
	own := s.Target.Addr.Port() == 3389 || s.Target.Protocol == "rdp"
	if !c.HasNeg && !own {
		// A bare Connection Confirm (or a Disconnect) is what any ISO
		// transport service answers (S7 PLCs on 102, ISO-TSAP gateways):
		// only RDP's negotiation structure, or the RDP port, says RDP.
		return nil, NotMine("rdp: X.224 %#x without RDP negotiation data", c.Code)
	}
	// this connection has served its purpose; later probes use new ones
	s.conn.Close()

	r := &Result{Protocol: "rdp", Banner: pkt}
	if c.HasNeg {
		r.Match = map[string]string{"rdp.neg": hex.EncodeToString(c.Neg)}
	}
	accepted := map[uint32]bool{}
	var probes []string
	record := func(req uint32, c rdpConfirm) {
		var ans string
		switch {
		case c.Code == x224DR:
			ans = "disconnect"
		case !c.HasNeg:
			// a server older than negotiation: standard RDP security
			accepted[rdpProtoRDP] = true
			ans = "rdp (no negotiation)"
		case c.NegType == 2:
			accepted[c.Selected] = true
			ans = rdpProtoName(c.Selected)
		case c.NegType == 3:
			ans = rdpFailureName(c.Failure)
		default:
			ans = fmt.Sprintf("negotiation type %#x", c.NegType)
		}
		probes = append(probes, rdpProtoName(req)+"="+ans)
	}
	record(first, c)

	switch {
	case c.Code == x224DR:
		r.Set("rdp.x224", "disconnect")
	case !c.HasNeg:
		r.Set("rdp.selected", "rdp")
		r.Set("rdp.negotiation", "none")
	case c.NegType == 2:
		r.Set("rdp.selected", rdpProtoName(c.Selected))
		r.Set("rdp.flags", rdpFlags(c.Flags))
	case c.NegType == 3:
		r.Set("rdp.failure", rdpFailureName(c.Failure))
	}

	// What to ask next, narrowest last. A server that wants CredSSP may
	// still take plain TLS; one that takes TLS may still take standard
	// RDP security; one that refused TLS outright (not allowed, no
	// certificate) may speak standard RDP security only.
	var next []uint32
	switch {
	case c.Code == x224DR || !c.HasNeg:
	case c.NegType == 2 && (c.Selected == rdpProtoHybrid || c.Selected == rdpProtoHybridEx):
		next = []uint32{rdpProtoSSL, rdpProtoRDP}
	case c.NegType == 2 && c.Selected == rdpProtoSSL:
		next = []uint32{rdpProtoRDP}
	case c.NegType == 3 && (c.Failure == 2 || c.Failure == 3 || c.Failure == 4):
		next = []uint32{rdpProtoRDP}
	}
	for i, req := range next {
		if i+2 > rdpMaxConns || ctx.Err() != nil {
			break
		}
		ns, err := s.Redial(ctx)
		if err != nil {
			probes = append(probes, rdpProtoName(req)+"=error")
			break
		}
		stop := watch(ctx, ns)
		nc, _, err := rdpExchange(ns, req)
		stop()
		ns.conn.Close()
		if err != nil {
			probes = append(probes, rdpProtoName(req)+"=error")
			break
		}
		record(req, nc)
		if nc.HasNeg && nc.NegType == 3 && (nc.Failure == 5 || nc.Failure == 6 || nc.Failure == 1) {
			// it insists on something stronger: weaker asks fail too
			break
		}
	}
	var names []string
	for _, p := range []uint32{rdpProtoRDP, rdpProtoSSL, rdpProtoHybrid, rdpProtoRDSTLS, rdpProtoHybridEx, rdpProtoRDSAAD} {
		if accepted[p] {
			names = append(names, rdpProtoName(p))
			delete(accepted, p)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(accepted)) { // values this code does not know
		names = append(names, rdpProtoName(p))
	}
	r.Set("rdp.protocols", strings.Join(names, ","))
	r.Set("rdp.probes", strings.Join(probes, "; "))
	return r, nil
}
