// Package sensor is the listening role: it owns addresses that host
// nothing and records everything that reaches them. Packets are read from
// memory-mapped AF_PACKET rings (a syscall per packet loses data under
// load), so every SYN is seen, including those of scans that never
// complete a handshake; connections to any TCP port are redirected to one
// local listener and handed to low-interaction responders that draw out
// the client's next message. Nothing received is ever executed, every
// buffer and per-source budget is bounded, and the sensor never connects
// anywhere but to the bus.
package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/vantagehq/vantage/afpacket"
	"github.com/vantagehq/vantage/record"
)

// Handler talks to one accepted connection and fills ev with what the
// client sent; dstPort is the port the client asked for before the
// redirect.
type Handler func(ctx context.Context, c net.Conn, dstPort uint16, ev *record.Event) error

// Config describes a sensor.
type Config struct {
	Name      string         // recorded in every event
	Interface string         // where the dark addresses' traffic arrives
	Addresses []netip.Prefix // the addresses the sensor owns
	// ListenPort is the local port every redirected TCP connection
	// arrives on (see nft.go).
	ListenPort uint16
	// Redirect sets up the nftables redirect itself and removes it at the
	// end; off when the operator sets it up (scripts/sensor-redirect.sh).
	Redirect bool
	// Handler serves accepted connections; nil records the first bytes.
	Handler Handler
	// UDPPorts are answered by UDPHandler (DNS, SIP); other UDP is only
	// recorded. Replies are never larger than the request and are rate
	// limited, so the sensor cannot serve as a reflector.
	UDPPorts   []uint16
	UDPHandler func(payload []byte, dstPort uint16, ev *record.Event) []byte
	// Emit receives every event, from several goroutines.
	Emit func(record.Event)
	// Bounds (defaults in brackets): connections at once [4096], per source [32],
	// per connection time [10s].
	MaxConns, PerSource int
	ConnTimeout         time.Duration
	Log                 *slog.Logger
}

// Stats counts what a sensor did.
type Stats struct {
	Packets                    atomic.Uint64 // frames read from the rings
	Events                     atomic.Uint64 // events emitted
	RingDrops                  atomic.Uint64 // frames the kernel dropped because a ring was full
	Conns                      atomic.Uint64 // connections accepted
	ConnsShed                  atomic.Uint64 // closed at once: over a budget
	NotOurs                    atomic.Uint64 // frames to other addresses
	Segments                   atomic.Uint64 // TCP segments without SYN: counted, not events
	UDPAnswered, UDPUnanswered atomic.Uint64
	Undecodable                atomic.Uint64
}

// Sensor runs the capture and the listener.
type Sensor struct {
	cfg    Config
	stats  Stats
	mu     sync.Mutex
	perSrc map[netip.Addr]int
}

// New checks cfg and fills defaults.
func New(cfg Config) (*Sensor, error) {
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("sensor: no addresses to listen on (--addresses)")
	}
	if cfg.Interface == "" {
		return nil, errors.New("sensor: no interface (--interface)")
	}
	if cfg.Emit == nil {
		return nil, errors.New("sensor: nowhere to send events")
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = 65534
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 4096
	}
	if cfg.PerSource <= 0 {
		cfg.PerSource = 32
	}
	if cfg.ConnTimeout <= 0 {
		cfg.ConnTimeout = 10 * time.Second
	}
	if cfg.Handler == nil {
		cfg.Handler = firstBytes
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Name == "" {
		cfg.Name = "sensor"
	}
	return &Sensor{cfg: cfg, perSrc: map[netip.Addr]int{}}, nil
}

// Stats returns the counters.
func (s *Sensor) Stats() *Stats { return &s.stats }

func (s *Sensor) ours(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.cfg.Addresses {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Run captures and listens until ctx ends.
func (s *Sensor) Run(ctx context.Context) error {
	ifi, err := net.InterfaceByName(s.cfg.Interface)
	if err != nil {
		return fmt.Errorf("sensor: interface %s: %w", s.cfg.Interface, err)
	}
	var rings []*afpacket.RX
	defer func() {
		for _, r := range rings {
			r.Close()
		}
	}()
	for _, ring := range []struct {
		proto  uint16
		blocks int
	}{{unix.ETH_P_IP, 64}, {unix.ETH_P_IPV6, 8}} {
		// A socket bound to one EtherType sees received frames only, not
		// the sensor's own replies; segments of established connections
		// stay out of the ring (see SYNFilter). The kernel keeps the whole
		// ring resident, so it is small (8 MiB: about 50,000 SYNs), and
		// made of many small blocks: a block is handed over when full or
		// after the timeout, so with thin traffic the number of blocks,
		// not their size, is how long the reader may be starved of CPU
		// (64 x 50 ms) before the kernel drops anything.
		r, err := afpacket.NewRX(afpacket.RXConfig{Ifindex: ifi.Index, Protocol: ring.proto, Blocks: ring.blocks, BlockSize: 128 << 10,
			Timeout: 50 * time.Millisecond, Filter: afpacket.SYNFilter()})
		if err != nil {
			return fmt.Errorf("sensor: capture on %s: %w", s.cfg.Interface, err)
		}
		rings = append(rings, r)
	}
	if s.cfg.Redirect {
		var udp []uint16
		if s.cfg.UDPHandler != nil {
			udp = s.cfg.UDPPorts
		}
		undo, err := redirect(ctx, s.cfg.Addresses, s.cfg.ListenPort, udp)
		if err != nil {
			return err
		}
		defer undo()
	}
	lns, err := s.listen()
	if err != nil {
		return err
	}
	pcs, err := s.listenUDP()
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(rings)+len(lns)+len(pcs))
	for _, r := range rings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.capture(ctx, r)
		}()
	}
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.serve(ctx, ln)
		}()
	}
	for _, pc := range pcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.answerUDP(pc)
		}()
	}
	go func() {
		<-ctx.Done()
		for _, ln := range lns {
			ln.Close()
		}
		for _, pc := range pcs {
			pc.Close()
		}
	}()
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
		cancel()
	}
	wg.Wait()
	if ctx.Err() != nil && (first == nil || errors.Is(first, context.Canceled)) {
		return nil
	}
	return first
}

// capture reads a ring until ctx ends.
func (s *Sensor) capture(ctx context.Context, r *afpacket.RX) error {
	// the kernel counts drops per ring; the sensor's counter sums the rings
	var dropped uint64
	countDrops := func() {
		if _, d, err := r.Stats(); err == nil && d > dropped {
			s.stats.RingDrops.Add(d - dropped)
			dropped = d
		}
	}
	defer countDrops()
	for ctx.Err() == nil {
		_, err := r.Read(100*time.Millisecond, func(p *afpacket.Packet) {
			s.stats.Packets.Add(1)
			ev := record.Event{Time: p.Time.UTC(), Sensor: s.cfg.Name}
			if err := decode(p.Data, &ev); err != nil {
				s.stats.Undecodable.Add(1)
				return
			}
			if !s.ours(ev.Dst) {
				s.stats.NotOurs.Add(1)
				return
			}
			// segments inside a connection (and a half-open scanner's RST
			// after our SYN-ACK) are the responder's to record; SYNs and
			// SYN-ACK backscatter are events of their own
			if ev.Transport == "tcp" && ev.TCPFlags&0x02 == 0 {
				s.stats.Segments.Add(1)
				return
			}
			ev.ID = record.NewID()
			s.emit(ev)
		})
		if err != nil {
			return err
		}
		countDrops()
	}
	return nil
}

func (s *Sensor) emit(ev record.Event) {
	s.stats.Events.Add(1)
	s.cfg.Emit(ev)
}

func (s *Sensor) listen() ([]net.Listener, error) {
	var lns []net.Listener
	for _, network := range []string{"tcp4", "tcp6"} {
		ln, err := net.Listen(network, fmt.Sprintf(":%d", s.cfg.ListenPort))
		if err != nil {
			if network == "tcp6" {
				continue // a host without IPv6 still senses IPv4
			}
			return nil, fmt.Errorf("sensor: listen on port %d: %w", s.cfg.ListenPort, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// serve accepts connections; each gets a goroutine within the budgets.
func (s *Sensor) serve(ctx context.Context, ln net.Listener) error {
	slots := make(chan struct{}, s.cfg.MaxConns)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("sensor: accept: %w", err)
		}
		s.stats.Conns.Add(1)
		src := netip.MustParseAddrPort(c.RemoteAddr().String())
		if !s.admit(src.Addr()) {
			s.stats.ConnsShed.Add(1)
			abortConn(c)
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			s.release(src.Addr())
			s.stats.ConnsShed.Add(1)
			abortConn(c)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer s.release(src.Addr())
			s.handle(ctx, c, src)
		}()
	}
}

func (s *Sensor) admit(a netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perSrc[a] >= s.cfg.PerSource {
		return false
	}
	s.perSrc[a]++
	return true
}

func (s *Sensor) release(a netip.Addr) {
	s.mu.Lock()
	if s.perSrc[a]--; s.perSrc[a] <= 0 {
		delete(s.perSrc, a)
	}
	s.mu.Unlock()
}

func (s *Sensor) handle(ctx context.Context, c net.Conn, src netip.AddrPort) {
	defer c.Close()
	dst, err := originalDst(c)
	if err != nil {
		s.cfg.Log.Debug("no original destination", "err", err)
		dst = netip.MustParseAddrPort(c.LocalAddr().String())
	}
	c.SetDeadline(time.Now().Add(s.cfg.ConnTimeout))
	ev := record.Event{
		ID: record.NewID(), Time: time.Now().UTC(), Sensor: s.cfg.Name,
		Src: src.Addr().Unmap(), SrcPort: src.Port(), Dst: dst.Addr().Unmap(), DstPort: dst.Port(),
		Transport: "tcp", Handshake: true,
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.ConnTimeout)
	defer cancel()
	stop := context.AfterFunc(cctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := s.cfg.Handler(cctx, c, dst.Port(), &ev); err != nil {
		s.cfg.Log.Debug("responder", "src", src, "port", dst.Port(), "err", err)
	}
	if len(ev.Payload) > maxPayload {
		ev.Payload = ev.Payload[:maxPayload]
	}
	s.emit(ev)
}

// firstBytes is the default handler: it records what the client sends
// first and answers nothing.
func firstBytes(ctx context.Context, c net.Conn, _ uint16, ev *record.Event) error {
	buf := make([]byte, maxPayload)
	n, err := c.Read(buf)
	ev.Payload = buf[:n]
	return err
}

func abortConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (s *Sensor) listenUDP() ([]net.PacketConn, error) {
	if s.cfg.UDPHandler == nil {
		return nil, nil
	}
	var pcs []net.PacketConn
	for _, port := range s.cfg.UDPPorts {
		for _, network := range []string{"udp4", "udp6"} {
			pc, err := net.ListenPacket(network, fmt.Sprintf(":%d", port))
			if err != nil {
				if network == "udp6" {
					continue
				}
				for _, p := range pcs {
					p.Close()
				}
				return nil, fmt.Errorf("sensor: listen on udp port %d: %w", port, err)
			}
			pcs = append(pcs, pc)
		}
	}
	return pcs, nil
}

// answerUDP replies to datagrams on one port. The capture has recorded
// them already; this only answers, within a global reply rate.
func (s *Sensor) answerUDP(pc net.PacketConn) {
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	limit := rate.NewLimiter(1000, 100)
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if !limit.Allow() {
			s.stats.UDPUnanswered.Add(1)
			continue
		}
		var ev record.Event
		reply := s.cfg.UDPHandler(buf[:n], port, &ev)
		if len(reply) > 0 && len(reply) <= n {
			pc.WriteTo(reply, from)
			s.stats.UDPAnswered.Add(1)
		}
	}
}
