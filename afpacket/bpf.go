package afpacket

import "golang.org/x/sys/unix"

// Classic BPF opcodes used by the filters below.
const (
	bpfLdH  = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
	bpfLdW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfLdB  = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
	bpfJeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfRetK = unix.BPF_RET | unix.BPF_K
)

// IPv4Filter accepts untagged Ethernet frames carrying IPv4 to dst with one
// of the given IP protocols, keeping at most snap bytes of each; everything
// else is dropped in the kernel before it reaches the ring.
func IPv4Filter(dst uint32, protocols []uint8, snap uint32) []unix.SockFilter {
	n := len(protocols)
	// layout: 0 ldh type; 1 jeq ip; 2 ld dst; 3 jeq dst; 4 ldb proto;
	// 5..5+n-1 jeq proto -> accept; 5+n drop; 6+n accept
	drop := uint8(5 + n)
	prog := []unix.SockFilter{
		{Code: bpfLdH, K: 12},
		{Code: bpfJeq, Jt: 0, Jf: drop - 2, K: unix.ETH_P_IP},
		{Code: bpfLdW, K: 14 + 16},
		{Code: bpfJeq, Jt: 0, Jf: drop - 4, K: dst},
		{Code: bpfLdB, K: 14 + 9},
	}
	for i, p := range protocols {
		pc := uint8(5 + i)
		prog = append(prog, unix.SockFilter{Code: bpfJeq, Jt: drop + 1 - pc - 1, Jf: 0, K: uint32(p)})
	}
	prog = append(prog,
		unix.SockFilter{Code: bpfRetK, K: 0},
		unix.SockFilter{Code: bpfRetK, K: snap},
	)
	return prog
}

// SYNFilter is a sensor's capture filter: every IPv4 and IPv6 packet except
// TCP segments without SYN, which belong to connections the sensor's
// responders record. Dropping them in the kernel keeps a large upload from
// flooding the ring and crowding out the SYNs of a scan. IPv4 fragments
// after the first, and IPv6 packets with extension headers, pass (their
// TCP header is not where the filter looks); so does anything else.
func SYNFilter() []unix.SockFilter {
	const (
		bpfJset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		bpfLdxB  = unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH
		bpfLdInd = unix.BPF_LD | unix.BPF_B | unix.BPF_IND
		snap     = 0xffff
	)
	return []unix.SockFilter{
		/* 0 */ {Code: bpfLdH, K: 12}, // EtherType
		/* 1 */ {Code: bpfJeq, Jt: 0, Jf: 7, K: unix.ETH_P_IP}, // no: 9
		/* 2 */ {Code: bpfLdB, K: 14 + 9}, // IPv4 protocol
		/* 3 */ {Code: bpfJeq, Jt: 0, Jf: 11, K: unix.IPPROTO_TCP}, // no: accept
		/* 4 */ {Code: bpfLdH, K: 14 + 6}, // flags, fragment offset
		/* 5 */ {Code: bpfJset, Jt: 9, Jf: 0, K: 0x1fff}, // a later fragment: accept
		/* 6 */ {Code: bpfLdxB, K: 14}, // X = IPv4 header length
		/* 7 */ {Code: bpfLdInd, K: 14 + 13}, // TCP flags
		/* 8 */ {Code: bpfJset, Jt: 6, Jf: 5, K: 0x02}, // SYN: accept, else drop
		/* 9 */ {Code: bpfJeq, Jt: 0, Jf: 5, K: unix.ETH_P_IPV6}, // neither: accept
		/* 10 */ {Code: bpfLdB, K: 14 + 6}, // IPv6 next header
		/* 11 */ {Code: bpfJeq, Jt: 0, Jf: 3, K: unix.IPPROTO_TCP}, // no: accept
		/* 12 */ {Code: bpfLdB, K: 14 + 40 + 13}, // TCP flags
		/* 13 */ {Code: bpfJset, Jt: 1, Jf: 0, K: 0x02},
		/* 14 */ {Code: bpfRetK, K: 0},
		/* 15 */ {Code: bpfRetK, K: snap},
	}
}
