package scan

import (
	"net"
	"testing"

	"github.com/vantagehq/vantage/frame"
)

func testEnv(t testing.TB, probes int) Env {
	mac, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return Env{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x0a}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		Src: 0xc000020a, MAC: mac, SrcPortFirst: 32768, SrcPortLast: 60999, Probes: probes, TTL: 64,
	}
}

func newProbe(t testing.TB, module, args string, env Env) Probe {
	m, err := Lookup(module)
	if err != nil {
		t.Fatal(err)
	}
	env.Args = args
	p, err := m.New(env)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// reply turns a probe frame into the reply a target would send: addresses
// and ports swapped, with the given TCP flags and acknowledgement.
func tcpReply(t *testing.T, probe []byte, flags uint8, ack uint32) frame.Packet {
	var p frame.Packet
	if err := frame.ParseEthernet(probe, &p); err != nil {
		t.Fatal(err)
	}
	return frame.Packet{
		Src: p.Dst, Dst: p.Src, Proto: frame.ProtoTCP, TTL: 57,
		SrcPort: p.DstPort, DstPort: p.SrcPort, Seq: 12345, Ack: ack, Flags: flags, Window: 29200,
	}
}

func TestTCPSynFrames(t *testing.T) {
	for _, profile := range []string{"", "linux", "windows", "bsd", "mss", "none"} {
		env := testEnv(t, 2)
		pr := newProbe(t, "tcp_syn", profile, env)
		buf := make([]byte, 128)
		dst := uint32(0xc6120105)
		seqs := map[uint32]bool{}
		for n := 0; n < 2; n++ {
			l := pr.Build(buf, dst, 443, n)
			var p frame.Packet
			if err := frame.ParseEthernet(buf[:l], &p); err != nil {
				t.Fatalf("%s: %v", profile, err)
			}
			if p.Src != env.Src || p.Dst != dst || p.DstPort != 443 || p.Flags != frame.FlagSYN || p.TTL != 64 || p.Ack != 0 {
				t.Fatalf("%s: probe %+v", profile, p)
			}
			if p.SrcPort < 32768 || p.SrcPort > 60999 {
				t.Fatalf("%s: source port %d outside the range", profile, p.SrcPort)
			}
			ip := buf[frame.EthLen : frame.EthLen+frame.IPv4Len]
			if frame.Checksum(ip, 0) != 0 {
				t.Fatalf("%s: IP checksum wrong", profile)
			}
			seg := buf[frame.EthLen+frame.IPv4Len : l]
			if frame.Checksum(seg, frame.PseudoSum(p.Src, p.Dst, frame.ProtoTCP, len(seg))) != 0 {
				t.Fatalf("%s: TCP checksum wrong", profile)
			}
			if string(buf[0:6]) != string(env.DstMAC) || string(buf[6:12]) != string(env.SrcMAC) {
				t.Fatalf("%s: MACs wrong", profile)
			}
			seqs[p.Seq] = true

			// the replies a target could send
			for _, tt := range []struct {
				name  string
				flags uint8
				ack   uint32
				want  State
				ok    bool
			}{
				{"syn-ack", frame.FlagSYN | frame.FlagACK, p.Seq + 1, StateOpen, true},
				{"rst-ack", frame.FlagRST | frame.FlagACK, p.Seq + 1, StateClosed, true},
				{"rst acking the seq itself", frame.FlagRST, p.Seq, StateClosed, true},
				{"syn-ack with a wrong ack", frame.FlagSYN | frame.FlagACK, p.Seq + 2, 0, false},
				{"rst with a wrong ack", frame.FlagRST | frame.FlagACK, p.Seq + 7, 0, false},
				{"bare ack", frame.FlagACK, p.Seq + 1, 0, false},
				{"syn-ack-rst", frame.FlagSYN | frame.FlagACK | frame.FlagRST, p.Seq + 1, StateClosed, true},
			} {
				r := tcpReply(t, buf[:l], tt.flags, tt.ack)
				got, ok := pr.Classify(&r)
				if ok != tt.ok || ok && (got.State != tt.want || got.Port != 443 || got.TTL != 57 || got.Window != 29200) {
					t.Errorf("%s probe %d %s: got %+v %v", profile, n, tt.name, got, ok)
				}
			}
			// a valid-looking reply from another address, or to another port
			r := tcpReply(t, buf[:l], frame.FlagSYN|frame.FlagACK, p.Seq+1)
			r.Src++
			if _, ok := pr.Classify(&r); ok {
				t.Errorf("%s: reply from another address accepted", profile)
			}
			r = tcpReply(t, buf[:l], frame.FlagSYN|frame.FlagACK, p.Seq+1)
			r.DstPort++
			r.DstPort++
			if _, ok := pr.Classify(&r); ok && env.Probes < 3 {
				t.Errorf("%s: reply to another source port accepted", profile)
			}
		}
		if len(seqs) != 1 {
			t.Errorf("%s: probes to one target carry different sequence numbers", profile)
		}
	}
	m, _ := Lookup("tcp_syn")
	if _, err := m.New(Env{Args: "nope"}); err == nil {
		t.Error("unknown option profile accepted")
	}
}

func TestSourcePortsValidate(t *testing.T) {
	for _, probes := range []int{1, 3} {
		env := testEnv(t, probes)
		env.SrcPortFirst, env.SrcPortLast = 40000, 40009
		for mac := uint64(0); mac < 50; mac++ {
			h := mac * 0x9e3779b97f4a7c15
			valid := map[uint16]bool{}
			for n := 0; n < probes; n++ {
				p := env.srcPort(h, n)
				if !env.validPort(h, p) {
					t.Fatalf("probes=%d: source port %d of probe %d does not validate", probes, p, n)
				}
				valid[p] = true
			}
			if len(valid) != probes {
				t.Fatalf("probes=%d: %d distinct source ports", probes, len(valid))
			}
			for p := uint16(39990); p < 40020; p++ {
				if env.validPort(h, p) != valid[p] {
					t.Fatalf("probes=%d: port %d validates = %v", probes, p, !valid[p])
				}
			}
		}
	}
}

func TestICMPEchoFrames(t *testing.T) {
	env := testEnv(t, 1)
	pr := newProbe(t, "icmp_echo", "", env)
	buf := make([]byte, 128)
	dst := uint32(0xc6120107)
	l := pr.Build(buf, dst, 0, 0)
	var p frame.Packet
	if err := frame.ParseEthernet(buf[:l], &p); err != nil {
		t.Fatal(err)
	}
	if p.Proto != frame.ProtoICMP || p.ICMPType != frame.ICMPEchoRequest || p.Dst != dst || len(p.Payload) != icmpPayload {
		t.Fatalf("probe %+v", p)
	}
	if frame.Checksum(buf[frame.EthLen:frame.EthLen+frame.IPv4Len], 0) != 0 || frame.Checksum(buf[frame.EthLen+frame.IPv4Len:l], 0) != 0 {
		t.Fatal("checksums wrong")
	}
	reply := frame.Packet{Src: dst, Dst: p.Src, Proto: frame.ProtoICMP, TTL: 60, ICMPType: frame.ICMPEchoReply,
		ICMPID: p.ICMPID, ICMPSeq: p.ICMPSeq, Payload: append([]byte{}, p.Payload...)}
	if r, ok := pr.Classify(&reply); !ok || r.State != StateUp || r.TTL != 60 {
		t.Fatalf("valid echo reply: %+v %v", r, ok)
	}
	bad := reply
	bad.Payload = append([]byte{}, p.Payload...)
	bad.Payload[3] ^= 1
	if _, ok := pr.Classify(&bad); ok {
		t.Error("echo reply with a changed payload accepted")
	}
	bad = reply
	bad.Src++
	if _, ok := pr.Classify(&bad); ok {
		t.Error("echo reply from another address accepted")
	}
	bad = reply
	bad.ICMPType = frame.ICMPEchoRequest
	if _, ok := pr.Classify(&bad); ok {
		t.Error("echo request accepted as a reply")
	}
}

// FuzzClassify feeds arbitrary frames to the receive path: nothing panics,
// and nothing that was not made from a probe validates.
func FuzzClassify(f *testing.F) {
	env := testEnv(f, 1)
	syn := newProbe(f, "tcp_syn", "", env)
	icmp := newProbe(f, "icmp_echo", "", env)
	buf := make([]byte, 128)
	f.Add(buf[:syn.Build(buf, 0xc6120001, 80, 0)])
	f.Add(buf[:icmp.Build(buf, 0xc6120001, 0, 0)])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p frame.Packet
		if frame.ParseEthernet(b, &p) != nil {
			return
		}
		for _, pr := range []Probe{syn, icmp} {
			if r, ok := pr.Classify(&p); ok {
				// only possible with a correct 32-bit MAC: report it
				t.Fatalf("random frame validated: %+v (%x)", r, b)
			}
		}
	})
}

func BenchmarkBuildSYN(b *testing.B) {
	env := testEnv(b, 1)
	pr := newProbe(b, "tcp_syn", "", env)
	buf := make([]byte, 128)
	for i := 0; i < b.N; i++ {
		pr.Build(buf, uint32(i), 80, 0)
	}
}
