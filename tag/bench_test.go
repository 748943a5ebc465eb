package tag

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

// BenchmarkTag runs a realistic mix: mostly SYNs and ICMP, some UDP, and
// one in ten events with an application payload (HTTP, exploits, SSH).
func BenchmarkTag(b *testing.B) {
	e := freshEngine(b)
	samples := loadSamples(b)
	var app []record.Event
	for i, s := range samples {
		ev, err := s.Event.event(i)
		if err != nil {
			b.Fatal(err)
		}
		if len(ev.Payload) > 0 || ev.Username != "" {
			app = append(app, ev)
		}
	}
	dst := netip.MustParseAddr("198.51.100.130")
	var mix []record.Event
	for i := 0; i < 1000; i++ {
		src := netip.AddrFrom4([4]byte{100, byte(i >> 8), byte(i), 7})
		switch {
		case i%10 == 0:
			ev := app[i/10%len(app)]
			ev.Src = src
			mix = append(mix, ev)
		case i%10 < 7:
			mix = append(mix, record.Event{Src: src, Dst: dst, Transport: "tcp", TCPFlags: 2, DstPort: uint16([]int{22, 23, 80, 443, 445, 3389, 8080}[i%7]),
				TTL: 50, IPID: uint16(i * 7919), TCPWindow: 65535, TCPSeq: uint32(i * 104729), TCPOptions: "M1460,S,T,N,W7"})
		case i%10 == 7:
			mix = append(mix, record.Event{Src: src, Dst: dst, Transport: "icmp", ICMPType: 8})
		default:
			mix = append(mix, record.Event{Src: src, Dst: dst, Transport: "udp", DstPort: uint16(i), Payload: []byte(fmt.Sprint("probe", i))})
		}
		mix[len(mix)-1].Time = time.Unix(1e9+int64(i), 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Tag(&mix[i%len(mix)])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}
