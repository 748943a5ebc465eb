package sensor

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/vantagehq/vantage/record"
)

func eth(etherType uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	binary.BigEndian.PutUint16(b[12:], etherType)
	return append(b, payload...)
}

func tcpHeader(sport, dport uint16, seq uint32, flags uint8, window uint16, opts []byte, payload []byte) []byte {
	off := 20 + len(opts)
	b := make([]byte, off, off+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	b[12] = byte(off/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], window)
	copy(b[20:], opts)
	return append(b, payload...)
}

func ipv4(src, dst [4]byte, proto, ttl uint8, id uint16, l4 []byte) []byte {
	b := make([]byte, 20, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(b[4:], id)
	b[8], b[9] = ttl, proto
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	return append(b, l4...)
}

func ipv6(src, dst netip.Addr, next uint8, hop uint8, l4 []byte) []byte {
	b := make([]byte, 40, 40+len(l4))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(l4)))
	b[6], b[7] = next, hop
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, l4...)
}

func TestDecode(t *testing.T) {
	linuxOpts := []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}
	src6, dst6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:5::9")
	hopByHop := append([]byte{6, 0, 1, 4, 0, 0, 0, 0}, tcpHeader(40000, 22, 7, 0x02, 64800, nil, nil)...)
	cases := []struct {
		name  string
		frame []byte
		want  record.Event
	}{
		{"IPv4 SYN with Linux options", eth(0x0800, ipv4([4]byte{192, 0, 2, 10}, [4]byte{198, 51, 100, 200}, 6, 63, 54321,
			tcpHeader(51000, 80, 0xc6336480, 0x02, 65535, linuxOpts, nil))),
			record.Event{Src: netip.MustParseAddr("192.0.2.10"), Dst: netip.MustParseAddr("198.51.100.200"), SrcPort: 51000, DstPort: 80,
				Transport: "tcp", TTL: 63, IPID: 54321, TCPFlags: 2, TCPWindow: 65535, TCPSeq: 0xc6336480, TCPOptions: "M1460,S,T,N,W7"}},
		{"IPv4 UDP with payload", eth(0x0800, ipv4([4]byte{192, 0, 2, 10}, [4]byte{198, 51, 100, 201}, 17, 64, 1,
			append([]byte{0x13, 0xc4, 0x13, 0xc4, 0, 13, 0, 0}, "OPTIONS"...))),
			record.Event{Src: netip.MustParseAddr("192.0.2.10"), Dst: netip.MustParseAddr("198.51.100.201"), SrcPort: 5060, DstPort: 5060,
				Transport: "udp", TTL: 64, IPID: 1, Payload: []byte("OPTIONS")}},
		{"IPv4 ICMP echo", eth(0x0800, ipv4([4]byte{192, 0, 2, 10}, [4]byte{198, 51, 100, 202}, 1, 64, 9, []byte{8, 0, 0, 0, 0, 1, 0, 1})),
			record.Event{Src: netip.MustParseAddr("192.0.2.10"), Dst: netip.MustParseAddr("198.51.100.202"), Transport: "icmp", TTL: 64, IPID: 9, ICMPType: 8}},
		{"IPv6 SYN behind a hop-by-hop header", eth(0x86dd, ipv6(src6, dst6, 0, 58, hopByHop)),
			record.Event{Src: src6, Dst: dst6, SrcPort: 40000, DstPort: 22, Transport: "tcp", TTL: 58, TCPFlags: 2, TCPWindow: 64800, TCPSeq: 7}},
		{"VLAN-tagged IPv6 ICMP echo", func() []byte {
			f := eth(0x8100, append([]byte{0, 5, 0x86, 0xdd}, ipv6(src6, dst6, 58, 64, []byte{128, 0, 0, 0, 0, 1})...))
			return f
		}(), record.Event{Src: src6, Dst: dst6, Transport: "icmp", TTL: 64, ICMPType: 128, Payload: []byte{0, 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ev record.Event
			if err := decode(c.frame, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Src != c.want.Src || ev.Dst != c.want.Dst || ev.SrcPort != c.want.SrcPort || ev.DstPort != c.want.DstPort ||
				ev.Transport != c.want.Transport || ev.TTL != c.want.TTL || ev.IPID != c.want.IPID || ev.TCPFlags != c.want.TCPFlags ||
				ev.TCPWindow != c.want.TCPWindow || ev.TCPSeq != c.want.TCPSeq || ev.TCPOptions != c.want.TCPOptions ||
				ev.ICMPType != c.want.ICMPType || string(ev.Payload) != string(c.want.Payload) {
				t.Errorf("got  %+v\nwant %+v", ev, c.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, f := range map[string][]byte{
		"short":           {1, 2, 3},
		"ARP":             eth(0x0806, make([]byte, 28)),
		"IPv6 fragment":   eth(0x86dd, ipv6(netip.IPv6Loopback(), netip.IPv6Loopback(), 44, 1, []byte{6, 0, 0, 8, 0, 0, 0, 1})),
		"bad TCP offset":  eth(0x0800, ipv4([4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2}, 6, 1, 1, append(make([]byte, 12), 0xf0, 2, 0, 0, 0, 0, 0, 0))),
		"endless options": eth(0x86dd, ipv6(netip.IPv6Loopback(), netip.IPv6Loopback(), 0, 1, []byte{0, 200, 0, 0, 0, 0, 0, 0})),
	} {
		var ev record.Event
		if err := decode(f, &ev); err == nil {
			t.Errorf("%s: decoded as %+v", name, ev)
		}
	}
}

func TestTCPOptions(t *testing.T) {
	for in, want := range map[string]string{
		"":                                 "",
		"\x02\x04\x05\xb4":                 "M1460",
		"\x02\x04\x05\xb4\x01\x01\x04\x02": "M1460,N,N,S",
		"\x03\x03\x0a\x00":                 "W10,E",
		"\x1e\x00":                         "K30!",
		"\xfe\x04\x01\x02":                 "K254",
	} {
		if got := TCPOptions([]byte(in)); got != want {
			t.Errorf("TCPOptions(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(eth(0x0800, ipv4([4]byte{192, 0, 2, 10}, [4]byte{198, 51, 100, 200}, 6, 63, 54321, tcpHeader(1, 80, 1, 2, 1024, []byte{2, 4, 5, 0xb4}, nil))))
	f.Add(eth(0x86dd, ipv6(netip.IPv6Loopback(), netip.IPv6Loopback(), 17, 1, []byte{0, 53, 0, 53, 0, 8, 0, 0})))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev record.Event
		if decode(b, &ev) == nil && len(ev.Payload) > maxPayload {
			t.Fatalf("payload of %d bytes", len(ev.Payload))
		}
		TCPOptions(b)
	})
}
