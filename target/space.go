package target

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Space is the set of (address, port) targets a scan visits: the allowed
// addresses times the ports. Position t stands for address t/len(ports) and
// port t%len(ports); a Cycle over Size positions gives the visiting order.
type Space struct {
	addrs *Index
	ports []uint16
	np    uint64
	// portRank maps a port to its position in ports (plus one; 0 = absent).
	portRank []uint16
}

// NewSpace builds the target space of the allowed addresses and ports. An
// address-only probe (ICMP echo) uses a single port 0.
func NewSpace(allowed *Set, ports []uint16) (*Space, error) {
	if allowed.Empty() {
		return nil, errors.New("no address left to scan after exclusions")
	}
	if len(ports) == 0 {
		return nil, errors.New("no port to scan")
	}
	ports = slices.Clone(ports)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	sp := &Space{addrs: NewIndex(allowed), ports: ports, np: uint64(len(ports))}
	if sp.addrs.Size()*sp.np > MaxCycle {
		return nil, fmt.Errorf("%d addresses x %d ports exceeds %d targets", sp.addrs.Size(), len(ports), uint64(MaxCycle))
	}
	sp.portRank = make([]uint16, 65536)
	for i, p := range ports {
		sp.portRank[p] = uint16(i + 1)
	}
	return sp, nil
}

// Size is the number of targets (addresses x ports).
func (sp *Space) Size() uint64 { return sp.addrs.Size() * sp.np }

// Addresses is the number of allowed addresses.
func (sp *Space) Addresses() uint64 { return sp.addrs.Size() }

// Ports returns the ports in ascending order. The slice must not be changed.
func (sp *Space) Ports() []uint16 { return sp.ports }

// At returns the target at position t (t < Size).
func (sp *Space) At(t uint64) (addr uint32, port uint16) {
	if sp.np == 1 {
		return sp.addrs.At(t), sp.ports[0]
	}
	return sp.addrs.At(t / sp.np), sp.ports[t%sp.np]
}

// Position is the inverse of At: the position of (addr, port), and false
// when the pair is not in the space (an excluded address or another port).
func (sp *Space) Position(addr uint32, port uint16) (uint64, bool) {
	pr := sp.portRank[port]
	if pr == 0 {
		return 0, false
	}
	k, ok := sp.addrs.Rank(addr)
	if !ok {
		return 0, false
	}
	return k*sp.np + uint64(pr-1), true
}

// Contains reports whether the address is one the space may probe.
func (sp *Space) Contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.Is4() {
		return false
	}
	_, ok := sp.addrs.Rank(AddrTo(addr))
	return ok
}
