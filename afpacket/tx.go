// Package afpacket sends and receives raw Ethernet frames on Linux AF_PACKET
// sockets through memory-mapped rings: a TX ring (TPACKET_V2) that sends a
// whole batch of frames with one syscall, and an RX ring (TPACKET_V3) that
// delivers packets in blocks without a syscall per packet. Reading one packet
// per syscall loses packets under load; so does a receive socket bound to
// ETH_P_ALL, which also sees every frame this host sends.
package afpacket

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrPermission is returned (wrapped) when the process may not open raw
// sockets (it lacks CAP_NET_RAW).
var ErrPermission = errors.New("raw sockets not permitted (need root or CAP_NET_RAW)")

// TXConfig sizes a TX ring.
type TXConfig struct {
	Ifindex     int
	MaxFrame    int  // largest frame that will be sent (bytes, Ethernet header included)
	Frames      int  // ring slots; rounded up to fill whole blocks (default 4096)
	QdiscBypass bool // hand frames straight to the driver, skipping the qdisc layer
}

// vnetHdrLen is the size of struct virtio_net_hdr. With PACKET_VNET_HDR
// each ring frame starts with one, and its hdr_len field tells the kernel
// how many bytes to copy into the packet's linear buffer. Set to the whole
// frame, it stops the kernel from attaching the rest as zero-copy page
// fragments, which every local receiver (a veth peer, a bridge, a tap)
// would otherwise copy out again and pull back into a linear header: for
// frames of a hundred bytes the plain copy is much cheaper.
const vnetHdrLen = 10

// txData is where frame data starts in a TPACKET_V2 TX slot: the kernel
// expects it right after the aligned header (TPACKET2_HDRLEN minus the
// sockaddr_ll it reserves for RX).
const txData = (unix.SizeofTpacket2Hdr + unix.TPACKET_ALIGNMENT - 1) &^ (unix.TPACKET_ALIGNMENT - 1)

// TX sends frames through a TPACKET_V2 TX ring. It is not safe for
// concurrent use: give each sending goroutine its own TX.
type TX struct {
	fd        int
	ring      []byte
	frameSize int
	frames    int
	next      int // next slot to fill
	queued    int // slots filled since the last Flush
	dest      unix.RawSockaddrLinklayer

	sent     atomic.Uint64
	failures atomic.Uint64
}

// NewTX opens a TX ring on an interface.
func NewTX(c TXConfig) (*TX, error) {
	if c.MaxFrame <= 0 || c.MaxFrame > 65535 {
		return nil, fmt.Errorf("afpacket: bad frame size %d", c.MaxFrame)
	}
	if c.Frames <= 0 {
		c.Frames = 4096
	}
	frameSize := 128
	for frameSize < txData+vnetHdrLen+c.MaxFrame {
		frameSize *= 2
	}
	blockSize := max(os.Getpagesize(), frameSize)
	perBlock := blockSize / frameSize
	blocks := (c.Frames + perBlock - 1) / perBlock

	fd, err := socket(0) // protocol 0: this socket receives nothing
	if err != nil {
		return nil, err
	}
	t := &TX{fd: fd, frameSize: frameSize, frames: blocks * perBlock}
	t.dest = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(unix.ETH_P_IP), Ifindex: int32(c.Ifindex)}
	fail := func(what string, err error) (*TX, error) {
		t.Close()
		return nil, fmt.Errorf("afpacket: TX ring on interface %d: %s: %w", c.Ifindex, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fail("set TPACKET_V2", err)
	}
	if c.QdiscBypass {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fail("set PACKET_QDISC_BYPASS", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fail("set PACKET_VNET_HDR", err)
	}
	req := unix.TpacketReq{
		Block_size: uint32(blockSize), Block_nr: uint32(blocks),
		Frame_size: uint32(frameSize), Frame_nr: uint32(t.frames),
	}
	if err := setsockoptRaw(fd, unix.PACKET_TX_RING, unsafe.Pointer(&req), unsafe.Sizeof(req)); err != nil {
		return fail("set PACKET_TX_RING", err)
	}
	t.ring, err = unix.Mmap(fd, 0, blockSize*blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail("mmap", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: c.Ifindex}); err != nil {
		return fail("bind", err)
	}
	return t, nil
}

func (t *TX) hdr(slot int) *unix.Tpacket2Hdr {
	return (*unix.Tpacket2Hdr)(unsafe.Pointer(&t.ring[slot*t.frameSize]))
}

// Slots is the number of frames the ring holds: the largest useful batch.
func (t *TX) Slots() int { return t.frames }

// Next returns the buffer of the next free slot, waiting for the kernel to
// release it if the ring is full. Write a frame into it and call Commit.
func (t *TX) Next() ([]byte, error) {
	h := t.hdr(t.next)
	for {
		switch st := atomic.LoadUint32(&h.Status); st {
		case unix.TP_STATUS_AVAILABLE:
			off := t.next*t.frameSize + txData + vnetHdrLen
			return t.ring[off : off+t.frameSize-txData-vnetHdrLen], nil
		case unix.TP_STATUS_WRONG_FORMAT:
			// the kernel refused this frame: count it and reuse the slot
			t.failures.Add(1)
			atomic.StoreUint32(&h.Status, unix.TP_STATUS_AVAILABLE)
		default:
			// still queued or being sent: flush and wait for the kernel
			if err := t.kick(0); err != nil {
				return nil, err
			}
		}
	}
}

// Commit queues the frame of n bytes written into the buffer from Next.
func (t *TX) Commit(n int) {
	h := t.hdr(t.next)
	h.Len = uint32(vnetHdrLen + n)
	// virtio_net_hdr: no offloads (flags 0, GSO none), hdr_len = the frame
	vh := t.ring[t.next*t.frameSize+txData:]
	clear(vh[:vnetHdrLen])
	vh[2], vh[3] = byte(n), byte(n>>8) // little-endian on every Linux that matters: virtio is LE
	atomic.StoreUint32(&h.Status, unix.TP_STATUS_SEND_REQUEST)
	t.next++
	if t.next == t.frames {
		t.next = 0
	}
	t.queued++
}

// Flush asks the kernel to send every queued frame (one syscall).
func (t *TX) Flush() error {
	if t.queued == 0 {
		return nil
	}
	return t.kick(unix.MSG_DONTWAIT)
}

func (t *TX) kick(flags int) error {
	n := t.queued
	t.queued = 0
	for {
		// A kick with MSG_DONTWAIT returns once the queued frames are
		// handed to the driver: a raw syscall spares the scheduler the
		// work of handing this thread's P away. A blocking kick waits for
		// the device and goes through the scheduler.
		call := unix.Syscall6
		if flags&unix.MSG_DONTWAIT != 0 {
			call = unix.RawSyscall6
		}
		_, _, e := call(unix.SYS_SENDTO, uintptr(t.fd), 0, 0, uintptr(flags),
			uintptr(unsafe.Pointer(&t.dest)), unsafe.Sizeof(t.dest))
		var err error
		if e != 0 {
			err = e
		}
		switch {
		case err == nil:
			t.sent.Add(uint64(n))
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ENOBUFS):
			// the device queue is full; the frames stay queued in the ring
			// and go out with the next kick
			t.sent.Add(uint64(n))
			return nil
		default:
			t.failures.Add(uint64(n))
			return fmt.Errorf("afpacket: send: %w", err)
		}
	}
}

// Sent is the number of frames handed to the kernel.
func (t *TX) Sent() uint64 { return t.sent.Load() }

// Failures is the number of frames the kernel refused.
func (t *TX) Failures() uint64 { return t.failures.Load() }

// Close flushes what is queued, waits for the kernel to finish with the ring
// and releases it.
func (t *TX) Close() error {
	var err error
	if t.ring != nil {
		if t.queued > 0 {
			err = t.kick(0)
		}
		unix.Munmap(t.ring)
		t.ring = nil
	}
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
	return err
}

// CheckPermission reports ErrPermission (wrapped) when this process may not
// open AF_PACKET sockets.
func CheckPermission() error {
	fd, err := socket(0)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

func socket(proto uint16) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(proto)))
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return -1, fmt.Errorf("afpacket: %w", ErrPermission)
		}
		return -1, fmt.Errorf("afpacket: socket: %w", err)
	}
	return fd, nil
}

func setsockoptRaw(fd, opt int, p unsafe.Pointer, size uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_PACKET, uintptr(opt), uintptr(p), size, 0)
	if e != 0 {
		return e
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
