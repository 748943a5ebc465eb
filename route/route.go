// Package route finds how packets to a destination leave this host: the
// outgoing interface, its MTU and MAC, the source address, the next-hop
// router and that hop's MAC. It asks the kernel over NETLINK_ROUTE, as
// `ip route get` and `ip neigh` do, so that a raw-socket (AF_PACKET) scanner
// can build whole Ethernet frames itself.
//
// Every call opens its own sockets, and sockets belong to the network
// namespace of the thread that creates them: a caller that has switched a
// locked OS thread into another namespace gets answers for that namespace.
package route

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"
)

// ErrIPv6 is returned (wrapped) for IPv6 addresses, which are not supported yet.
var ErrIPv6 = errors.New("IPv6 is not supported yet")

// Path is the way packets to one destination leave this host.
type Path struct {
	Interface  string           // e.g. "scan0"
	Index      int              // interface index
	MTU        int              // of the interface
	SrcIP      netip.Addr       // preferred source (RTA_PREFSRC), else the interface's first IPv4 address
	SrcMAC     net.HardwareAddr // the interface's MAC; empty on interfaces without one (lo, tun)
	Gateway    netip.Addr       // next-hop router; invalid (zero) when the destination is on-link
	NextHopMAC net.HardwareAddr // MAC of the gateway, or of the destination when on-link; nil if unknown
}

// NextHop returns the address whose MAC frames to dst must carry: the
// gateway, or dst itself when it is on-link. Pass it to ResolveMAC.
func (p Path) NextHop(dst netip.Addr) netip.Addr {
	if p.Gateway.IsValid() {
		return p.Gateway
	}
	return dst.Unmap()
}

// ipv4 checks that ip is an IPv4 address, unmapping ::ffff:a.b.c.d.
func ipv4(ip netip.Addr) (netip.Addr, error) {
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		return ip, nil
	case ip.Is6():
		return ip, ErrIPv6
	default:
		return ip, errors.New("invalid IP address")
	}
}

// Lookup asks the kernel how it would send to dst (IPv4 only for now),
// including the next hop's MAC from the neighbour table when it is there
// (NextHopMAC nil otherwise, which is not an error: see ResolveMAC).
func Lookup(ctx context.Context, dst netip.Addr) (Path, error) {
	dst, err := ipv4(dst)
	if err != nil {
		return Path{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	p, err := lookup(ctx, dst)
	if err != nil {
		// The kernel's ENETUNREACH reads "route to 100.64.0.1: network is unreachable".
		return Path{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	return p, nil
}

func lookup(ctx context.Context, dst netip.Addr) (Path, error) {
	r, err := getRoute(ctx, dst)
	if err != nil {
		return Path{}, err
	}
	switch {
	case r.typ != unix.RTN_UNICAST && r.typ != unix.RTN_LOCAL:
		// Broadcast and multicast routes have no next hop to resolve;
		// unreachable/prohibit/blackhole ones come back as errors instead.
		return Path{}, fmt.Errorf("kernel route type %d is not unicast", r.typ)
	case r.via || (r.gateway.IsValid() && !r.gateway.Is4()):
		return Path{}, fmt.Errorf("next hop is not IPv4: %w", ErrIPv6)
	case r.oif == 0:
		return Path{}, errors.New("kernel named no output interface")
	}
	ifi, err := net.InterfaceByIndex(r.oif)
	if err != nil {
		return Path{}, fmt.Errorf("output interface %d: %w", r.oif, err)
	}
	p, err := fromInterface(ifi)
	if err != nil {
		return Path{}, err
	}
	if r.prefsrc.Is4() && !r.prefsrc.IsUnspecified() {
		p.SrcIP = r.prefsrc
	}
	if !p.SrcIP.IsValid() {
		return Path{}, fmt.Errorf("interface %s has no IPv4 address to send from", p.Interface)
	}
	p.Gateway = r.gateway
	// Local destinations and interfaces without link-layer addresses have no
	// neighbour entries to look for.
	if r.typ == unix.RTN_UNICAST && len(p.SrcMAC) > 0 {
		p.NextHopMAC, err = neighbour(ctx, p.Index, p.NextHop(dst))
		if err != nil {
			return Path{}, fmt.Errorf("neighbour table: %w", err)
		}
	}
	return p, nil
}

// Interface returns the details of a named interface (index, MTU, MAC, first
// IPv4 address), for operators who override the interface with a flag. The
// Path has Gateway and NextHopMAC empty. An interface without an IPv4
// address is an error, since a scanner could not send from it.
func Interface(name string) (Path, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return Path{}, fmt.Errorf("interface %q: %w", name, err)
	}
	p, err := fromInterface(ifi)
	if err != nil {
		return Path{}, err
	}
	if !p.SrcIP.IsValid() {
		return Path{}, fmt.Errorf("interface %s has no IPv4 address to send from", name)
	}
	return p, nil
}

// fromInterface fills in the interface part of a Path. net asks the kernel
// over netlink (RTM_GETLINK, RTM_GETADDR) from the calling thread, like we do.
func fromInterface(ifi *net.Interface) (Path, error) {
	p := Path{Interface: ifi.Name, Index: ifi.Index, MTU: ifi.MTU, SrcMAC: ifi.HardwareAddr}
	addrs, err := ifi.Addrs()
	if err != nil {
		return Path{}, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
				p.SrcIP = ip.Unmap()
				break
			}
		}
	}
	return p, nil
}

// knownStates are the neighbour states whose link-layer address can be used.
const knownStates = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY |
	unix.NUD_PROBE | unix.NUD_PERMANENT | unix.NUD_NOARP

// Neighbour returns the MAC the kernel's neighbour table holds for ip on
// interface ifindex, or nil if there is no usable entry. REACHABLE, STALE,
// DELAY, PROBE, PERMANENT and NOARP entries count; INCOMPLETE and FAILED
// ones (whose address is missing or no longer trusted) do not.
func Neighbour(ifindex int, ip netip.Addr) (net.HardwareAddr, error) {
	ip, err := ipv4(ip)
	if err != nil {
		return nil, fmt.Errorf("neighbour %s: %w", ip, err)
	}
	mac, err := neighbour(context.Background(), ifindex, ip)
	if err != nil {
		return nil, fmt.Errorf("neighbour %s on interface %d: %w", ip, ifindex, err)
	}
	return mac, nil
}

func neighbour(ctx context.Context, ifindex int, ip netip.Addr) (net.HardwareAddr, error) {
	ns, err := neighbours(ctx, ifindex)
	if err != nil {
		return nil, err
	}
	for _, n := range ns {
		if n.family == unix.AF_INET && n.ifindex == ifindex && n.dst == ip &&
			n.state&knownStates != 0 && len(n.lladdr) > 0 {
			// Copy, so as not to pin the whole receive buffer.
			return net.HardwareAddr(slices.Clone(n.lladdr)), nil
		}
	}
	return nil, nil
}
