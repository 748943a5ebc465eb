package respond

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

func dnsQueryPacket(id uint16, name string, qtype uint16) []byte {
	b := []byte{byte(id >> 8), byte(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(append(b, byte(len(l))), l...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, 1)
}

func TestDNSRefused(t *testing.T) {
	q := dnsQueryPacket(0xbeef, "version.bind", 16)
	var ev record.Event
	r := HandlePacket(q, 53, &ev)
	if len(r) != len(q) || r[0] != 0xbe || r[1] != 0xef || r[2]&0x80 == 0 || r[3]&0x0f != 5 || r[2]&0x01 != 1 {
		t.Fatalf("reply % x", r)
	}
	if ev.HTTPPath != "version.bind." || ev.HTTPMethod != "TXT" || ev.Transport != "udp" || string(ev.Payload) != string(q) {
		t.Errorf("%+v", ev)
	}
	// With EDNS (an OPT record) the reply is smaller than the query.
	qe := append(append([]byte(nil), q...), 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0)
	qe[11] = 1
	if r := HandlePacket(qe, 53, &record.Event{}); len(r) != len(q) {
		t.Errorf("EDNS reply %d bytes", len(r))
	}
}

func TestDNSHostile(t *testing.T) {
	hdr := []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	cases := map[string][]byte{
		"self-loop":  append(append([]byte(nil), hdr...), 0xc0, 12, 0, 1, 0, 1),
		"two-loop":   append(append([]byte(nil), hdr...), 1, 'a', 0xc0, 14, 0xc0, 12, 0, 1, 0, 1),
		"forward":    append(append([]byte(nil), hdr...), 0xc0, 200, 0, 1, 0, 1),
		"truncated":  append(append([]byte(nil), hdr...), 10, 'a'),
		"long-name":  append(append(append([]byte(nil), hdr...), []byte(strings.Repeat("\x3f"+strings.Repeat("x", 63), 5))...), 0, 0, 1, 0, 1),
		"response":   {0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1},
		"short":      {0, 1, 2},
		"ext-label":  append(append([]byte(nil), hdr...), 0x41, 0, 0, 1, 0, 1),
		"no-qtype":   append(append([]byte(nil), hdr...), 1, 'a', 0),
		"empty-root": append(append([]byte(nil), hdr...), 0, 0, 1, 0, 1),
	}
	for name, p := range cases {
		var ev record.Event
		r := HandlePacket(p, 53, &ev)
		if len(r) > len(p) {
			t.Errorf("%s: reply larger than query", name)
		}
		t.Logf("%s: reply %d bytes, qname %q", name, len(r), ev.HTTPPath)
	}
	// A question whose name is a pointer is answered with the header only.
	p := append(append([]byte(nil), hdr...), 0xc0, 12, 0, 1, 0, 1)
	p = append(p, 1, 'a', 0)
	binary.BigEndian.PutUint16(p[12:], 0xc000|uint16(len(p)-3))
	if n, _, comp, err := dnsReadName(p, 12); err != nil || n != "a." || !comp {
		t.Errorf("pointer: %q %v %v", n, comp, err)
	}
	var ev record.Event
	if r := HandlePacket(p, 53, &ev); len(r) != 12 || r[5] != 0 || ev.HTTPPath != "a." {
		t.Errorf("compressed: % x %q", r, ev.HTTPPath)
	}
}

// TestDNSGoResolver uses Go's own DNS client against a UDP listener.
func TestDNSGoResolver(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var names []string
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var ev record.Event
			if r := HandlePacket(buf[:n], 53, &ev); r != nil {
				pc.WriteTo(r, from)
			}
			mu.Lock()
			names = append(names, ev.HTTPMethod+" "+ev.HTTPPath)
			mu.Unlock()
		}
	}()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("udp", pc.LocalAddr().String())
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = res.LookupHost(ctx, "probe.example.org")
	if err == nil {
		t.Fatal("resolved through a sensor")
	}
	t.Logf("resolver: %v", err)
	mu.Lock()
	defer mu.Unlock()
	if len(names) == 0 || !strings.Contains(strings.Join(names, ","), "A probe.example.org.") {
		t.Errorf("recorded %q", names)
	}
}

func TestSIPUDP(t *testing.T) {
	req := strings.Replace(sipOptions, "SIP/2.0/TCP", "SIP/2.0/UDP", 1)
	var ev record.Event
	r := HandlePacket([]byte(req), 5060, &ev)
	if !strings.HasPrefix(string(r), "SIP/2.0 200 OK\r\n") || len(r) > len(req) {
		t.Errorf("reply %q", r)
	}
	if ev.UserAgent != "friendly-scanner" || ev.HTTPMethod != "OPTIONS" {
		t.Errorf("%+v", ev)
	}
	// A tiny request whose answer would be larger gets none.
	tiny := "OPTIONS sip:a SIP/2.0\r\nv: x\r\ni: y\r\n\r\n"
	if r := HandlePacket([]byte(tiny), 5060, &record.Event{}); len(r) > len(tiny) {
		t.Errorf("amplified: %q", r)
	}
	// Another port, other content: recorded, not answered.
	ev = record.Event{}
	if r := HandlePacket([]byte("\x00hello"), 1900, &ev); r != nil || string(ev.Payload) != "\x00hello" || ev.DstPort != 1900 {
		t.Errorf("default: %q %+v", r, ev)
	}
	big := make([]byte, 9000)
	if HandlePacket(big, 9, &ev); len(ev.Payload) != MaxPacketPayload {
		t.Errorf("payload %d", len(ev.Payload))
	}
}
