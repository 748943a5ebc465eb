package grab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// DNS over UDP (RFC 1035). Two ordinary queries on the one connected
// socket, told apart by their IDs:
//
//   - "version.bind" TXT in class CHAOS with RD=0: the long-standing
//     convention by which BIND, Unbound, dnsmasq, Knot, PowerDNS and most
//     others state (or deliberately hide) their version. The TXT text is
//     the Banner; naming the product is left to the fingerprint rules.
//   - "." NS in class IN with RD=1: an ordinary question whose answer says
//     whether the server recurses for us (Data "dns.recursion").
//
// Both are single small packets with small answers; nothing here asks for
// large responses (no ANY, no EDNS buffer size), so the probe is not an
// amplification vector.
//
// A connected UDP socket only delivers datagrams from the target, and the
// session reads one datagram per fill, so every ReadFor(wait, 1) below
// returns exactly one reply. One socket rather than two keeps the
// grabber's Dial and exclusion policy in charge of every packet we send.

func init() {
	Register(Module{
		Name:      "dns",
		Transport: "udp",
		Ports:     []uint16{53},
		Rank:      10,
		Grab:      grabDNS,
	})
}

const (
	dnsTypeNS  = 2
	dnsTypeTXT = 16
	dnsClassIN = 1
	dnsClassCH = 3

	dnsFlagQR = 1 << 15
	dnsFlagAA = 1 << 10
	dnsFlagTC = 1 << 9
	dnsFlagRD = 1 << 8
	dnsFlagRA = 1 << 7
	dnsFlagAD = 1 << 5
	dnsFlagCD = 1 << 4

	// parser bounds: far above what a sane answer to our questions has
	dnsMaxQuestions = 4
	dnsMaxRecords   = 64 // per section
	dnsMaxPointers  = 32 // compression pointers followed in one name
	dnsMaxReplies   = 4  // datagrams read while waiting for one reply
)

// dnsQuestion is one entry of the question section.
type dnsQuestion struct {
	Name        string
	Type, Class uint16
}

// dnsRR is one resource record; Data is its RDATA, a sub-slice of the
// message (names inside it may point anywhere in the message).
type dnsRR struct {
	Name        string
	Type, Class uint16
	TTL         uint32
	Data        []byte
}

// dnsMessage is a parsed DNS message, sections bounded by the limits above.
type dnsMessage struct {
	ID                 uint16
	Flags              uint16
	QD, AN, NS, AR     uint16 // counts as the header states them
	Questions          []dnsQuestion
	Answers, Authority []dnsRR
}

func (m *dnsMessage) rcode() int { return int(m.Flags & 0xf) }

// errDNSHeader: not even a DNS header.
var errDNSHeader = errors.New("dns: message shorter than a header")

// parseDNSMessage parses b as a DNS message. A message whose header
// parses but whose sections are malformed is returned with what was
// parsed and an error, so a caller can still use the header.
func parseDNSMessage(b []byte) (*dnsMessage, error) {
	if len(b) < 12 {
		return nil, errDNSHeader
	}
	m := &dnsMessage{
		ID:    binary.BigEndian.Uint16(b[0:]),
		Flags: binary.BigEndian.Uint16(b[2:]),
		QD:    binary.BigEndian.Uint16(b[4:]),
		AN:    binary.BigEndian.Uint16(b[6:]),
		NS:    binary.BigEndian.Uint16(b[8:]),
		AR:    binary.BigEndian.Uint16(b[10:]),
	}
	off := 12
	for i := 0; i < int(m.QD); i++ {
		if i >= dnsMaxQuestions {
			return m, fmt.Errorf("dns: %d questions", m.QD)
		}
		name, next, err := dnsReadName(b, off)
		if err != nil {
			return m, fmt.Errorf("dns: question %d: %w", i, err)
		}
		if next+4 > len(b) {
			return m, fmt.Errorf("dns: question %d truncated", i)
		}
		m.Questions = append(m.Questions, dnsQuestion{
			Name:  name,
			Type:  binary.BigEndian.Uint16(b[next:]),
			Class: binary.BigEndian.Uint16(b[next+2:]),
		})
		off = next + 4
	}
	var err error
	if m.Answers, off, err = dnsReadRRs(b, off, int(m.AN)); err != nil {
		return m, fmt.Errorf("dns: answer: %w", err)
	}
	if m.Authority, _, err = dnsReadRRs(b, off, int(m.NS)); err != nil {
		return m, fmt.Errorf("dns: authority: %w", err)
	}
	return m, nil
}

func dnsReadRRs(b []byte, off, n int) ([]dnsRR, int, error) {
	var out []dnsRR
	for i := 0; i < n; i++ {
		if i >= dnsMaxRecords {
			// the rest is not needed; stop without an error
			return out, off, nil
		}
		name, next, err := dnsReadName(b, off)
		if err != nil {
			return out, off, fmt.Errorf("record %d: %w", i, err)
		}
		if next+10 > len(b) {
			return out, off, fmt.Errorf("record %d truncated", i)
		}
		rr := dnsRR{
			Name:  name,
			Type:  binary.BigEndian.Uint16(b[next:]),
			Class: binary.BigEndian.Uint16(b[next+2:]),
			TTL:   binary.BigEndian.Uint32(b[next+4:]),
		}
		rdlen := int(binary.BigEndian.Uint16(b[next+8:]))
		start := next + 10
		if start+rdlen > len(b) {
			return out, off, fmt.Errorf("record %d: rdata of %d bytes truncated", i, rdlen)
		}
		rr.Data = b[start : start+rdlen : start+rdlen]
		out = append(out, rr)
		off = start + rdlen
	}
	return out, off, nil
}

// dnsReadName reads the possibly compressed name at off and returns it in
// presentation form ("." for the root) with the offset after it in the
// original position. Compression pointers are followed at most
// dnsMaxPointers times, so a pointer loop ends in an error.
func dnsReadName(b []byte, off int) (string, int, error) {
	var sb strings.Builder
	next := -1 // where the name ends in the original position
	hops := 0
	wire := 1 // encoded length so far, including the root label
	for {
		if off >= len(b) {
			return "", 0, errors.New("name truncated")
		}
		c := int(b[off])
		switch c & 0xc0 {
		case 0x00:
			if c == 0 {
				if next < 0 {
					next = off + 1
				}
				if sb.Len() == 0 {
					return ".", next, nil
				}
				return sb.String(), next, nil
			}
			if off+1+c > len(b) {
				return "", 0, errors.New("label truncated")
			}
			if wire += c + 1; wire > 255 {
				return "", 0, errors.New("name longer than 255 bytes")
			}
			dnsAppendLabel(&sb, b[off+1:off+1+c])
			off += 1 + c
		case 0xc0:
			if off+1 >= len(b) {
				return "", 0, errors.New("pointer truncated")
			}
			if hops++; hops > dnsMaxPointers {
				return "", 0, errors.New("compression pointer loop")
			}
			if next < 0 {
				next = off + 2
			}
			off = int(binary.BigEndian.Uint16(b[off:]) & 0x3fff)
		default:
			return "", 0, fmt.Errorf("label type %#x", c&0xc0)
		}
	}
}

// dnsAppendLabel writes one label and its trailing dot, escaping dots,
// backslashes and bytes that are not printable ASCII as RFC 1035 §5.1 does.
func dnsAppendLabel(sb *strings.Builder, l []byte) {
	for _, c := range l {
		switch {
		case c == '.' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c < 0x21 || c > 0x7e:
			fmt.Fprintf(sb, "\\%03d", c)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('.')
}

// dnsTXT joins the character-strings of a TXT record's RDATA.
func dnsTXT(rdata []byte) (string, error) {
	var sb strings.Builder
	for len(rdata) > 0 {
		n := int(rdata[0])
		if 1+n > len(rdata) {
			return sb.String(), errors.New("TXT string truncated")
		}
		sb.Write(rdata[1 : 1+n])
		rdata = rdata[1+n:]
	}
	return sb.String(), nil
}

// dnsQuery builds a query for one question.
func dnsQuery(id uint16, rd bool, name string, qtype, qclass uint16) []byte {
	b := make([]byte, 12, 12+len(name)+6)
	binary.BigEndian.PutUint16(b[0:], id)
	if rd {
		binary.BigEndian.PutUint16(b[2:], dnsFlagRD)
	}
	binary.BigEndian.PutUint16(b[4:], 1)
	for _, l := range strings.Split(strings.Trim(name, "."), ".") {
		if l == "" {
			continue
		}
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, qclass)
	return b
}

var dnsRcodes = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"}

func dnsRcodeName(rc int) string {
	if rc < len(dnsRcodes) {
		return dnsRcodes[rc]
	}
	return "RCODE" + strconv.Itoa(rc)
}

// dnsFlagNames lists the header bits that are set, dig style.
func dnsFlagNames(f uint16) string {
	var out []string
	for _, x := range []struct {
		bit  uint16
		name string
	}{{dnsFlagQR, "qr"}, {dnsFlagAA, "aa"}, {dnsFlagTC, "tc"}, {dnsFlagRD, "rd"}, {dnsFlagRA, "ra"}, {dnsFlagAD, "ad"}, {dnsFlagCD, "cd"}} {
		if f&x.bit != 0 {
			out = append(out, x.name)
		}
	}
	if op := (f >> 11) & 0xf; op != 0 {
		out = append(out, "opcode"+strconv.Itoa(int(op)))
	}
	return strings.Join(out, " ")
}

// dnsExchange sends q and waits up to wait for the reply with q's ID. A
// datagram that is no DNS response at all means the port speaks something
// else; replies with other IDs (a late answer to an earlier query) are
// skipped.
func dnsExchange(s *Session, q []byte, wait time.Duration) (*dnsMessage, []byte, error) {
	if err := s.Write(q); err != nil {
		return nil, nil, err
	}
	id := binary.BigEndian.Uint16(q)
	end := time.Now().Add(wait)
	for range dnsMaxReplies {
		left := time.Until(end)
		if left <= 0 {
			break
		}
		b, err := s.ReadFor(left, 1)
		if err != nil {
			return nil, nil, err
		}
		m, perr := parseDNSMessage(b)
		if m == nil || m.Flags&dnsFlagQR == 0 {
			return nil, b, NotMine("no DNS response: %q", clip(b, 40))
		}
		if m.ID != id {
			continue
		}
		_ = perr // a malformed section still leaves a usable header
		return m, b, nil
	}
	return nil, nil, fmt.Errorf("dns: no reply with id %d: %w", id, errDNSNoReply)
}

var errDNSNoReply = errors.New("no matching reply")

func grabDNS(ctx context.Context, s *Session) (*Result, error) {
	// On its own port (or when asked for by name) a silent CHAOS query is
	// followed by the plain one: a few servers and middleboxes drop
	// CHAOS. Elsewhere one unanswered packet is enough.
	own := s.Target.Addr.Port() == 53 || s.Target.Protocol == "dns"
	wait := time.Until(s.Deadline())
	if own {
		wait /= 2
	}
	r := &Result{Protocol: "dns"}
	vid := uint16(rand.N(1 << 16))
	m, _, err := dnsExchange(s, dnsQuery(vid, false, "version.bind", dnsTypeTXT, dnsClassCH), wait)
	switch {
	case errors.Is(err, ErrNotMine):
		return nil, err
	case err != nil && !own:
		return nil, err
	case err == nil:
		r.Set("dns.rcode", dnsRcodeName(m.rcode()))
		r.Set("dns.flags", dnsFlagNames(m.Flags))
		for _, a := range m.Answers {
			if a.Type != dnsTypeTXT {
				continue
			}
			if txt, _ := dnsTXT(a.Data); txt != "" {
				r.Banner = []byte(txt)
				break
			}
		}
	}
	answered := err == nil
	rid := vid ^ uint16(1+rand.N(1<<16-1)) // differs from vid
	rm, _, rerr := dnsExchange(s, dnsQuery(rid, true, ".", dnsTypeNS, dnsClassIN), time.Until(s.Deadline()))
	switch {
	case rerr == nil:
		answered = true
		// recursion available, and it did recurse: a non-empty answer
		// for a zone it cannot be authoritative for unless it is a root
		// server (and those set RA=0)
		recursion := "no"
		if rm.Flags&dnsFlagRA != 0 && rm.rcode() == 0 && len(rm.Answers) > 0 {
			recursion = "yes"
		}
		r.Set("dns.recursion", recursion)
		r.Set("dns.recursion_rcode", dnsRcodeName(rm.rcode()))
	case errors.Is(rerr, ErrNotMine) && !answered:
		return nil, rerr
	}
	if !answered {
		return nil, err
	}
	return r, nil
}
