// Package grab is the scanner's second stage: it talks to an open port just
// enough to learn what answers there (protocol, product, version, CPE), on
// the usual port or any other. Identification only: greetings and
// handshakes, never credentials, never an exploit, never a write.
//
// Each protocol is a Module in a file of its own that registers itself in
// init, the way Caddy modules do; the Grabber decides which modules to try
// on a port (see order.go) and bounds every connection in time, bytes and
// concurrency (see grabber.go).
package grab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/vantagehq/vantage/record"
)

// Module is one protocol's grabber.
type Module struct {
	// Name is the protocol name recorded in results: "http", "ssh", ...
	Name string
	// Transport is "tcp" (the default when empty) or "udp".
	Transport string
	// Ports are where the protocol usually lives; there it is tried first.
	Ports []uint16
	// Claims reports whether a greeting the server sent unprompted is this
	// protocol's. Nil for protocols where the client speaks first.
	Claims func(greeting []byte) bool
	// Rank orders client-first probes on a port no module claims: lower is
	// tried earlier. Zero means the module is not tried blind (it is tried
	// only on its own ports or when a greeting is claimed).
	Rank int
	// Grab runs the handshake. For a server-first protocol the greeting
	// already read is in s.Greeting.
	Grab func(ctx context.Context, s *Session) (*Result, error)
}

func (m *Module) transport() string {
	if m.Transport == "" {
		return "tcp"
	}
	return m.Transport
}

// Result is what one module learnt.
type Result struct {
	Protocol string
	// Banner is the primary raw bytes the service sent (its greeting, its
	// response header), bounded by the session's byte cap.
	Banner []byte
	// Product, Version and CPE, when the protocol itself says them (a
	// MySQL handshake's version string); fingerprint rules fill the rest.
	Product string
	Version string
	CPE     []string
	HTTP    *record.HTTP
	TLS     *record.TLS
	SSH     *record.SSH
	// Data holds protocol details worth keeping ("rdp.protocols",
	// "smb.dialect", ...); it is stored with the service.
	Data map[string]string
	// Match holds text the fingerprint rules may match against without it
	// being stored: field name to text ("body" for an HTTP body head).
	Match map[string]string
}

// Set records a detail; empty values are dropped.
func (r *Result) Set(key, value string) {
	if value == "" {
		return
	}
	if r.Data == nil {
		r.Data = map[string]string{}
	}
	r.Data[key] = value
}

// Errors a module returns so the grabber can tell what happened.
var (
	// ErrNotMine: the service answered, but not in this protocol. The
	// grabber tries the next module.
	ErrNotMine = errors.New("not this protocol")
	// ErrTooLarge: the service sent more than the byte cap.
	ErrTooLarge = errors.New("byte cap reached")
)

// NotMine wraps ErrNotMine with what was seen instead.
func NotMine(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotMine, fmt.Sprintf(format, args...))
}

var (
	regMu   sync.RWMutex
	modules = map[string]*Module{}
)

// Register adds a module; each protocol file calls it from init. A second
// module with the same name panics: it is a programming error.
func Register(m Module) {
	if m.Name == "" || m.Grab == nil {
		panic("grab: a module needs a name and a Grab function")
	}
	regMu.Lock()
	defer regMu.Unlock()
	key := m.transport() + "/" + m.Name
	if _, dup := modules[key]; dup {
		panic("grab: module " + key + " registered twice")
	}
	modules[key] = &m
}

// Lookup returns the module for transport ("tcp" or "udp") and name.
func Lookup(transport, name string) (*Module, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	m, ok := modules[transport+"/"+name]
	return m, ok
}

// Modules lists the registered modules, sorted by transport and name.
func Modules() []*Module {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]*Module, 0, len(modules))
	for _, m := range modules {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *Module) int {
		if c := cmpStr(a.transport(), b.transport()); c != 0 {
			return c
		}
		return cmpStr(a.Name, b.Name)
	})
	return out
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
