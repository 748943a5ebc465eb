package sensor

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RedirectRules is the nftables program that sends every TCP connection to
// the sensor's addresses to one local port, keeping the original
// destination in conntrack (read back with SO_ORIGINAL_DST). The sensor
// loads it with --redirect; operators who manage nftables themselves can
// print it with `vantage sensor --print-redirect` and load it their way.
func RedirectRules(addrs []netip.Prefix, port uint16, udpPorts ...uint16) string {
	var v4, v6 []string
	for _, p := range addrs {
		if p.Addr().Is4() {
			v4 = append(v4, p.String())
		} else {
			v6 = append(v6, p.String())
		}
	}
	table := tableName(port)
	var b strings.Builder
	// add-then-delete makes loading idempotent: a table left behind by a
	// killed sensor is replaced, in one transaction
	fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\n", table, table)
	fmt.Fprintf(&b, "table inet %s {\n  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n", table)
	var udp []string
	for _, p := range udpPorts {
		udp = append(udp, fmt.Sprint(p))
	}
	if len(v4) > 0 {
		fmt.Fprintf(&b, "    ip daddr { %s } meta l4proto tcp redirect to :%d\n", strings.Join(v4, ", "), port)
		if len(udp) > 0 {
			// same port, local address: the UDP responders listen there
			fmt.Fprintf(&b, "    ip daddr { %s } udp dport { %s } redirect\n", strings.Join(v4, ", "), strings.Join(udp, ", "))
		}
	}
	if len(v6) > 0 {
		fmt.Fprintf(&b, "    ip6 daddr { %s } meta l4proto tcp redirect to :%d\n", strings.Join(v6, ", "), port)
		if len(udp) > 0 {
			fmt.Fprintf(&b, "    ip6 daddr { %s } udp dport { %s } redirect\n", strings.Join(v6, ", "), strings.Join(udp, ", "))
		}
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

func tableName(port uint16) string { return fmt.Sprintf("vantage_sensor_%d", port) }

// redirect loads the rules and returns a function that removes them.
func redirect(ctx context.Context, addrs []netip.Prefix, port uint16, udpPorts []uint16) (func(), error) {
	if err := nft(ctx, RedirectRules(addrs, port, udpPorts...)); err != nil {
		return nil, fmt.Errorf("sensor: load the nftables redirect: %w", err)
	}
	return func() {
		nft(context.Background(), "delete table inet "+tableName(port)+"\n")
	}, nil
}

func nft(ctx context.Context, program string) error {
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(program)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// originalDst is where a redirected connection was going.
func originalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	local := netip.MustParseAddrPort(c.LocalAddr().String())
	var out netip.AddrPort
	var serr error
	err = rc.Control(func(fd uintptr) {
		var buf [28]byte // sockaddr_in6, the larger of the two
		size := uint32(len(buf))
		level := unix.SOL_IP
		if local.Addr().Is6() && !local.Addr().Is4In6() {
			level = unix.SOL_IPV6
		}
		const soOriginalDst = 80 // SO_ORIGINAL_DST and IP6T_SO_ORIGINAL_DST
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if e != 0 {
			serr = e
			return
		}
		port := binary.BigEndian.Uint16(buf[2:4])
		switch binary.NativeEndian.Uint16(buf[0:2]) {
		case unix.AF_INET:
			out = netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port)
		case unix.AF_INET6:
			out = netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])), port)
		default:
			serr = fmt.Errorf("original destination: unknown family")
		}
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return out, serr
}
