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
