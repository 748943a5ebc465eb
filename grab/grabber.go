package grab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vantagehq/vantage/record"
)

// Config bounds a Grabber. Zero values take the defaults in brackets.
type Config struct {
	Timeout       time.Duration // per connection, connect to last byte [5s]
	GreetingWait  time.Duration // wait for a server-first greeting on a port no module owns [2s]
	MaxBytes      int           // bytes read per connection [256 KiB]
	MaxHandshakes int           // connections per service [5]
	Concurrency   int           // services grabbed at once, overall [256]
	PerHost       int           // services grabbed at once on one address [8]
	// Allowed is asked again before every connection: exclusions and
	// opt-outs that arrived after the SYN scan still win. Nil allows all.
	Allowed func(netip.Addr) bool
	// Dial opens connections; nil uses a net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Identify fills product, version and CPE from fingerprint rules.
	Identify  func(r *Result)
	UserAgent string
	ScanID    string
	// TLSHandshakeOnly describes the TLS handshake and chain and leaves
	// what runs inside the tunnel alone (zgrab2's tls module does the
	// same); by default the service inside (usually HTTP) is identified too.
	TLSHandshakeOnly bool
}

// DefaultUserAgent names the scanner and where to learn about it.
const DefaultUserAgent = "Mozilla/5.0 (compatible; Vantage/1.0; +https://github.com/vantagehq/vantage/blob/main/docs/scanner.md)"

// UserAgentFor names the scanner and the page that explains this scan
// (vantage scan --info-page): who scans, why, and how to opt out.
func UserAgentFor(infoURL string) string {
	return "Mozilla/5.0 (compatible; Vantage/1.0; +" + infoURL + ")"
}

// ErrExcluded is the error recorded for a target the policy refuses.
var ErrExcluded = errors.New("address excluded")

// Grabber grabs services. It is safe for concurrent use.
type Grabber struct {
	cfg   Config
	slots chan struct{}

	mu    sync.Mutex
	hosts map[netip.Addr]*hostSlot

	stats Stats
}

type hostSlot struct {
	sem  chan struct{}
	refs int
}

// New returns a Grabber with cfg's bounds.
func New(cfg Config) *Grabber {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.GreetingWait <= 0 {
		cfg.GreetingWait = 2 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 256 << 10
	}
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = 5
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 256
	}
	if cfg.PerHost <= 0 {
		cfg.PerHost = 8
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	if cfg.Dial == nil {
		// no TCP keep-alive: a grab lasts at most Timeout, well under the
		// 15 s before a first keep-alive probe, and enabling it costs four
		// setsockopt calls per connection
		d := &net.Dialer{KeepAlive: -1}
		cfg.Dial = d.DialContext
	}
	return &Grabber{cfg: cfg, slots: make(chan struct{}, cfg.Concurrency), hosts: map[netip.Addr]*hostSlot{}}
}

func (g *Grabber) acquire(ctx context.Context, a netip.Addr) (release func(), err error) {
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	g.mu.Lock()
	h := g.hosts[a]
	if h == nil {
		h = &hostSlot{sem: make(chan struct{}, g.cfg.PerHost)}
		g.hosts[a] = h
	}
	h.refs++
	g.mu.Unlock()
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		g.unref(a, h)
		<-g.slots
		return nil, ctx.Err()
	}
	return func() {
		<-h.sem
		g.unref(a, h)
		<-g.slots
	}, nil
}

func (g *Grabber) unref(a netip.Addr, h *hostSlot) {
	g.mu.Lock()
	h.refs--
	if h.refs == 0 {
		delete(g.hosts, a)
	}
	g.mu.Unlock()
}

// Grab identifies the service at t and returns it as a record. It blocks
// while the overall or per-host concurrency is used up. The error says
// why nothing was learnt; the record is still usable (state "silent",
// "closed" or protocol "unknown").
func (g *Grabber) Grab(ctx context.Context, t Target) (record.Service, error) {
	svc := record.Service{
		ID:        record.ServiceID(g.cfg.ScanID, t.Addr.Addr(), t.Addr.Port(), t.transport()),
		Time:      time.Now().UTC(),
		ScanID:    g.cfg.ScanID,
		IP:        t.Addr.Addr(),
		Port:      t.Addr.Port(),
		Transport: t.transport(),
		State:     "open",
	}
	if g.cfg.Allowed != nil && !g.cfg.Allowed(t.Addr.Addr()) {
		g.stats.count(&g.stats.Excluded)
		return svc, ErrExcluded
	}
	release, err := g.acquire(ctx, t.Addr.Addr())
	if err != nil {
		return svc, err
	}
	defer release()
	g.stats.count(&g.stats.Started)
	p := plan{g: g, t: t}
	res, err := p.run(ctx)
	switch {
	case res != nil:
		if g.cfg.Identify != nil {
			g.cfg.Identify(res)
		}
		fill(&svc, res)
		g.stats.protocol(res.Protocol, res.Product != "")
		return svc, nil
	case p.first != nil:
		// it spoke, but in nothing we know
		svc.Protocol = "unknown"
		svc.Banner = p.first
		g.stats.protocol("unknown", false)
		return svc, nil
	case p.refused:
		svc.State = "closed"
	case p.dialTimeout:
		svc.State = "filtered" // no answer to the SYN any more
	case p.connected:
		// accepted the connection, never said a byte: a middlebox that
		// answers every SYN, or a service waiting for a protocol we lack
		svc.State = "silent"
	}
	g.stats.fail(err)
	return svc, err
}

func fill(svc *record.Service, r *Result) {
	svc.Protocol = r.Protocol
	svc.Product = r.Product
	svc.Version = r.Version
	svc.CPE = r.CPE
	svc.Banner = r.Banner
	svc.HTTP = r.HTTP
	svc.TLS = r.TLS
	svc.SSH = r.SSH
	svc.Data = r.Data
}

// plan is the attempts on one service.
type plan struct {
	g           *Grabber
	t           Target
	handshakes  int
	connected   bool
	refused     bool
	dialTimeout bool
	first       []byte // first bytes the service ever sent
	hinted      map[*Module]bool
}

func (p *plan) dial(ctx context.Context) (*Session, error) {
	if p.handshakes >= p.g.cfg.MaxHandshakes {
		return nil, fmt.Errorf("gave up after %d handshakes", p.handshakes)
	}
	if a := p.g.cfg.Allowed; a != nil && !a(p.t.Addr.Addr()) {
		return nil, ErrExcluded
	}
	p.handshakes++
	deadline := time.Now().Add(p.g.cfg.Timeout)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	c, err := p.g.cfg.Dial(dctx, p.t.transport(), p.t.Addr.String())
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			p.refused = true
		} else if isTimeout(err) && !p.connected {
			p.dialTimeout = true
		}
		return nil, err
	}
	p.connected = true
	s := newSession(p.t, c, p.g.cfg.MaxBytes, deadline)
	s.UserAgent = p.g.cfg.UserAgent
	if !p.g.cfg.TLSHandshakeOnly {
		s.inner = p.inner
	}
	s.redial = func(ctx context.Context) (*Session, error) {
		ns, err := p.dial(ctx)
		if err != nil {
			return nil, err
		}
		ns.UserAgent = s.UserAgent
		return ns, nil
	}
	return s, nil
}

func (p *plan) close(s *Session) {
	if s.first != nil && p.first == nil {
		p.first = s.first
	}
	abort(s.raw)
	// the socket itself, not a TLS layer over it: a close_notify alert
	// costs a record and a syscall and tells a scanned server nothing
	s.raw.Close()
}

// abort makes Close send a RST instead of a FIN: the grab is over, and a
// scanner that leaves thousands of sockets in TIME_WAIT spends kernel CPU
// and source ports on nothing.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
}

// run tries modules in order until one identifies the service.
func (p *plan) run(ctx context.Context) (*Result, error) {
	if p.t.transport() == "udp" {
		return p.runUDP(ctx)
	}
	mods, wait, err := order(p.t, p.g.cfg.GreetingWait, p.g.cfg.Timeout)
	if err != nil {
		return nil, err
	}
	s, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer watch(ctx, s)()
	if wait > 0 {
		g, gerr := s.readGreeting(wait)
		if len(g) > 0 {
			s.Greeting = bytes.Clone(g)
			defer p.close(s)
			return p.greeted(ctx, s, mods)
		}
		if gerr != nil && !isTimeout(gerr) {
			// closed or reset without a word: probes get fresh connections
			p.close(s)
			s = nil
		}
	}
	var last error = ErrNotMine
	tried := map[*Module]bool{}
	for i := 0; i < len(mods); i++ {
		m := mods[i]
		if tried[m] || !probeable(m, p.t) && !p.hinted[m] {
			continue
		}
		tried[m] = true
		if s == nil {
			if s, err = p.dial(ctx); err != nil {
				if p.first == nil && last == ErrNotMine {
					last = err
				}
				break
			}
			defer watch(ctx, s)()
		}
		r, err := m.Grab(ctx, s)
		p.close(s)
		s = nil
		if err != nil && p.first != nil {
			// the service answered another protocol's probe: its answer
			// may say which protocol it speaks
			mods = p.reorder(mods, i+1, tried)
		}
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
	if s != nil {
		p.close(s)
	}
	return nil, last
}

// watch ends the connection's reads and writes when ctx is cancelled.
func watch(ctx context.Context, s *Session) (stop func() bool) {
	c := s.conn
	return context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
}

// greeted hands a server-first greeting to the module that claims it.
func (p *plan) greeted(ctx context.Context, s *Session, mods []*Module) (*Result, error) {
	for _, m := range mods {
		if m.Claims == nil || !m.Claims(s.Greeting) {
			continue
		}
		r, err := m.Grab(ctx, s)
		if err != nil {
			if errors.Is(err, ErrNotMine) {
				continue
			}
			// it is this protocol, but the handshake broke off: keep
			// what the greeting says
			return &Result{Protocol: m.Name, Banner: s.Greeting}, nil
		}
		if r.Protocol == "" {
			r.Protocol = m.Name
		}
		return r, nil
	}
	return nil, NotMine("greeting %q", clip(s.Greeting, 40))
}

// inner identifies the service inside a TLS tunnel: a greeting if one
// comes, or else the first client-first probe (HTTP).
func (p *plan) inner(ctx context.Context, s *Session) (*Result, error) {
	wait := p.g.cfg.GreetingWait
	if httpsPorts[s.Target.Addr.Port()] {
		wait = 0
	}
	var mods []*Module
	for _, m := range Modules() {
		if m.transport() == "tcp" && m.Name != "tls" {
			mods = append(mods, m)
		}
	}
	if wait > 0 {
		if g, _ := s.readGreeting(wait); len(g) > 0 {
			s.Greeting = bytes.Clone(g)
			return p.greeted(ctx, s, mods)
		}
	}
	if m, ok := Lookup("tcp", "http"); ok {
		return m.Grab(ctx, s)
	}
	return nil, ErrNotMine
}

// httpsPorts are where a TLS service is expected to be HTTP, so no time is
// spent waiting for a greeting inside the tunnel.
var httpsPorts = map[uint16]bool{443: true, 4443: true, 8443: true, 9443: true, 10443: true}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func hasPort(m *Module, port uint16) bool {
	for _, p := range m.Ports {
		if p == port {
			return true
		}
	}
	return false
}

// Stats counts what a Grabber did; read it with Snapshot.
type Stats struct {
	Started, Excluded      atomic.Int64
	Identified, Recognised atomic.Int64 // product known; protocol known
	mu                     sync.Mutex
	byProtocol             map[string]int64
	errors                 map[string]int64
}

func (s *Stats) count(c *atomic.Int64) { c.Add(1) }

func (s *Stats) protocol(name string, identified bool) {
	if name != "unknown" {
		s.Recognised.Add(1)
	}
	if identified {
		s.Identified.Add(1)
	}
	s.mu.Lock()
	if s.byProtocol == nil {
		s.byProtocol = map[string]int64{}
	}
	s.byProtocol[name]++
	s.mu.Unlock()
}

func (s *Stats) fail(err error) {
	s.mu.Lock()
	if s.errors == nil {
		s.errors = map[string]int64{}
	}
	s.errors[ErrorKind(err)]++
	s.mu.Unlock()
}

// Snapshot is a copy of the counters.
type Snapshot struct {
	Started    int64            `json:"started"`
	Excluded   int64            `json:"excluded"`
	Recognised int64            `json:"recognised"`
	Identified int64            `json:"identified"`
	Protocols  map[string]int64 `json:"protocols"`
	Errors     map[string]int64 `json:"errors"`
}

// Stats returns the counters so far.
func (g *Grabber) Stats() Snapshot {
	s := &g.stats
	out := Snapshot{
		Started: s.Started.Load(), Excluded: s.Excluded.Load(),
		Recognised: s.Recognised.Load(), Identified: s.Identified.Load(),
		Protocols: map[string]int64{}, Errors: map[string]int64{},
	}
	s.mu.Lock()
	for k, v := range s.byProtocol {
		out.Protocols[k] = v
	}
	for k, v := range s.errors {
		out.Errors[k] = v
	}
	s.mu.Unlock()
	return out
}

// ErrorKind names the class of a grab error for counters: timeout,
// refused, reset, eof, too-large, excluded, not-recognised, other.
func ErrorKind(err error) string {
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, ErrExcluded):
		return "excluded"
	case errors.Is(err, ErrTooLarge):
		return "too-large"
	case errors.Is(err, ErrNotMine):
		return "not-recognised"
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}
