// Package frame builds and parses the raw Ethernet frames that the scanner
// sends and receives: Ethernet (with 802.1Q tags), ARP, IPv4, TCP, UDP and
// ICMP. Parsing is bounds-checked and allocation-free: a Packet holds slices
// into the frame it came from.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// EtherType values.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100
	EtherTypeQinQ = 0x88a8
	EtherTypeIPv6 = 0x86dd
)

// IP protocol numbers.
const (
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
)

// TCP flags.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
	FlagURG = 0x20
)

// ICMP types used by the scanner.
const (
	ICMPEchoReply   = 0
	ICMPUnreachable = 3
	ICMPEchoRequest = 8
	ICMPTimeExceed  = 11
)

// Header lengths.
const (
	EthLen  = 14
	IPv4Len = 20
	TCPLen  = 20
	UDPLen  = 8
	ICMPLen = 8
)

var (
	errShort    = errors.New("truncated frame")
	errNotIPv4  = errors.New("not IPv4")
	errBadIHL   = errors.New("bad IPv4 header length")
	errFragment = errors.New("IPv4 fragment")
)

// Packet is the decoded view of one IPv4 packet. Slices point into the frame.
type Packet struct {
	// IPv4
	Src, Dst uint32
	TTL      uint8
	Proto    uint8
	IPID     uint16
	TOS      uint8
	IPLen    uint16 // total length from the header
	// TCP / UDP
	SrcPort, DstPort uint16
	// TCP
	Seq, Ack   uint32
	Flags      uint8
	Window     uint16
	TCPOptions []byte
	// ICMP
	ICMPType, ICMPCode uint8
	ICMPID, ICMPSeq    uint16
	// Payload after the transport header (for ICMP errors: the quoted packet).
	Payload []byte
}

// ParseEthernet decodes an Ethernet frame carrying IPv4, skipping VLAN tags.
func ParseEthernet(b []byte, p *Packet) error {
	if len(b) < EthLen {
		return errShort
	}
	et := binary.BigEndian.Uint16(b[12:])
	off := EthLen
	for et == EtherTypeVLAN || et == EtherTypeQinQ {
		if len(b) < off+4 {
			return errShort
		}
		et = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	if et != EtherTypeIPv4 {
		return errNotIPv4
	}
	return ParseIPv4(b[off:], p)
}

// ParseIPv4 decodes an IPv4 packet and its TCP, UDP or ICMP header.
// Fragments other than the first are rejected (their transport header is
// elsewhere); trailing Ethernet padding beyond the IP total length is ignored.
func ParseIPv4(b []byte, p *Packet) error {
	if len(b) < IPv4Len {
		return errShort
	}
	if b[0]>>4 != 4 {
		return errNotIPv4
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < IPv4Len || total < ihl {
		return errBadIHL
	}
	if total > len(b) {
		return errShort
	}
	b = b[:total]
	if binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
		return errFragment
	}
	p.TOS = b[1]
	p.IPLen = uint16(total)
	p.IPID = binary.BigEndian.Uint16(b[4:])
	p.TTL = b[8]
	p.Proto = b[9]
	p.Src = binary.BigEndian.Uint32(b[12:])
	p.Dst = binary.BigEndian.Uint32(b[16:])
	return parseTransport(b[ihl:], p)
}

func parseTransport(b []byte, p *Packet) error {
	switch p.Proto {
	case ProtoTCP:
		if len(b) < TCPLen {
			return errShort
		}
		off := int(b[12]>>4) * 4
		if off < TCPLen || off > len(b) {
			return fmt.Errorf("bad TCP data offset %d", off)
		}
		p.SrcPort = binary.BigEndian.Uint16(b[0:])
		p.DstPort = binary.BigEndian.Uint16(b[2:])
		p.Seq = binary.BigEndian.Uint32(b[4:])
		p.Ack = binary.BigEndian.Uint32(b[8:])
		p.Flags = b[13]
		p.Window = binary.BigEndian.Uint16(b[14:])
		p.TCPOptions = b[TCPLen:off]
		p.Payload = b[off:]
	case ProtoUDP:
		if len(b) < UDPLen {
			return errShort
		}
		p.SrcPort = binary.BigEndian.Uint16(b[0:])
		p.DstPort = binary.BigEndian.Uint16(b[2:])
		p.Payload = b[UDPLen:]
	case ProtoICMP:
		if len(b) < ICMPLen {
			return errShort
		}
		p.ICMPType = b[0]
		p.ICMPCode = b[1]
		p.ICMPID = binary.BigEndian.Uint16(b[4:])
		p.ICMPSeq = binary.BigEndian.Uint16(b[6:])
		p.Payload = b[ICMPLen:]
	default:
		p.Payload = b
	}
	return nil
}

// PutEthernet writes an Ethernet header and returns its length.
func PutEthernet(b []byte, dst, src net.HardwareAddr, etherType uint16) int {
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:], etherType)
	return EthLen
}

// PutIPv4 writes a 20-byte IPv4 header with its checksum; payloadLen is the
// length of what follows the header. The Don't Fragment bit is set.
func PutIPv4(b []byte, src, dst uint32, proto, ttl uint8, id uint16, payloadLen int) int {
	b[0] = 0x45
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:], uint16(IPv4Len+payloadLen))
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], 0x4000)
	b[8] = ttl
	b[9] = proto
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint32(b[12:], src)
	binary.BigEndian.PutUint32(b[16:], dst)
	binary.BigEndian.PutUint16(b[10:], Checksum(b[:IPv4Len], 0))
	return IPv4Len
}

// Checksum is the Internet checksum (RFC 1071) of b added to a partial sum.
func Checksum(b []byte, sum uint32) uint16 {
	return Fold(Sum(b, sum))
}

// Sum adds the 16-bit big-endian words of b to a running ones'-complement
// sum (an odd final byte is padded with zero).
func Sum(b []byte, sum uint32) uint32 {
	s := uint64(sum)
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>32 != 0 {
		s = s&0xffffffff + s>>32
	}
	return uint32(s)
}

// Fold folds a running sum to 16 bits and complements it.
func Fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// PseudoSum is the partial checksum of the IPv4 pseudo-header that TCP and
// UDP checksums cover.
func PseudoSum(src, dst uint32, proto uint8, length int) uint32 {
	return src>>16 + src&0xffff + dst>>16 + dst&0xffff + uint32(proto) + uint32(length)
}
