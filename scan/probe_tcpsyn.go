package scan

import (
	"encoding/binary"
	"fmt"

	"github.com/vantagehq/vantage/frame"
)

// tcpOptionProfiles are SYN option layouts of common stacks. Many hosts and
// middleboxes ignore or drop option-less SYNs, so a realistic layout raises
// the hit rate; and a scanner that looks like a common OS carries no magic
// fingerprint. "T" marks the 4-byte timestamp value, filled per probe.
var tcpOptionProfiles = map[string]struct {
	window  uint16
	options []byte
}{
	// Linux: MSS, SACK permitted, timestamps, NOP, window scale 7
	"linux": {64240, []byte{2, 4, 5, 0xb4, 4, 2, 8, 10, 'T', 'T', 'T', 'T', 0, 0, 0, 0, 1, 3, 3, 7}},
	// Windows 10/11: MSS, NOP, window scale 8, NOP, NOP, SACK permitted
	"windows": {64240, []byte{2, 4, 5, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2}},
	// BSD / macOS: MSS, NOP, window scale 6, NOP, NOP, timestamps, SACK permitted, EOL, EOL
	"bsd": {65535, []byte{2, 4, 5, 0xb4, 1, 3, 3, 6, 1, 1, 8, 10, 'T', 'T', 'T', 'T', 0, 0, 0, 0, 4, 2, 0, 0}},
	// the smallest probe that still carries an MSS
	"mss": {65535, []byte{2, 4, 5, 0xb4}},
	// no options at all (classic ZMap, masscan)
	"none": {65535, nil},
}

func init() {
	Register(&Module{
		Name:        "tcp_syn",
		Description: "TCP SYN scan: open on SYN-ACK, closed on RST",
		Transport:   "tcp",
		UsesPorts:   true,
		Protocols:   []uint8{frame.ProtoTCP},
		MaxFrame:    frame.EthLen + frame.IPv4Len + frame.TCPLen + 40,
		Connect:     true,
		Args:        "SYN options like a common OS: linux (default), windows, bsd, mss, none",
		New:         newTCPSyn,
	})
}

type tcpSyn struct {
	env    Env
	tmpl   []byte
	tsOff  int    // offset of the timestamp value in the frame, 0 if none
	ipSum  uint32 // partial checksums of everything that does not change per probe
	tcpSum uint32
}

const (
	ipOff  = frame.EthLen
	tcpOff = frame.EthLen + frame.IPv4Len
)

func newTCPSyn(env Env) (Probe, error) {
	name := env.Args
	if name == "" {
		name = "linux"
	}
	prof, ok := tcpOptionProfiles[name]
	if !ok {
		return nil, fmt.Errorf("tcp_syn: unknown option profile %q (want linux, windows, bsd, mss or none)", name)
	}
	tcpLen := frame.TCPLen + len(prof.options)
	m := &tcpSyn{env: env, tmpl: make([]byte, tcpOff+tcpLen)}
	b := m.tmpl
	frame.PutEthernet(b, env.DstMAC, env.SrcMAC, frame.EtherTypeIPv4)
	// destination and IP ID are zero in the template: they vary per probe
	frame.PutIPv4(b[ipOff:], env.Src, 0, frame.ProtoTCP, env.TTL, 0, tcpLen)
	binary.BigEndian.PutUint16(b[ipOff+10:], 0)
	t := b[tcpOff:]
	t[12] = byte(tcpLen/4) << 4
	t[13] = frame.FlagSYN
	binary.BigEndian.PutUint16(t[14:], prof.window)
	copy(t[frame.TCPLen:], prof.options)
	for i := 0; i+4 <= len(prof.options); i++ {
		if string(prof.options[i:i+4]) == "TTTT" {
			m.tsOff = tcpOff + frame.TCPLen + i
			copy(b[m.tsOff:], []byte{0, 0, 0, 0})
			break
		}
	}
	m.ipSum = frame.Sum(b[ipOff:tcpOff], 0)
	m.tcpSum = frame.Sum(t, frame.PseudoSum(env.Src, 0, frame.ProtoTCP, tcpLen))
	return m, nil
}

func (m *tcpSyn) Build(b []byte, dst uint32, port uint16, n int) int {
	copy(b, m.tmpl)
	mac := m.env.MAC.Sum(m.env.Src, dst, port)
	seq := uint32(mac)
	sport := m.env.srcPort(mac, n)
	id := uint16(mac >> 48) // random-looking, no fixed IP ID fingerprint
	dhi, dlo := dst>>16, dst&0xffff

	binary.BigEndian.PutUint16(b[ipOff+4:], id)
	binary.BigEndian.PutUint32(b[ipOff+16:], dst)
	binary.BigEndian.PutUint16(b[ipOff+10:], frame.Fold(m.ipSum+dhi+dlo+uint32(id)))

	binary.BigEndian.PutUint16(b[tcpOff:], sport)
	binary.BigEndian.PutUint16(b[tcpOff+2:], port)
	binary.BigEndian.PutUint32(b[tcpOff+4:], seq)
	sum := m.tcpSum + dhi + dlo + uint32(sport) + uint32(port) + seq>>16 + seq&0xffff
	if m.tsOff != 0 {
		ts := uint32(mac>>16) ^ uint32(n)
		binary.BigEndian.PutUint32(b[m.tsOff:], ts)
		sum += ts>>16 + ts&0xffff
	}
	binary.BigEndian.PutUint16(b[tcpOff+16:], frame.Fold(sum))
	return len(m.tmpl)
}

func (m *tcpSyn) Classify(p *frame.Packet) (Reply, bool) {
	if p.Proto != frame.ProtoTCP {
		return Reply{}, false
	}
	mac := m.env.MAC.Sum(m.env.Src, p.Src, p.SrcPort)
	if !m.env.validPort(mac, p.DstPort) {
		return Reply{}, false
	}
	seq := uint32(mac)
	r := Reply{Port: p.SrcPort, TTL: p.TTL, Window: p.Window}
	switch {
	case p.Flags&(frame.FlagSYN|frame.FlagACK|frame.FlagRST) == frame.FlagSYN|frame.FlagACK:
		if p.Ack != seq+1 {
			return Reply{}, false
		}
		r.State = StateOpen
	case p.Flags&frame.FlagRST != 0:
		// a RST answering a SYN acknowledges it (ack = seq+1); some stacks
		// acknowledge the sequence number itself
		if p.Ack != seq+1 && p.Ack != seq {
			return Reply{}, false
		}
		r.State = StateClosed
	default:
		return Reply{}, false
	}
	return r, true
}
