package grab

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// dnsTestQuery is a query as the fake server decodes it (RFC 1035 4.1,
// no compression in questions, as clients send them).
type dnsTestQuery struct {
	raw          []byte
	id           uint16
	rd           bool
	name         string
	qtype, class uint16
}

func dnsTestParseQuery(b []byte) (dnsTestQuery, bool) {
	q := dnsTestQuery{raw: b}
	if len(b) < 17 || b[2]&0x80 != 0 || binary.BigEndian.Uint16(b[4:]) != 1 {
		return q, false
	}
	q.id = binary.BigEndian.Uint16(b)
	q.rd = b[2]&1 != 0
	off := 12
	var labels []string
	for {
		if off >= len(b) {
			return q, false
		}
		n := int(b[off])
		if n == 0 {
			off++
			break
		}
		if n > 63 || off+1+n > len(b) {
			return q, false
		}
		labels = append(labels, string(b[off+1:off+1+n]))
		off += 1 + n
	}
	if off+4 > len(b) {
		return q, false
	}
	q.name = strings.Join(labels, ".") + "."
	q.qtype = binary.BigEndian.Uint16(b[off:])
	q.class = binary.BigEndian.Uint16(b[off+2:])
	return q, true
}

// dnsTestReply builds a response echoing q's question: answers and
// authority are complete resource records in wire form.
func dnsTestReply(q dnsTestQuery, flags uint16, rcode int, answers, authority [][]byte) []byte {
	qlen := len(dnsQuery(0, false, q.name, q.qtype, q.class)) - 12
	b := make([]byte, 12, 512)
	binary.BigEndian.PutUint16(b, q.id)
	f := dnsFlagQR | flags | uint16(rcode)
	if q.rd {
		f |= dnsFlagRD
	}
	binary.BigEndian.PutUint16(b[2:], f)
	binary.BigEndian.PutUint16(b[4:], 1)
	binary.BigEndian.PutUint16(b[6:], uint16(len(answers)))
	binary.BigEndian.PutUint16(b[8:], uint16(len(authority)))
	b = append(b, q.raw[12:12+qlen]...)
	for _, rr := range append(answers, authority...) {
		b = append(b, rr...)
	}
	return b
}

// dnsTestRR builds a record; name is already in wire form (labels or a
// pointer).
func dnsTestRR(name []byte, typ, class uint16, ttl uint32, rdata []byte) []byte {
	b := append([]byte(nil), name...)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, class)
	b = binary.BigEndian.AppendUint32(b, ttl)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
	return append(b, rdata...)
}

func dnsTestTXT(s ...string) []byte {
	var b []byte
	for _, x := range s {
		b = append(append(b, byte(len(x))), x...)
	}
	return b
}

// the question name is always at offset 12
var dnsPtrQ = []byte{0xc0, 12}

// dnsRootNS is the answer section of a recursive server to ". NS": 13
// records, the first name written out, the rest compressed against it.
func dnsRootNS() [][]byte {
	var out [][]byte
	// header, root question, then the first record's owner pointer,
	// type, class, TTL and RDLENGTH: its RDATA starts at 29
	first := 12 + 1 + 4 + 2 + 2 + 2 + 4 + 2
	for i := range 13 {
		var rdata []byte
		if i == 0 {
			rdata = []byte("\x01a\x0croot-servers\x03net\x00")
		} else {
			rdata = []byte{1, byte('a' + i), 0xc0, byte(first + 2)} // "x" + pointer to "root-servers.net"
		}
		out = append(out, dnsTestRR([]byte{0xc0, 12}, dnsTypeNS, dnsClassIN, 518400, rdata))
	}
	return out
}

// dnsFake answers queries; datagrams that are no query are ignored.
func dnsFake(t *testing.T, answer func(q dnsTestQuery) [][]byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q, ok := dnsTestParseQuery(bytes.Clone(buf[:n]))
			if !ok {
				continue
			}
			for _, d := range answer(q) {
				pc.WriteTo(d, from)
			}
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// dnsServer is a well-behaved server: version is its version.bind TXT
// ("" refuses the CHAOS query, "-" ignores it), recursive whether it
// answers recursive queries.
func dnsServer(version string, recursive bool) func(q dnsTestQuery) [][]byte {
	return func(q dnsTestQuery) [][]byte {
		switch {
		case q.class == dnsClassCH && q.name == "version.bind." && q.qtype == dnsTypeTXT:
			switch version {
			case "-":
				return nil
			case "":
				return [][]byte{dnsTestReply(q, 0, 5, nil, nil)}
			}
			ans := dnsTestRR(dnsPtrQ, dnsTypeTXT, dnsClassCH, 0, dnsTestTXT(version))
			auth := dnsTestRR(dnsPtrQ, dnsTypeNS, dnsClassCH, 0, dnsPtrQ)
			return [][]byte{dnsTestReply(q, dnsFlagAA, 0, [][]byte{ans}, [][]byte{auth})}
		case q.class == dnsClassIN && q.name == "." && q.qtype == dnsTypeNS:
			if recursive && q.rd {
				return [][]byte{dnsTestReply(q, dnsFlagRA, 0, dnsRootNS(), nil)}
			}
			return [][]byte{dnsTestReply(q, 0, 5, nil, nil)}
		}
		return [][]byte{dnsTestReply(q, 0, 4, nil, nil)}
	}
}

func TestDNS(t *testing.T) {
	tests := []struct {
		name   string
		answer func(q dnsTestQuery) [][]byte
		blind  bool
		banner string
		want   map[string]string
	}{
		{"bind, not recursive", dnsServer("9.18.19-1~deb12u1-Debian", false), false, "9.18.19-1~deb12u1-Debian",
			map[string]string{"dns.rcode": "NOERROR", "dns.flags": "qr aa", "dns.recursion": "no", "dns.recursion_rcode": "REFUSED"}},
		{"dnsmasq, recursive, found blind", dnsServer("dnsmasq-2.89", true), true, "dnsmasq-2.89",
			map[string]string{"dns.rcode": "NOERROR", "dns.recursion": "yes", "dns.recursion_rcode": "NOERROR"}},
		{"version hidden", dnsServer("", true), false, "",
			map[string]string{"dns.rcode": "REFUSED", "dns.recursion": "yes"}},
		{"CHAOS dropped", dnsServer("-", true), false, "",
			map[string]string{"dns.recursion": "yes"}},
		{"split TXT strings", func(q dnsTestQuery) [][]byte {
			ans := dnsTestRR(dnsPtrQ, dnsTypeTXT, dnsClassCH, 0, dnsTestTXT("unbound ", "1.17.1"))
			return [][]byte{dnsTestReply(q, dnsFlagAA, 0, [][]byte{ans}, nil)}
		}, false, "unbound 1.17.1", map[string]string{"dns.rcode": "NOERROR"}},
		{"late reply with an old id first", func(q dnsTestQuery) [][]byte {
			stale := q
			stale.id ^= 0x5555
			return [][]byte{dnsTestReply(stale, 0, 2, nil, nil), dnsServer("Knot DNS 3.3.2", false)(q)[0]}
		}, false, "Knot DNS 3.3.2", map[string]string{"dns.rcode": "NOERROR"}},
		{"compression loop in the answer", func(q dnsTestQuery) [][]byte {
			// the answer's owner name points at itself
			r := dnsTestReply(q, 0, 0, nil, nil)
			binary.BigEndian.PutUint16(r[6:], 1)
			p := len(r)
			return [][]byte{append(r, dnsTestRR([]byte{0xc0, byte(p)}, dnsTypeTXT, dnsClassCH, 0, dnsTestTXT("x"))...)}
		}, false, "", map[string]string{"dns.rcode": "NOERROR"}},
		{"65535 answers announced, none sent", func(q dnsTestQuery) [][]byte {
			r := dnsTestReply(q, 0, 0, nil, nil)
			binary.BigEndian.PutUint16(r[6:], 0xffff)
			return [][]byte{r}
		}, false, "", map[string]string{"dns.rcode": "NOERROR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := Target{Addr: dnsFake(t, tt.answer), Transport: "udp", Protocol: "dns"}
			if tt.blind {
				target.Protocol = ""
			}
			svc, _, err := grabC2(t, target, Config{Timeout: time.Second})
			if err != nil {
				t.Fatalf("grab: %v", err)
			}
			if svc.Protocol != "dns" {
				t.Fatalf("protocol %q, want dns", svc.Protocol)
			}
			if string(svc.Banner) != tt.banner {
				t.Errorf("banner %q, want %q", svc.Banner, tt.banner)
			}
			for k, v := range tt.want {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q (all: %v)", k, svc.Data[k], v, svc.Data)
				}
			}
		})
	}
}

func TestDNSHostile(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(q dnsTestQuery) [][]byte
		notMine bool
	}{
		{"silent", func(dnsTestQuery) [][]byte { return nil }, false},
		{"truncated header", func(q dnsTestQuery) [][]byte { return [][]byte{q.raw[:5]} }, true},
		{"not dns", func(dnsTestQuery) [][]byte { return [][]byte{[]byte("HTTP/1.1 400 Bad Request\r\n\r\n")} }, true},
		{"query echoed back", func(q dnsTestQuery) [][]byte { return [][]byte{q.raw} }, true},
		{"flood of wrong ids", func(q dnsTestQuery) [][]byte {
			var out [][]byte
			for i := range 50 {
				x := q
				x.id += uint16(i + 1)
				out = append(out, dnsTestReply(x, 0, 0, nil, nil))
			}
			return out
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := dnsFake(t, tt.answer)
			start := time.Now()
			svc, _, err := grabC2(t, Target{Addr: addr, Transport: "udp", Protocol: "dns"}, Config{Timeout: time.Second})
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			if svc.Protocol == "dns" {
				t.Fatalf("recognised dns: %v", svc.Data)
			}
			if svc.Protocol == "" && err == nil {
				t.Fatal("neither a protocol nor an error")
			}
			// the module itself says whether it saw another protocol
			c, derr := net.Dial("udp", addr.String())
			if derr != nil {
				t.Fatal(derr)
			}
			defer c.Close()
			s := newSession(Target{Addr: addr, Transport: "udp"}, c, 1<<16, time.Now().Add(time.Second))
			if _, err := grabDNS(context.Background(), s); errors.Is(err, ErrNotMine) != tt.notMine {
				t.Errorf("grabDNS: %v", err)
			}
		})
	}
}

func TestParseDNSMessage(t *testing.T) {
	q, _ := dnsTestParseQuery(dnsQuery(7, true, ".", dnsTypeNS, dnsClassIN))
	msg := dnsTestReply(q, dnsFlagRA, 0, dnsRootNS(), nil)
	m, err := parseDNSMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != 7 || len(m.Questions) != 1 || m.Questions[0].Name != "." || len(m.Answers) != 13 {
		t.Fatalf("got %+v", m)
	}
	off := bytes.Index(msg, m.Answers[12].Data)
	if name, _, err := dnsReadName(msg, off); err != nil || name != "m.root-servers.net." {
		t.Errorf("last NS %q %v", name, err)
	}
	names := []struct {
		in   []byte
		want string
		err  bool
	}{
		{[]byte("\x07example\x03com\x00"), "example.com.", false},
		{[]byte("\x03a.b\x02\x01z\x00"), `a\.b.\001z.`, false},
		{[]byte{0xc0, 0}, "", true},              // points at itself
		{[]byte{2, 'a', 'b', 0xc0, 0}, "", true}, // loops through a label
		{[]byte{0x40, 0}, "", true},              // extended label type
		{[]byte{5, 'a'}, "", true},               // truncated label
		{bytes.Repeat([]byte{63}, 1), "", true},  // label without its bytes
		{append(bytes.Repeat(append([]byte{63}, bytes.Repeat([]byte{'x'}, 63)...), 5), 0), "", true}, // > 255 bytes
	}
	for _, n := range names {
		got, _, err := dnsReadName(n.in, 0)
		if (err != nil) != n.err || got != n.want {
			t.Errorf("dnsReadName(% x) = %q, %v", n.in, got, err)
		}
	}
}

func FuzzDNSMessage(f *testing.F) {
	q, _ := dnsTestParseQuery(dnsQuery(1, false, "version.bind", dnsTypeTXT, dnsClassCH))
	f.Add(dnsTestReply(q, dnsFlagAA, 0, [][]byte{dnsTestRR(dnsPtrQ, dnsTypeTXT, dnsClassCH, 0, dnsTestTXT("9.18.19"))}, nil))
	q2, _ := dnsTestParseQuery(dnsQuery(2, true, ".", dnsTypeNS, dnsClassIN))
	f.Add(dnsTestReply(q2, dnsFlagRA, 0, dnsRootNS(), nil))
	f.Add([]byte("\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\xc0\x0c"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _ := parseDNSMessage(b)
		if m == nil {
			return
		}
		if len(m.Questions) > dnsMaxQuestions || len(m.Answers) > dnsMaxRecords || len(m.Authority) > dnsMaxRecords {
			t.Fatalf("sections beyond bounds: %d %d %d", len(m.Questions), len(m.Answers), len(m.Authority))
		}
		for _, a := range m.Answers {
			dnsTXT(a.Data)
		}
		dnsFlagNames(m.Flags)
		dnsRcodeName(m.rcode())
	})
}
