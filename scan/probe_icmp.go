package scan

import (
	"encoding/binary"

	"github.com/vantagehq/vantage/frame"
)

func init() {
	Register(&Module{
		Name:        "icmp_echo",
		Description: "ICMP echo request (ping): up on echo reply",
		Transport:   "icmp",
		Protocols:   []uint8{frame.ProtoICMP},
		MaxFrame:    frame.EthLen + frame.IPv4Len + frame.ICMPLen + icmpPayload,
		New:         newICMPEcho,
	})
}

// icmpPayload carries the whole 64-bit MAC; an echo reply returns the
// identifier, sequence number and payload unchanged, so all of it validates.
const icmpPayload = 8

type icmpEcho struct {
	env  Env
	tmpl []byte
}

func newICMPEcho(env Env) (Probe, error) {
	m := &icmpEcho{env: env, tmpl: make([]byte, tcpOff+frame.ICMPLen+icmpPayload)}
	frame.PutEthernet(m.tmpl, env.DstMAC, env.SrcMAC, frame.EtherTypeIPv4)
	m.tmpl[tcpOff] = frame.ICMPEchoRequest
	return m, nil
}

func (m *icmpEcho) Build(b []byte, dst uint32, _ uint16, n int) int {
	copy(b, m.tmpl)
	mac := m.env.MAC.Sum(m.env.Src, dst, 0)
	frame.PutIPv4(b[ipOff:], m.env.Src, dst, frame.ProtoICMP, m.env.TTL, uint16(mac>>48), frame.ICMPLen+icmpPayload)
	ic := b[tcpOff:]
	binary.BigEndian.PutUint16(ic[4:], uint16(mac>>32))
	binary.BigEndian.PutUint16(ic[6:], uint16(n))
	binary.BigEndian.PutUint64(ic[8:], mac)
	binary.BigEndian.PutUint16(ic[2:], frame.Checksum(ic[:frame.ICMPLen+icmpPayload], 0))
	return len(m.tmpl)
}

func (m *icmpEcho) Classify(p *frame.Packet) (Reply, bool) {
	if p.Proto != frame.ProtoICMP || p.ICMPType != frame.ICMPEchoReply || len(p.Payload) < icmpPayload {
		return Reply{}, false
	}
	mac := m.env.MAC.Sum(m.env.Src, p.Src, 0)
	if p.ICMPID != uint16(mac>>32) || int(p.ICMPSeq) >= m.env.Probes || binary.BigEndian.Uint64(p.Payload) != mac {
		return Reply{}, false
	}
	return Reply{State: StateUp, TTL: p.TTL}, true
}
