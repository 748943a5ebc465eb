package tag

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

func FuzzLoadRules(f *testing.F) {
	f.Add([]byte("[[tag]]\nslug=\"X\"\nname=\"x\"\ncategory=\"tool\"\n[[tag.match]]\nports=[1,\"2-3\"]\npayload_regex='a+b'\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 1<<16 {
			return
		}
		e, err := Load(Options{}, src)
		if err != nil {
			return
		}
		ev := &record.Event{Transport: "tcp", DstPort: 1, Payload: []byte("aab GET / HTTP/1.1\r\n\r\n")}
		e.Tag(ev)
	})
}

func FuzzTag(f *testing.F) {
	f.Add([]byte("GET /${jndi:ldap://x} HTTP/1.1\r\nUser-Agent: zgrab\r\n\r\n"), uint16(80), uint8(2), uint16(54321), uint32(1), "tcp", "root", "M1460")
	f.Add([]byte("\x03\x00\x00\x13\x0e\xe0"), uint16(3389), uint8(24), uint16(0), uint32(0), "tcp", "", "")
	f.Add([]byte("OPTIONS sip:x SIP/2.0\r\n"), uint16(5060), uint8(0), uint16(0), uint32(0), "udp", "", "")
	e := Default()
	f.Fuzz(func(t *testing.T, payload []byte, port uint16, flags uint8, ipid uint16, seq uint32, transport, user, opts string) {
		if len(payload) > 1<<14 {
			payload = payload[:1<<14]
		}
		ev := &record.Event{Time: time.Unix(1e9, 0), Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.130"),
			Transport: transport, DstPort: port, TCPFlags: flags, IPID: ipid, TCPSeq: seq, Payload: payload,
			Username: user, TCPOptions: opts, Handshake: flags&16 != 0}
		ms := e.Tag(ev)
		if len(ms) > len(e.metas) {
			t.Fatalf("%d matches for %d tags", len(ms), len(e.metas))
		}
		seen := map[string]bool{}
		for _, m := range ms {
			if seen[m.Slug] {
				t.Fatalf("tag %s twice", m.Slug)
			}
			seen[m.Slug] = true
		}
	})
}

func FuzzImportRanges(f *testing.F) {
	f.Add([]byte("# list\n192.0.2.0/24\n10.0.0.1-10.0.0.9\n2001:db8::/32 x\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		a, err := ImportRanges(bytes.NewReader(src), "FUZZ")
		if err != nil {
			return
		}
		a.LookupRange(netip.MustParseAddr("10.0.0.5"))
		a.LookupRange(netip.MustParseAddr("2001:db8::1"))
	})
}
