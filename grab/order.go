package grab

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// order decides which modules to try on t and how long to wait for a
// greeting first:
//   - a named protocol: that module alone;
//   - a port some modules own: those first; wait the whole timeout when
//     they all greet first (sshd on 22), not at all when they all wait for
//     the client (HTTP on 80), briefly when mixed;
//   - any other port: wait briefly for a greeting, then probe by rank
//     (HTTP, TLS, then the rest), at most MaxHandshakes connections.
func order(t Target, greetingWait, timeout time.Duration) ([]*Module, time.Duration, error) {
	if t.Protocol != "" {
		m, ok := Lookup(t.transport(), t.Protocol)
		if !ok {
			return nil, 0, fmt.Errorf("no %s module %q (see vantage grab --list)", t.transport(), t.Protocol)
		}
		if m.Claims != nil {
			return []*Module{m}, timeout, nil
		}
		return []*Module{m}, 0, nil
	}
	var own, rest []*Module
	for _, m := range Modules() {
		if m.transport() != t.transport() {
			continue
		}
		if hasPort(m, t.Addr.Port()) {
			own = append(own, m)
		} else {
			rest = append(rest, m)
		}
	}
	byRank := func(a, b *Module) int {
		ra, rb := a.Rank, b.Rank
		if ra == 0 {
			ra = 1 << 30
		}
		if rb == 0 {
			rb = 1 << 30
		}
		if ra != rb {
			return ra - rb
		}
		return cmpStr(a.Name, b.Name)
	}
	slices.SortStableFunc(own, byRank)
	slices.SortStableFunc(rest, byRank)
	wait := greetingWait
	if len(own) > 0 {
		greets, waits := 0, 0
		for _, m := range own {
			if m.Claims != nil {
				greets++
			} else {
				waits++
			}
		}
		switch {
		case waits == 0:
			wait = timeout
		case greets == 0:
			wait = 0
		}
	}
	return append(own, rest...), wait, nil
}

// probeable reports whether m may be tried by speaking first on t: a
// client-first module on its own port, or any module that ranks itself
// for blind probing.
func probeable(m *Module, t Target) bool {
	if t.Protocol != "" {
		return true
	}
	return m.Rank > 0 || (m.Claims == nil && hasPort(m, t.Addr.Port()))
}

// runUDP tries the UDP modules for t: each sends its request on a fresh
// socket and waits for an answer. Silence is the usual answer from a
// closed or filtered UDP port, so it is recorded as no service.
func (p *plan) runUDP(ctx context.Context) (*Result, error) {
	mods, _, err := order(p.t, 0, 0)
	if err != nil {
		return nil, err
	}
	var last error = ErrNotMine
	for _, m := range mods {
		if !probeable(m, p.t) {
			continue
		}
		s, err := p.dial(ctx)
		if err != nil {
			return nil, err
		}
		stop := watch(ctx, s)
		r, err := m.Grab(ctx, s)
		stop()
		p.close(s)
		if err == nil && r != nil {
			if r.Protocol == "" {
				r.Protocol = m.Name
			}
			return r, nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	// a UDP socket "connects" without a word from the far side
	p.connected = false
	return nil, last
}

// replyHints name the protocol a service probably speaks from how it
// answered another protocol's probe: memcached says ERROR to an HTTP
// request, Redis -ERR, a TLS server an alert. They move that module to the
// front of the remaining probes, so they are tried within the handshake limit.
var replyHints = []struct {
	prefix string
	module string
}{
	{"ERROR\r\n", "memcached"},
	{"CLIENT_ERROR ", "memcached"},
	{"-ERR ", "redis"},
	{"-DENIED ", "redis"},
	{"-NOAUTH ", "redis"},
	{"\x15\x03", "tls"}, // alert record
	{"\x16\x03", "tls"}, // handshake record
	{"SIP/2.0 ", "sip"},
	{"HTTP/", "http"},
	{"\x03\x00\x00", "rdp"}, // TPKT
	{"E\x00\x00", "postgres"},
	{"RFB ", "vnc"},
	{"SSH-", "ssh"},
}

// reorder moves the modules the service's first reply hints at to
// position from, unless already tried.
func (p *plan) reorder(mods []*Module, from int, tried map[*Module]bool) []*Module {
	var front []*Module
	for _, h := range replyHints {
		if len(p.first) < len(h.prefix) || string(p.first[:len(h.prefix)]) != h.prefix {
			continue
		}
		m, ok := Lookup(p.t.transport(), h.module)
		if !ok || tried[m] {
			continue
		}
		if p.hinted == nil {
			p.hinted = map[*Module]bool{}
		}
		if !p.hinted[m] {
			p.hinted[m] = true
			front = append(front, m)
		}
	}
	if len(front) == 0 {
		return mods
	}
	out := append([]*Module{}, mods[:from]...)
	out = append(out, front...)
	return append(out, mods[from:]...)
}
