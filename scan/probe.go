package scan

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/vantagehq/vantage/frame"
)

// Probe builds the frames of one probe module and recognises the replies to
// them. Build runs on the sender's hot path and Classify on the receiver's:
// neither may allocate.
type Probe interface {
	// Build writes the frame that probes (dst, port) into buf, as the n-th
	// probe to that target (n < Env.Probes), and returns its length.
	Build(buf []byte, dst uint32, port uint16, n int) int
	// Classify checks a packet addressed to the scanner. It returns false
	// when the packet is not a valid reply to one of this scan's probes.
	Classify(p *frame.Packet) (Reply, bool)
}

// Reply is what a validated reply says about its target.
type Reply struct {
	Port   uint16 // target port (0 for address-only probes)
	State  State
	TTL    uint8
	Window uint16
}

// State is the state of a target as a reply tells it.
type State uint8

// States a reply can report.
const (
	StateOpen   State = iota + 1 // TCP SYN-ACK
	StateClosed                  // TCP RST
	StateUp                      // ICMP echo reply
)

func (s State) String() string {
	switch s {
	case StateOpen:
		return "open"
	case StateClosed:
		return "closed"
	case StateUp:
		return "up"
	}
	return "unknown"
}

// ParseStates parses a list such as "open,closed".
func ParseStates(s string) (map[State]bool, error) {
	out := map[State]bool{}
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(name) {
		case "open":
			out[StateOpen] = true
		case "closed":
			out[StateClosed] = true
		case "up":
			out[StateUp] = true
		case "all":
			out[StateOpen], out[StateClosed], out[StateUp] = true, true, true
		default:
			return nil, fmt.Errorf("unknown state %q (want open, closed, up or all)", name)
		}
	}
	return out, nil
}

// Env is what a probe module needs to build frames.
type Env struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src            uint32
	MAC            *Validator
	SrcPortFirst   uint16 // source ports used: SrcPortFirst..SrcPortLast
	SrcPortLast    uint16
	Probes         int   // probes sent to each target (distinct source ports)
	TTL            uint8 // IP TTL of probes
	Args           string
}

// Module describes a probe module. Adding a module is adding one file that
// calls Register from init.
type Module struct {
	Name        string
	Description string
	Transport   string  // "tcp", "udp" or "icmp": the transport of results
	UsesPorts   bool    // targets have ports; false for address-only probes
	Protocols   []uint8 // IP protocols replies arrive on (for the kernel filter)
	MaxFrame    int     // largest frame Build writes
	Connect     bool    // the --connect mode can do the same job with connect()
	Args        string  // help for the module's --probe-args
	New         func(Env) (Probe, error)
}

var modules = map[string]*Module{}

// Register adds a probe module. It panics on a duplicate name: that is a
// programming error caught by any test.
func Register(m *Module) {
	if _, dup := modules[m.Name]; dup {
		panic("scan: probe module registered twice: " + m.Name)
	}
	modules[m.Name] = m
}

// Lookup returns the module of that name.
func Lookup(name string) (*Module, error) {
	m, ok := modules[name]
	if !ok {
		return nil, fmt.Errorf("unknown probe module %q (available: %s)", name, strings.Join(ModuleNames(), ", "))
	}
	return m, nil
}

// Modules returns every registered module, sorted by name.
func Modules() []*Module {
	out := make([]*Module, 0, len(modules))
	for _, m := range modules {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ModuleNames returns the names of the registered modules, sorted.
func ModuleNames() []string {
	var names []string
	for _, m := range Modules() {
		names = append(names, m.Name)
	}
	return names
}

// srcPort picks the source port of probe n to a target from its MAC, so the
// reply's destination port is part of what validates it.
func (e *Env) srcPort(mac uint64, n int) uint16 {
	count := uint32(e.SrcPortLast) - uint32(e.SrcPortFirst) + 1
	return uint16(uint32(e.SrcPortFirst) + (uint32(mac>>32)%count+uint32(n))%count)
}

// validPort reports whether port is the source port of one of the probes to
// the target whose MAC is mac.
func (e *Env) validPort(mac uint64, port uint16) bool {
	if port < e.SrcPortFirst || port > e.SrcPortLast {
		return false
	}
	count := uint32(e.SrcPortLast) - uint32(e.SrcPortFirst) + 1
	first := uint64(uint32(mac>>32) % count)
	n := (uint64(port-e.SrcPortFirst) + uint64(count) - first) % uint64(count)
	return n < uint64(e.Probes)
}
