package respond

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/vantagehq/vantage/record"
)

// DNS over UDP (RFC 1035): parses the first question with a bounded name
// parser (compression pointers followed at most dnsMaxJumps times, names
// at most 255 bytes), records the query name as HTTPPath and the query
// type as HTTPMethod, and answers REFUSED with the question echoed when it
// was uncompressed (header only otherwise). The reply is never larger than
// the query (the answer carries no records and drops EDNS), so the sensor
// is neither a resolver nor an amplifier. Responses (QR set) are never
// answered.

const (
	dnsMaxJumps = 16
	dnsMaxName  = 255
)

// dnsQuestion is the first question of a query.
type dnsQuestion struct {
	ID      uint16
	Flags   uint16
	Name    string
	Type    uint16
	Class   uint16
	Raw     []byte // the question's bytes as sent, when its name had no pointer
	QDCount uint16
}

// dnsReadName decodes the name at off; it returns the name in
// presentation format, the offset after it in the message, and whether
// it used compression.
func dnsReadName(msg []byte, off int) (string, int, bool, error) {
	var sb strings.Builder
	end, jumps, total := -1, 0, 0
	compressed := false
	for {
		if off >= len(msg) {
			return "", 0, false, errShort
		}
		l := int(msg[off])
		switch l & 0xc0 {
		case 0xc0:
			if off+1 >= len(msg) {
				return "", 0, false, errShort
			}
			if jumps++; jumps > dnsMaxJumps {
				return "", 0, false, ErrLimit
			}
			if end < 0 {
				end = off + 2
			}
			compressed = true
			off = int(binary.BigEndian.Uint16(msg[off:]) & 0x3fff)
			continue
		case 0x00:
		default:
			return "", 0, false, errBadRequest // 0x40, 0x80: extended label types
		}
		off++
		if l == 0 {
			if end < 0 {
				end = off
			}
			name := sb.String()
			if name == "" {
				name = "."
			}
			return name, end, compressed, nil
		}
		if off+l > len(msg) {
			return "", 0, false, errShort
		}
		if total += l + 1; total > dnsMaxName {
			return "", 0, false, ErrLimit
		}
		for _, c := range msg[off : off+l] {
			switch {
			case c == '.' || c == '\\':
				sb.WriteByte('\\')
				sb.WriteByte(c)
			case c > 0x20 && c < 0x7f:
				sb.WriteByte(c)
			default:
				sb.WriteByte('\\')
				s := strconv.Itoa(int(c))
				sb.WriteString(strings.Repeat("0", 3-len(s)) + s)
			}
		}
		sb.WriteByte('.')
		off += l
	}
}

// parseDNSQuery parses a query's header and first question.
func parseDNSQuery(p []byte) (*dnsQuestion, error) {
	if len(p) < 12 {
		return nil, errShort
	}
	q := &dnsQuestion{
		ID:      binary.BigEndian.Uint16(p),
		Flags:   binary.BigEndian.Uint16(p[2:]),
		QDCount: binary.BigEndian.Uint16(p[4:]),
	}
	if q.Flags&0x8000 != 0 {
		return nil, errBadRequest // a response
	}
	if q.QDCount == 0 {
		return q, nil
	}
	name, off, compressed, err := dnsReadName(p, 12)
	if err != nil {
		return nil, err
	}
	if off+4 > len(p) {
		return nil, errShort
	}
	q.Name = name
	q.Type = binary.BigEndian.Uint16(p[off:])
	q.Class = binary.BigEndian.Uint16(p[off+2:])
	if !compressed {
		q.Raw = p[12 : off+4]
	}
	return q, nil
}

var dnsTypes = map[uint16]string{1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX",
	16: "TXT", 28: "AAAA", 33: "SRV", 35: "NAPTR", 43: "DS", 46: "RRSIG", 48: "DNSKEY",
	64: "SVCB", 65: "HTTPS", 99: "SPF", 252: "AXFR", 251: "IXFR", 255: "ANY", 256: "URI", 257: "CAA"}

func dnsTypeName(t uint16) string {
	if n, ok := dnsTypes[t]; ok {
		return n
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// handleDNS records a DNS query and returns a REFUSED reply no larger than
// it, or nil.
func handleDNS(p []byte, ev *record.Event) []byte {
	q, err := parseDNSQuery(p)
	if err != nil {
		return nil
	}
	if q.Name != "" {
		ev.HTTPPath = clean(q.Name, 1024)
		ev.HTTPMethod = dnsTypeName(q.Type)
	}
	reply := make([]byte, 12, 12+len(q.Raw))
	binary.BigEndian.PutUint16(reply, q.ID)
	// QR=1, opcode and RD copied, AA=TC=RA=0, RCODE=5 (REFUSED).
	flags := uint16(0x8000) | q.Flags&0x7800 | q.Flags&0x0100 | 5
	binary.BigEndian.PutUint16(reply[2:], flags)
	if q.Raw != nil {
		binary.BigEndian.PutUint16(reply[4:], 1)
		reply = append(reply, q.Raw...)
	}
	if len(reply) > len(p) {
		return nil
	}
	return reply
}
