// Package scan is the stateless port scanner: it walks a target space in the
// pseudorandom order of a target.Cycle, sends one frame per probe through a
// memory-mapped AF_PACKET ring at a paced rate, and recognises replies by a
// keyed MAC carried in the probes themselves, so it keeps no state per
// target. Probe modules (TCP SYN, ICMP echo, ...) say how frames are built
// and replies classified. Where raw sockets are not allowed, a connect()
// mode scans the same targets in the same order with ordinary sockets.
package scan

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantagehq/vantage/afpacket"
	"github.com/vantagehq/vantage/route"
	"github.com/vantagehq/vantage/target"
)

// Config is one scan.
type Config struct {
	Space     *target.Space // what to probe, exclusions already applied
	Seed      uint64        // picks the order; shards of one scan share it
	Shard     int           // this scanner's shard, 0 <= Shard < Shards
	Shards    int
	Module    *Module
	ProbeArgs string
	Probes    int // probes per target (default 1)

	Rate       int           // probes per second; 0 = as fast as possible
	Senders    int           // sending goroutines (default 1)
	Cooldown   time.Duration // wait for late replies after the last probe
	MaxTargets uint64        // stop after this many targets (0 = all)
	MaxRuntime time.Duration // stop sending after this long (0 = no limit)

	// Raw mode. Zero values are found from the routing table.
	Interface    string
	SrcIP        netip.Addr
	SrcMAC       net.HardwareAddr
	GatewayMAC   net.HardwareAddr
	SrcPortFirst uint16 // default 32768-60999, as Linux picks ephemeral ports
	SrcPortLast  uint16
	TTL          uint8  // default 64
	QdiscBypass  bool   // send straight to the driver
	SendMethod   string // "ring" (TX ring, default) or "mmsg" (sendmmsg)

	// Connect mode: ordinary sockets; chosen explicitly or when raw sockets
	// are not permitted.
	Connect        bool
	ConnectTimeout time.Duration // default 3s
	Concurrency    int           // connections in flight (default 512)

	States         map[State]bool // which states to report (default open and up)
	DedupFull      bool           // exact dedup bitmap instead of the fixed-memory window
	DedupWindow    int            // window dedup size (default 1<<20)
	ScanID         string         // default: random
	Output         Writer
	Status         io.Writer     // status lines and the summary; nil = quiet
	StatusInterval time.Duration // default 1s
	Log            *slog.Logger

	// Live, when set, is an exclusion list that can change during the
	// scan (approved opt-outs): every target is checked against it before
	// its probe, and Live.Stop ends sending (fail closed). Nil: the Space
	// alone decides.
	Live *Live

	// Progress, when set, lets other goroutines read the scan's counters
	// while it runs (metrics).
	Progress *Progress
}

// Progress reads the counters of a running scan. Before the scan starts
// they are zero; after it ends they keep their last values.
type Progress struct{ c atomic.Pointer[counters] }

// Counts are a scan's counters so far (see Summary for their meaning).
type Counts struct {
	Targets, Sent, SendFailures, Replies, Hits, Closed, Duplicates, Invalid uint64
	Results, RecvPackets, RecvDrops, Excluded                               uint64
}

// Counts returns the counters now.
func (p *Progress) Counts() Counts {
	c := p.c.Load()
	if c == nil {
		return Counts{}
	}
	return Counts{
		Targets: c.targets.Load(), Sent: c.sent.Load(), SendFailures: c.sendFailures.Load(), Replies: c.replies.Load(),
		Hits: c.hits.Load(), Closed: c.closed.Load(), Duplicates: c.dups.Load(), Invalid: c.invalid.Load(),
		Results: c.results.Load(), RecvPackets: c.recvPackets.Load(), RecvDrops: c.recvDrops.Load(), Excluded: c.excluded.Load(),
	}
}

// Summary is what a scan did; it is also the metadata file.
type Summary struct {
	ScanID      string    `json:"scan_id"`
	Mode        string    `json:"mode"` // "raw" or "connect"
	Module      string    `json:"probe_module"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Seconds     float64   `json:"duration_s"`
	SendSeconds float64   `json:"send_duration_s"`
	StopReason  string    `json:"stop_reason"` // completed, interrupted, max-targets, max-runtime, fail-closed, error
	StopError   string    `json:"stop_error,omitempty"`

	Interface  string   `json:"interface,omitempty"`
	SrcIP      string   `json:"source_ip,omitempty"`
	SrcMAC     string   `json:"source_mac,omitempty"`
	GatewayMAC string   `json:"gateway_mac,omitempty"`
	Seed       uint64   `json:"seed"`
	Shard      int      `json:"shard"`
	Shards     int      `json:"shards"`
	Space      uint64   `json:"target_space"` // addresses x ports, all shards
	Addresses  uint64   `json:"addresses"`
	Ports      []uint16 `json:"ports,omitempty"`
	RateLimit  int      `json:"rate_limit_pps"`
	Probes     int      `json:"probes_per_target"`

	Targets      uint64  `json:"targets_probed"`
	Sent         uint64  `json:"probes_sent"`
	SendFailures uint64  `json:"send_failures"`
	SendRate     float64 `json:"send_rate_pps"`
	Replies      uint64  `json:"replies"` // validated replies, duplicates included
	Hits         uint64  `json:"hits"`    // unique open (or up) targets
	Closed       uint64  `json:"closed"`  // unique closed targets
	Duplicates   uint64  `json:"duplicates"`
	Invalid      uint64  `json:"invalid_replies"` // packets to us that failed validation
	HitRate      float64 `json:"hit_rate"`        // hits / targets probed
	RecvPackets  uint64  `json:"recv_packets"`    // packets the kernel filter passed to us
	RecvDrops    uint64  `json:"recv_drops"`      // packets the kernel dropped: our ring was full
	Results      uint64  `json:"results_written"`

	// With a live exclusion list: the version in force at the end, and
	// the targets of the space not probed because a version that arrived
	// during the scan excluded them.
	ExclusionVersion *uint64 `json:"exclusion_list_version,omitempty"`
	ExcludedInFlight uint64  `json:"excluded_in_flight"`
}

// counters are updated by senders and the receiver and read by the status line.
type counters struct {
	targets, sent, replies, hits, closed, dups, invalid, results atomic.Uint64
	recvPackets, recvDrops, sendFailures, excluded               atomic.Uint64
}

type scanner struct {
	cfg     Config
	space   *target.Space
	walker  *target.Walker
	env     Env
	c       counters
	claimed atomic.Uint64 // targets claimed by senders, for MaxTargets
	results chan Result
	mu      sync.Mutex // guards dedup: connect mode emits from many goroutines
	dedup   dedup
	sum     Summary
	log     *slog.Logger
}

// Run performs a scan and returns its summary. It returns when every probe
// has been sent and the cooldown is over, when MaxTargets or MaxRuntime stop
// it, or when ctx is cancelled (an interrupted scan still returns its
// summary, with StopReason "interrupted").
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	cyc, err := target.NewCycle(cfg.Space.Size(), cfg.Seed)
	if err != nil {
		return nil, err
	}
	w, err := cyc.Shard(cfg.Shard, cfg.Shards)
	if err != nil {
		return nil, err
	}
	s := &scanner{cfg: cfg, space: cfg.Space, walker: w, log: cfg.Log}
	if cfg.Progress != nil {
		cfg.Progress.c.Store(&s.c)
	}
	s.sum = Summary{
		ScanID: cfg.ScanID, Module: cfg.Module.Name, Seed: cfg.Seed, Shard: cfg.Shard, Shards: cfg.Shards,
		Space: cfg.Space.Size(), Addresses: cfg.Space.Addresses(), RateLimit: cfg.Rate, Probes: cfg.Probes,
	}
	if cfg.Module.UsesPorts {
		s.sum.Ports = cfg.Space.Ports()
	}
	if cfg.DedupFull {
		s.dedup = newBitmapDedup()
	} else {
		s.dedup = newWindowDedup(cfg.DedupWindow)
	}

	mode := "raw"
	var raw *rawIO
	if !cfg.Connect {
		raw, err = s.openRaw(ctx)
		if errors.Is(err, afpacket.ErrPermission) && cfg.Module.Connect {
			s.note("raw sockets are not permitted (run as root or grant CAP_NET_RAW for SYN scanning); falling back to --connect mode")
			err = nil
			mode = "connect"
		}
		if err != nil {
			return nil, err
		}
	} else {
		if !cfg.Module.Connect {
			return nil, fmt.Errorf("probe module %s has no connect mode", cfg.Module.Name)
		}
		mode = "connect"
	}
	s.sum.Mode = mode

	s.results = make(chan Result, 1<<14)
	outDone := make(chan error, 1)
	go func() { outDone <- s.writeResults() }()

	statusDone := make(chan struct{})
	stopStatus := make(chan struct{})
	go func() {
		defer close(statusDone)
		s.status(stopStatus)
	}()

	s.sum.Start = time.Now()
	sendCtx := ctx
	var cancelSend context.CancelFunc = func() {}
	if cfg.MaxRuntime > 0 {
		sendCtx, cancelSend = context.WithTimeout(ctx, cfg.MaxRuntime)
	}
	if mode == "raw" {
		err = s.runRaw(ctx, sendCtx, raw)
	} else {
		err = s.runConnect(ctx, sendCtx)
	}
	cancelSend()
	close(s.results)
	if outErr := <-outDone; err == nil {
		err = outErr
	}
	close(stopStatus)
	<-statusDone

	s.finish(ctx, sendCtx, err)
	s.printSummary()
	if err == nil && s.cfg.Live != nil {
		err = s.cfg.Live.Err() // stopped sending: fail closed
	}
	return &s.sum, err
}

func (c *Config) defaults() error {
	if c.Space == nil {
		return errors.New("no targets")
	}
	if c.Module == nil {
		m, err := Lookup("tcp_syn")
		if err != nil {
			return err
		}
		c.Module = m
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	if c.Probes <= 0 {
		c.Probes = 1
	}
	if c.Senders <= 0 {
		c.Senders = 1
	}
	if c.Rate < 0 {
		return fmt.Errorf("rate %d: must be >= 0 (0 = no limit)", c.Rate)
	}
	if c.SrcPortFirst == 0 && c.SrcPortLast == 0 {
		c.SrcPortFirst, c.SrcPortLast = 32768, 60999
	}
	if c.SrcPortLast < c.SrcPortFirst {
		return fmt.Errorf("source ports %d-%d: range ends before it starts", c.SrcPortFirst, c.SrcPortLast)
	}
	if int(c.SrcPortLast-c.SrcPortFirst)+1 < c.Probes {
		return fmt.Errorf("%d probes per target need at least as many source ports", c.Probes)
	}
	if c.TTL == 0 {
		c.TTL = 64
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 3 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 512
	}
	if c.States == nil {
		c.States = map[State]bool{StateOpen: true, StateUp: true}
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = 1 << 20
	}
	if c.ScanID == "" {
		var b [6]byte
		rand.Read(b[:])
		c.ScanID = hex.EncodeToString(b[:])
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Output == nil {
		return errors.New("no output writer")
	}
	return nil
}

// note prints an operator-facing message on the status stream and the log.
func (s *scanner) note(msg string) {
	s.log.Warn(msg)
	if s.cfg.Status != nil {
		fmt.Fprintf(s.cfg.Status, "vantage: note: %s\n", msg)
	}
}

// emit records a validated reply: once per target, and written out if its
// state is one the operator asked for.
func (s *scanner) emit(addr uint32, r Reply, now time.Time) {
	s.c.replies.Add(1)
	pos, ok := s.space.Position(addr, r.Port)
	if !ok {
		// a valid MAC for a target outside the space cannot come from our
		// probes (the MAC covers address and port); count it as invalid
		s.c.invalid.Add(1)
		return
	}
	s.mu.Lock()
	dup := s.dedup.seen(pos)
	s.mu.Unlock()
	if dup {
		s.c.dups.Add(1)
		return
	}
	if r.State == StateClosed {
		s.c.closed.Add(1)
	} else {
		s.c.hits.Add(1)
	}
	if !s.cfg.States[r.State] {
		return
	}
	s.results <- Result{
		IP: target.AddrFrom(addr), Port: r.Port, Proto: s.cfg.Module.Transport, State: r.State,
		TTL: r.TTL, Window: r.Window, Time: now, ScanID: s.cfg.ScanID, Shard: s.cfg.Shard,
	}
}

// writeResults drains the results channel into the output, flushing
// whenever the channel runs empty so a pipe sees results promptly.
func (s *scanner) writeResults() error {
	var err error
	for r := range s.results {
		if err == nil {
			err = s.cfg.Output.Write(&r)
			s.c.results.Add(1)
		}
		if len(s.results) == 0 && err == nil {
			err = s.cfg.Output.Flush()
		}
	}
	if ferr := s.cfg.Output.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// claim reserves n targets under MaxTargets and returns how many may go.
func (s *scanner) claim(n uint64) uint64 {
	if s.cfg.MaxTargets == 0 {
		return n
	}
	after := s.claimed.Add(n)
	if after <= s.cfg.MaxTargets {
		return n
	}
	before := after - n
	if before >= s.cfg.MaxTargets {
		return 0
	}
	return s.cfg.MaxTargets - before
}

func (s *scanner) finish(ctx, sendCtx context.Context, err error) {
	s.sum.End = time.Now()
	s.sum.Seconds = s.sum.End.Sub(s.sum.Start).Seconds()
	s.sum.Targets = s.c.targets.Load()
	s.sum.Sent = s.c.sent.Load()
	s.sum.SendFailures = s.c.sendFailures.Load()
	if s.sum.SendSeconds > 0 {
		s.sum.SendRate = float64(s.sum.Sent) / s.sum.SendSeconds
	}
	s.sum.Replies = s.c.replies.Load()
	s.sum.Hits = s.c.hits.Load()
	s.sum.Closed = s.c.closed.Load()
	s.sum.Duplicates = s.c.dups.Load()
	s.sum.Invalid = s.c.invalid.Load()
	s.sum.RecvPackets = s.c.recvPackets.Load()
	s.sum.RecvDrops = s.c.recvDrops.Load()
	s.sum.Results = s.c.results.Load()
	s.sum.ExcludedInFlight = s.c.excluded.Load()
	if s.cfg.Live != nil {
		v := s.cfg.Live.Version()
		s.sum.ExclusionVersion = &v
	}
	if s.sum.Targets > 0 {
		s.sum.HitRate = float64(s.sum.Hits) / float64(s.sum.Targets)
	}
	switch {
	case err != nil:
		s.sum.StopReason = "error"
		s.sum.StopError = err.Error()
	case s.cfg.Live != nil && s.cfg.Live.Err() != nil:
		s.sum.StopReason = "fail-closed"
		s.sum.StopError = s.cfg.Live.Err().Error()
	case ctx.Err() != nil:
		s.sum.StopReason = "interrupted"
	case sendCtx.Err() != nil:
		s.sum.StopReason = "max-runtime"
	case s.cfg.MaxTargets > 0 && s.sum.Targets >= s.cfg.MaxTargets:
		s.sum.StopReason = "max-targets"
	default:
		s.sum.StopReason = "completed"
	}
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// resolveNetwork fills in the interface, addresses and next-hop MAC that
// raw frames need, from the routing and neighbour tables unless given.
func (s *scanner) resolveNetwork(ctx context.Context) (route.Path, error) {
	first, _ := s.space.At(0)
	dst := target.AddrFrom(first)
	p, err := route.Lookup(ctx, dst)
	if err != nil {
		return p, fmt.Errorf("find the interface for %s (or set --interface, --source-ip and --gateway-mac): %w", dst, err)
	}
	if s.cfg.Interface != "" && s.cfg.Interface != p.Interface {
		ifp, err := route.Interface(s.cfg.Interface)
		if err != nil {
			return p, err
		}
		if s.cfg.GatewayMAC == nil {
			return p, fmt.Errorf("the route to %s leaves through %s, not %s: give --gateway-mac for %s", dst, p.Interface, s.cfg.Interface, s.cfg.Interface)
		}
		p = ifp
	}
	if s.cfg.SrcIP.IsValid() {
		p.SrcIP = s.cfg.SrcIP
	}
	if s.cfg.SrcMAC != nil {
		p.SrcMAC = s.cfg.SrcMAC
	}
	if !p.SrcIP.Is4() {
		return p, fmt.Errorf("interface %s has no IPv4 address: set --source-ip", p.Interface)
	}
	if len(p.SrcMAC) != 6 {
		return p, fmt.Errorf("interface %s has no Ethernet address: raw scanning needs an Ethernet interface", p.Interface)
	}
	switch {
	case s.cfg.GatewayMAC != nil:
		p.NextHopMAC = s.cfg.GatewayMAC
	case !p.Gateway.IsValid():
		return p, fmt.Errorf("%s is on the local link of %s (no gateway): a raw scan sends every frame to one next hop; give --gateway-mac or use --connect", dst, p.Interface)
	case p.NextHopMAC == nil:
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		mac, err := route.ResolveMAC(rctx, p, p.Gateway)
		if err != nil {
			return p, err
		}
		p.NextHopMAC = mac
	}
	return p, nil
}

// status prints a line every interval until stop is closed.
func (s *scanner) status(stop <-chan struct{}) {
	if s.cfg.Status == nil {
		return
	}
	t := time.NewTicker(s.cfg.StatusInterval)
	defer t.Stop()
	start := time.Now()
	var lastSent uint64
	last := start
	expected := (s.space.Size() + uint64(s.cfg.Shards) - 1) / uint64(s.cfg.Shards)
	if s.cfg.MaxTargets > 0 {
		expected = min(expected, s.cfg.MaxTargets)
	}
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			sent := s.c.sent.Load()
			targets := s.c.targets.Load()
			walked := targets + s.c.excluded.Load()
			rate := float64(sent-lastSent) / now.Sub(last).Seconds()
			lastSent, last = sent, now
			frac := min(float64(walked)/float64(max(expected, 1)), 1)
			elapsed := now.Sub(start)
			eta := "-"
			if frac > 0 && frac < 1 {
				eta = fmtDuration(time.Duration(float64(elapsed) * (1 - frac) / frac))
			} else if frac >= 1 {
				eta = "cooldown"
			}
			hits := s.c.hits.Load()
			fmt.Fprintf(s.cfg.Status, "%s %5.1f%%  sent %s (%s/s)  replies %s  hits %s (%.2f%%)  drops %d  ETA %s\n",
				fmtDuration(elapsed), 100*frac, si(float64(sent)), si(rate), si(float64(s.c.replies.Load())),
				si(float64(hits)), 100*float64(hits)/float64(max(targets, 1)), s.c.recvDrops.Load(), eta)
		}
	}
}

func (s *scanner) printSummary() {
	if s.cfg.Status == nil {
		return
	}
	m := s.sum
	fmt.Fprintf(s.cfg.Status, "vantage: scan %s %s after %s (%s mode): %d targets, %d probes at %s/s; %d replies: %d %s, %d closed; hit rate %.3f%%; %d duplicates, %d invalid, %d receive drops, %d send failures\n",
		m.ScanID, m.StopReason, fmtDuration(time.Duration(m.Seconds*float64(time.Second))), m.Mode, m.Targets, m.Sent,
		si(m.SendRate), m.Replies, m.Hits, map[bool]string{true: "open", false: "up"}[s.cfg.Module.UsesPorts],
		m.Closed, 100*m.HitRate, m.Duplicates, m.Invalid, m.RecvDrops, m.SendFailures)
	if m.ExclusionVersion != nil {
		fmt.Fprintf(s.cfg.Status, "vantage: exclusion list version %d in force at the end; %d targets excluded during the scan\n", *m.ExclusionVersion, m.ExcludedInFlight)
	}
}

func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, sec := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, sec)
	}
	return fmt.Sprintf("%d:%02d", m, sec)
}

// si formats a count with a k/M/G suffix.
func si(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
