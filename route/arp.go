package route

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// arpInterval is how often ResolveMAC repeats its ARP request.
const arpInterval = 250 * time.Millisecond

// ResolveMAC returns the MAC of ip, a next hop on p's interface (see
// Path.NextHop): from the kernel's neighbour table, else by sending ARP
// requests itself on an AF_PACKET socket bound to the interface, every 250 ms
// until a reply whose sender is ip arrives or ctx is done. Needs
// CAP_NET_RAW for the ARP part.
func ResolveMAC(ctx context.Context, p Path, ip netip.Addr) (net.HardwareAddr, error) {
	ip, err := ipv4(ip)
	if err != nil {
		return nil, fmt.Errorf("resolve MAC of %s: %w", ip, err)
	}
	mac, err := Neighbour(p.Index, ip)
	if err != nil || mac != nil {
		return mac, err
	}
	mac, err = arpResolve(ctx, p, ip)
	if err != nil {
		return nil, fmt.Errorf("resolve MAC of %s on %s: %w", ip, p.Interface, err)
	}
	return mac, nil
}

// arpResolve asks for ip's MAC with ARP, ignoring the neighbour table.
func arpResolve(ctx context.Context, p Path, ip netip.Addr) (net.HardwareAddr, error) {
	if len(p.SrcMAC) != 6 {
		return nil, fmt.Errorf("interface has no Ethernet address (%q) to send ARP from", p.SrcMAC)
	}
	// Protocol 0 receives nothing until bind names ETH_P_ARP and the
	// interface, so no ARP frames from other interfaces slip in between.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	// A non-blocking fd joins the runtime poller, which gives us read deadlines.
	f := os.NewFile(uintptr(fd), "arp")
	defer f.Close()
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: p.Index}); err != nil {
		return nil, fmt.Errorf("bind packet socket: %w", err)
	}
	// Cut a pending read short when ctx ends: any deadline in the past will do.
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	req := arpRequest(p.SrcMAC, p.SrcIP, ip)
	buf := make([]byte, 1600)
	for sent := 0; ; {
		// Set the deadline before checking ctx: if ctx ends after the check,
		// the AfterFunc's past deadline overrides this one.
		if err := f.SetReadDeadline(time.Now().Add(arpInterval)); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("no ARP reply after %d requests: %w (set the next hop's MAC with --gateway-mac)", sent, err)
		}
		// A bound packet socket sends with write(2) on its interface.
		if _, err := f.Write(req); err != nil {
			return nil, fmt.Errorf("send ARP request: %w", err)
		}
		sent++
		for {
			n, err := f.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break // time to ask again, or ctx is done
			}
			if err != nil {
				return nil, fmt.Errorf("read ARP: %w", err)
			}
			if mac, ok := parseARPReply(buf[:n], ip); ok {
				return mac, nil
			}
		}
	}
}

// Frame layout: Ethernet header, then the ARP packet for IPv4 over Ethernet.
const (
	ethHeaderLen = 14
	arpLen       = 28
	minFrameLen  = 60 // without FCS; raw sockets must pad short frames themselves
)

// arpRequest builds a broadcast "who has target? tell src" frame. An invalid
// src sends 0.0.0.0 (an RFC 5227 probe), which is still answered.
func arpRequest(srcMAC net.HardwareAddr, src, target netip.Addr) []byte {
	b := make([]byte, minFrameLen)
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], unix.ETH_P_ARP)
	a := b[ethHeaderLen:]
	binary.BigEndian.PutUint16(a[0:2], unix.ARPHRD_ETHER)
	binary.BigEndian.PutUint16(a[2:4], unix.ETH_P_IP)
	a[4], a[5] = 6, 4 // hardware and protocol address lengths
	binary.BigEndian.PutUint16(a[6:8], 1)
	copy(a[8:14], srcMAC)
	if src.Is4() {
		s := src.As4()
		copy(a[14:18], s[:])
	}
	// a[18:24], the target MAC, stays zero.
	t := target.As4()
	copy(a[24:28], t[:])
	return b
}

// parseARPReply returns the sender MAC of an Ethernet frame that is an IPv4
// ARP reply from ip.
func parseARPReply(frame []byte, ip netip.Addr) (net.HardwareAddr, bool) {
	if len(frame) < ethHeaderLen+arpLen || binary.BigEndian.Uint16(frame[12:14]) != unix.ETH_P_ARP {
		return nil, false
	}
	a := frame[ethHeaderLen:]
	if binary.BigEndian.Uint16(a[0:2]) != unix.ARPHRD_ETHER ||
		binary.BigEndian.Uint16(a[2:4]) != unix.ETH_P_IP ||
		a[4] != 6 || a[5] != 4 ||
		binary.BigEndian.Uint16(a[6:8]) != 2 { // ARP reply
		return nil, false
	}
	if netip.AddrFrom4([4]byte(a[14:18])) != ip {
		return nil, false
	}
	return net.HardwareAddr(slices.Clone(a[8:14])), true
}

// htons converts a 16-bit value to network byte order, as sockaddr_ll wants.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return native.Uint16(b[:])
}
