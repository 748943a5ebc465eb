package sensor

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vantagehq/vantage/frame"
	"github.com/vantagehq/vantage/record"
)

// maxPayload is how many bytes of a packet's payload an event keeps.
const maxPayload = 4096

var errNotIP = errors.New("not an IP packet")

// decode turns one captured Ethernet frame into an event, or reports why
// it is not one. The event's slices are copies: the frame belongs to the
// ring and is handed back to the kernel after this returns.
func decode(b []byte, ev *record.Event) error {
	if len(b) < frame.EthLen {
		return errNotIP
	}
	et := binary.BigEndian.Uint16(b[12:])
	off := frame.EthLen
	for et == frame.EtherTypeVLAN || et == frame.EtherTypeQinQ {
		if len(b) < off+4 {
			return errNotIP
		}
		et = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	switch et {
	case frame.EtherTypeIPv4:
		var p frame.Packet
		if err := frame.ParseIPv4(b[off:], &p); err != nil {
			return err
		}
		ev.Src = addr4(p.Src)
		ev.Dst = addr4(p.Dst)
		ev.TTL, ev.IPID = p.TTL, p.IPID
		return transport(p.Proto, p.SrcPort, p.DstPort, p.Flags, p.Window, p.Seq, p.TCPOptions, p.ICMPType, p.ICMPCode, p.Payload, ev)
	case frame.EtherTypeIPv6:
		return decode6(b[off:], ev)
	}
	return errNotIP
}

func addr4(a uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}

// decode6 reads an IPv6 packet: the fixed header, a bounded walk over
// extension headers, then TCP, UDP or ICMPv6.
func decode6(b []byte, ev *record.Event) error {
	if len(b) < 40 || b[0]>>4 != 6 {
		return errNotIP
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	if 40+plen < len(b) {
		b = b[:40+plen]
	}
	next := b[6]
	ev.TTL = b[7] // hop limit
	ev.Src = netip.AddrFrom16([16]byte(b[8:24]))
	ev.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	b = b[40:]
	for i := 0; i < 8; i++ {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(b) < 8 {
				return errNotIP
			}
			n := (int(b[1]) + 1) * 8
			if n > len(b) {
				return errNotIP
			}
			next, b = b[0], b[n:]
			continue
		case 44: // fragment: only the first carries the transport header
			if len(b) < 8 || binary.BigEndian.Uint16(b[2:])&0xfff8 != 0 {
				return errors.New("IPv6 fragment")
			}
			next, b = b[0], b[8:]
			continue
		}
		break
	}
	switch next {
	case frame.ProtoTCP:
		if len(b) < frame.TCPLen {
			return errNotIP
		}
		off := int(b[12]>>4) * 4
		if off < frame.TCPLen || off > len(b) {
			return errNotIP
		}
		return transport(next, binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:]), b[13], binary.BigEndian.Uint16(b[14:]),
			binary.BigEndian.Uint32(b[4:]), b[frame.TCPLen:off], 0, 0, b[off:], ev)
	case frame.ProtoUDP:
		if len(b) < frame.UDPLen {
			return errNotIP
		}
		return transport(next, binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:]), 0, 0, 0, nil, 0, 0, b[frame.UDPLen:], ev)
	case 58: // ICMPv6
		if len(b) < 4 {
			return errNotIP
		}
		return transport(next, 0, 0, 0, 0, 0, nil, b[0], b[1], b[4:], ev)
	}
	return errors.New("IPv6: no transport header")
}

func transport(proto uint8, sport, dport uint16, flags uint8, window uint16, seq uint32, opts []byte, itype, icode uint8, payload []byte, ev *record.Event) error {
	switch proto {
	case frame.ProtoTCP:
		ev.Transport = "tcp"
		ev.SrcPort, ev.DstPort = sport, dport
		ev.TCPFlags, ev.TCPWindow, ev.TCPSeq = flags, window, seq
		ev.TCPOptions = TCPOptions(opts)
	case frame.ProtoUDP:
		ev.Transport = "udp"
		ev.SrcPort, ev.DstPort = sport, dport
	case frame.ProtoICMP, 58:
		ev.Transport = "icmp"
		ev.ICMPType, ev.ICMPCode = itype, icode
	default:
		return errors.New("transport " + strconv.Itoa(int(proto)) + " not recorded")
	}
	if len(payload) > 0 {
		ev.Payload = append([]byte(nil), payload[:min(len(payload), maxPayload)]...)
	}
	return nil
}

// TCPOptions writes a TCP option list in the canonical layout tools are
// told apart by: M<mss>, W<scale>, S (SACK permitted), T (timestamps),
// N (no-op), E (end), K<kind> for anything else, comma-separated in order.
func TCPOptions(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var sb strings.Builder
	for i := 0; i < len(b) && sb.Len() < 128; {
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		kind := b[i]
		switch kind {
		case 0:
			sb.WriteByte('E')
			return sb.String()
		case 1:
			sb.WriteByte('N')
			i++
			continue
		}
		if i+1 >= len(b) || b[i+1] < 2 || i+int(b[i+1]) > len(b) {
			sb.WriteString("K" + strconv.Itoa(int(kind)) + "!") // malformed: stop here
			return sb.String()
		}
		l := int(b[i+1])
		v := b[i+2 : i+l]
		switch {
		case kind == 2 && l == 4:
			sb.WriteString("M" + strconv.Itoa(int(binary.BigEndian.Uint16(v))))
		case kind == 3 && l == 3:
			sb.WriteString("W" + strconv.Itoa(int(v[0])))
		case kind == 4:
			sb.WriteByte('S')
		case kind == 8:
			sb.WriteByte('T')
		default:
			sb.WriteString("K" + strconv.Itoa(int(kind)))
		}
		i += l
	}
	return sb.String()
}
