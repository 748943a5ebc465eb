package afpacket

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RXConfig sizes an RX ring.
type RXConfig struct {
	Ifindex   int               // 0: every interface
	Protocol  uint16            // EtherType to receive (ETH_P_IP by default; ETH_P_ALL also sees outgoing frames)
	BlockSize int               // bytes per block, a multiple of the page size (default 1 MiB)
	Blocks    int               // default 8
	Timeout   time.Duration     // a partly filled block is handed over after this long (default 10 ms)
	Filter    []unix.SockFilter // classic BPF program run by the kernel; nil accepts everything
}

// RX receives frames through a TPACKET_V3 RX ring. Read and Close may be
// called from one goroutine only; Stats from any.
type RX struct {
	fd        int
	file      *os.File        // fd registered with the Go runtime's poller
	conn      syscall.RawConn // waits for the kernel to hand over a block
	ring      []byte
	blockSize int
	blocks    int
	cur       int

	packets atomic.Uint64 // counted by the kernel (before drops)
	drops   atomic.Uint64
	freezes atomic.Uint64
}

// NewRX opens an RX ring.
func NewRX(c RXConfig) (*RX, error) {
	if c.Protocol == 0 {
		c.Protocol = unix.ETH_P_IP
	}
	if c.BlockSize <= 0 {
		c.BlockSize = 1 << 20
	}
	if c.Blocks <= 0 {
		c.Blocks = 8
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Millisecond
	}
	fd, err := socket(c.Protocol)
	if err != nil {
		return nil, err
	}
	r := &RX{fd: fd, blockSize: c.BlockSize, blocks: c.Blocks}
	fail := func(what string, err error) (*RX, error) {
		r.Close()
		return nil, fmt.Errorf("afpacket: RX ring on interface %d: %s: %w", c.Ifindex, what, err)
	}
	// The filter goes on before the socket is bound, so no unfiltered
	// packet slips in between.
	if c.Filter != nil {
		if err := attachFilter(fd, c.Filter); err != nil {
			return fail("attach BPF filter", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fail("set TPACKET_V3", err)
	}
	const frameSize = 2048 // V3 packs variable-sized packets; the frame size only has to be valid
	req := unix.TpacketReq3{
		Block_size: uint32(c.BlockSize), Block_nr: uint32(c.Blocks),
		Frame_size: frameSize, Frame_nr: uint32(c.BlockSize / frameSize * c.Blocks),
		Retire_blk_tov: uint32(max(c.Timeout.Milliseconds(), 1)),
	}
	if err := setsockoptRaw(fd, unix.PACKET_RX_RING, unsafe.Pointer(&req), unsafe.Sizeof(req)); err != nil {
		return fail("set PACKET_RX_RING", err)
	}
	r.ring, err = unix.Mmap(fd, 0, c.BlockSize*c.Blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail("mmap", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(c.Protocol), Ifindex: c.Ifindex}); err != nil {
		return fail("bind", err)
	}
	// Waiting goes through the runtime's poller (epoll) rather than a
	// blocking poll(2): a goroutine parked there holds no P, so the
	// scheduler's monitor does not keep taking Ps back from a thread stuck
	// in a syscall, which otherwise wakes it every 20 µs for the whole scan.
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail("set non-blocking", err)
	}
	r.file = os.NewFile(uintptr(fd), "afpacket-rx")
	if r.conn, err = r.file.SyscallConn(); err != nil {
		return fail("register with the poller", err)
	}
	return r, nil
}

func attachFilter(fd int, prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > 4096 {
		return fmt.Errorf("BPF program of %d instructions", len(prog))
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
}

func (r *RX) block(i int) *unix.TpacketBlockDesc {
	return (*unix.TpacketBlockDesc)(unsafe.Pointer(&r.ring[i*r.blockSize]))
}

// Packet is one received frame. Data points into the ring and is valid only
// during the callback that receives it.
type Packet struct {
	Data    []byte
	Len     int // length on the wire (Data may be shorter: snap length)
	Time    time.Time
	VLAN    uint16 // VLAN ID the driver stripped, if VLANOK
	VLANOK  bool
	Ifindex int
}

// Read waits up to timeout for a block of packets and calls fn for each
// packet in it. It returns the number of packets delivered; 0 with a nil
// error means the wait timed out.
func (r *RX) Read(timeout time.Duration, fn func(*Packet)) (int, error) {
	b := r.block(r.cur)
	hv1 := (*unix.TpacketHdrV1)(unsafe.Pointer(&b.Hdr))
	ready := func() bool { return atomic.LoadUint32(&hv1.Block_status)&unix.TP_STATUS_USER != 0 }
	if !ready() {
		if timeout <= 0 {
			return 0, nil
		}
		r.file.SetReadDeadline(time.Now().Add(timeout))
		err := r.conn.Read(func(uintptr) bool { return ready() })
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("afpacket: wait for packets: %w", err)
		}
	}
	base := r.cur * r.blockSize
	n := int(hv1.Num_pkts)
	off := int(hv1.Offset_to_first_pkt)
	var p Packet
	for i := 0; i < n; i++ {
		if off <= 0 || off+unix.SizeofTpacket3Hdr > r.blockSize {
			break // a corrupt offset would be a kernel bug; do not read past the block
		}
		h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&r.ring[base+off]))
		start := off + int(h.Mac)
		end := start + int(h.Snaplen)
		if end <= r.blockSize {
			p.Data = r.ring[base+start : base+end]
			p.Len = int(h.Len)
			p.Time = time.Unix(int64(h.Sec), int64(h.Nsec))
			p.VLANOK = h.Status&unix.TP_STATUS_VLAN_VALID != 0
			p.VLAN = uint16(h.Hv1.Vlan_tci & 0x0fff)
			fn(&p)
		}
		if h.Next_offset == 0 {
			break
		}
		off += int(h.Next_offset)
	}
	// hand the block back to the kernel
	atomic.StoreUint32(&hv1.Block_status, unix.TP_STATUS_KERNEL)
	r.cur = (r.cur + 1) % r.blocks
	return n, nil
}

// Stats returns the packets the kernel accepted for this socket and those it
// dropped because the ring was full, since the socket was opened.
func (r *RX) Stats() (packets, drops uint64, err error) {
	var st unix.TpacketStatsV3
	size := uint32(unsafe.Sizeof(st))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(r.fd), unix.SOL_PACKET, unix.PACKET_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&size)), 0)
	if e != 0 {
		return r.packets.Load(), r.drops.Load(), fmt.Errorf("afpacket: statistics: %w", e)
	}
	// the kernel resets its counters on every read; keep the running totals
	return r.packets.Add(uint64(st.Packets)), r.drops.Add(uint64(st.Drops)), nil
}

// Close releases the ring and the socket.
func (r *RX) Close() error {
	if r.ring != nil {
		unix.Munmap(r.ring)
		r.ring = nil
	}
	if r.file != nil {
		r.file.Close() // closes fd
		r.file, r.fd = nil, -1
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
	return nil
}
