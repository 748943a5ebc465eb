package frame

import (
	"encoding/binary"
	"encoding/hex"
	"net"
	"testing"
)

func TestChecksumKnownHeader(t *testing.T) {
	// an IPv4 header captured from the wire, checksum b861
	h, _ := hex.DecodeString("45000073000040004011b861c0a80001c0a800c7")
	if got := Checksum(h, 0); got != 0 {
		t.Fatalf("checksum over a valid header = %#04x, want 0", got)
	}
	h[10], h[11] = 0, 0
	if got := Checksum(h, 0); got != 0xb861 {
		t.Fatalf("checksum = %#04x, want 0xb861", got)
	}
	// odd length and a running sum
	if Checksum([]byte{0x01}, 0) != ^uint16(0x0100) {
		t.Fatal("odd byte not padded")
	}
	if Fold(Sum([]byte{0xff, 0xff, 0xff, 0xff}, 0xffff)) != 0 {
		t.Fatal("carry not folded")
	}
}

func TestBuildAndParseTCP(t *testing.T) {
	buf := make([]byte, 128)
	dst := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	src := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	n := PutEthernet(buf, dst, src, EtherTypeIPv4)
	opts := []byte{2, 4, 5, 0xb4, 1, 1, 4, 2}
	tcp := make([]byte, TCPLen+len(opts))
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 443)
	binary.BigEndian.PutUint32(tcp[4:], 0xdeadbeef)
	tcp[12] = byte((TCPLen + len(opts)) / 4 << 4)
	tcp[13] = FlagSYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	copy(tcp[TCPLen:], opts)
	srcIP, dstIP := uint32(0xc000020a), uint32(0xc6120001)
	binary.BigEndian.PutUint16(tcp[16:], Checksum(tcp, PseudoSum(srcIP, dstIP, ProtoTCP, len(tcp))))
	n += PutIPv4(buf[n:], srcIP, dstIP, ProtoTCP, 64, 0x1234, len(tcp))
	n += copy(buf[n:], tcp)
	buf = append(buf[:n], 0, 0, 0, 0) // Ethernet padding after the IP packet

	var p Packet
	if err := ParseEthernet(buf, &p); err != nil {
		t.Fatal(err)
	}
	if p.Src != srcIP || p.Dst != dstIP || p.TTL != 64 || p.IPID != 0x1234 || p.Proto != ProtoTCP ||
		p.SrcPort != 40000 || p.DstPort != 443 || p.Seq != 0xdeadbeef || p.Flags != FlagSYN ||
		p.Window != 64240 || len(p.TCPOptions) != len(opts) || len(p.Payload) != 0 {
		t.Fatalf("parsed %+v", p)
	}
	// the TCP checksum verifies over the pseudo-header
	seg := buf[EthLen+IPv4Len : n]
	if Checksum(seg, PseudoSum(srcIP, dstIP, ProtoTCP, len(seg))) != 0 {
		t.Fatal("TCP checksum does not verify")
	}
	// an 802.1Q tag in front
	tagged := append(append(append([]byte{}, buf[:12]...), 0x81, 0x00, 0x00, 0x05), buf[12:]...)
	var q Packet
	if err := ParseEthernet(tagged, &q); err != nil || q.Seq != p.Seq {
		t.Fatalf("tagged frame: %v %+v", err, q)
	}
}

func TestParseErrors(t *testing.T) {
	ip := func(mod func(b []byte)) []byte {
		b := make([]byte, 40)
		PutIPv4(b, 1, 2, ProtoTCP, 64, 0, 20)
		b[12+20] = 5 << 4
		mod(b)
		return b
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"short", []byte{0x45, 0}},
		{"version 6", ip(func(b []byte) { b[0] = 0x65 })},
		{"ihl too small", ip(func(b []byte) { b[0] = 0x44 })},
		{"total length beyond data", ip(func(b []byte) { b[2], b[3] = 0, 99 })},
		{"fragment", ip(func(b []byte) { b[6], b[7] = 0x20, 0x10 })},
		{"tcp offset beyond data", ip(func(b []byte) { b[32] = 15 << 4 })},
		{"tcp offset too small", ip(func(b []byte) { b[32] = 1 << 4 })},
	}
	for _, tt := range tests {
		var p Packet
		if err := ParseIPv4(tt.b, &p); err == nil {
			t.Errorf("%s: parsed without error", tt.name)
		}
	}
}

func FuzzParseEthernet(f *testing.F) {
	b := make([]byte, 14+20+20)
	PutEthernet(b, net.HardwareAddr{1, 2, 3, 4, 5, 6}, net.HardwareAddr{1, 2, 3, 4, 5, 6}, EtherTypeIPv4)
	PutIPv4(b[14:], 1, 2, ProtoTCP, 64, 0, 20)
	b[14+20+12] = 5 << 4
	f.Add(b)
	icmp := append([]byte{}, b...)
	icmp[14+9] = ProtoICMP
	f.Add(icmp)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0, 0, 1, 0x08, 0x00, 0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		if err := ParseEthernet(b, &p); err != nil {
			return
		}
		if int(p.IPLen) > len(b) {
			t.Fatalf("IP length %d beyond frame of %d", p.IPLen, len(b))
		}
		if len(p.Payload) > len(b) || len(p.TCPOptions) > 40 {
			t.Fatalf("slices beyond bounds: payload %d options %d", len(p.Payload), len(p.TCPOptions))
		}
	})
}
