package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/grab"
	"github.com/vantagehq/vantage/internal/metrics"
	"github.com/vantagehq/vantage/internal/version"
	"github.com/vantagehq/vantage/scan"
	"github.com/vantagehq/vantage/target"
)

type scanFlags struct {
	ports, module, probeArgs                 string
	targetFiles, excludeFiles, excludes      []string
	allowReserved                            []string
	rate, senders, probes                    int
	cooldown, maxRuntime, statusInterval     time.Duration
	maxTargets                               uint64
	seed                                     string
	shards, shard                            int
	iface, srcIP, srcMAC, gwMAC, srcPorts    string
	ttl                                      uint8
	qdiscBypass                              bool
	sendMethod                               string
	connect                                  bool
	connectTimeout                           time.Duration
	concurrency                              int
	output, format, states, metadata, scanID string
	quiet, dryRun, listModules, dedupFull    bool
	server, key, nats                        string
	exclusionsFrom                           string
	exclusionsMaxAge                         time.Duration
	infoPage, infoContact, infoURL           string
	grab                                     bool
	grabFlags                                grabFlags
	metrics                                  string
}

func newScanCmd() *cobra.Command {
	f := &scanFlags{}
	cmd := &cobra.Command{
		Use:   "scan [flags] TARGET...",
		Short: "Find open ports with a stateless SYN scan (or ICMP echo)",
		Long: `Scan sends one probe to every (address, port) of the targets in a
pseudorandom order and reports who answers. It keeps no state per target:
replies are recognised by a keyed MAC carried in the probes. Frames go out
through a memory-mapped AF_PACKET ring, so it needs root or CAP_NET_RAW;
without them it falls back to --connect mode, which uses ordinary sockets.

Results are JSON lines on stdout (see 'vantage help output'); a status line
goes to stderr every second.

Reserved ranges (private, documentation, benchmarking, multicast ...) are
never scanned unless named with --allow-reserved; see 'vantage help
exclusions'.

A scan that publishes to the platform (--server, --nats, or that names a
server with --exclusions-from) obeys the platform's exclusion list, the
approved opt-outs: it loads the list before its first packet and refuses
to start without it, applies every new version before its next packet,
and stops (fail closed, exit status 1) when it has not been able to
confirm its copy for --exclusions-max-age. Scan only networks you are allowed to scan, at a rate they can
bear; the default is 10,000 probes per second.`,
		Example: `  # port 80 of a /16 at the default rate
  sudo vantage scan -p 80 192.0.2.0/16 --allow-reserved 192.0.2.0/16

  # the netlab host farm, three ports, as fast as the machine allows
  sudo ip netns exec nl-scan vantage scan -p 22,80,443 -r 0 198.18.0.0/15 \
      --allow-reserved 198.18.0.0/15

  # who answers ping, addresses from a file, CSV out
  sudo vantage scan -M icmp_echo --targets-file nets.txt --format csv -o up.csv

  # shard 2 of 4 of one scan (every shard gets the same seed)
  sudo vantage scan -p 443 --shards 4 --shard 2 --seed 7 198.51.100.0/24 ...`,
		RunE: func(cmd *cobra.Command, args []string) error { return runScan(cmd, f, args) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&f.ports, "ports", "p", "", "ports to scan: 22,80,443,8000-8100 (required for tcp_syn)")
	fl.StringArrayVarP(&f.targetFiles, "targets-file", "I", nil, "read targets from `FILE` ('-' for stdin); repeatable")
	fl.StringVarP(&f.module, "probe-module", "M", "tcp_syn", "probe module: tcp_syn or icmp_echo (see 'vantage help probe-modules')")
	fl.StringVar(&f.probeArgs, "probe-args", "", "arguments for the probe module (tcp_syn: linux, windows, bsd, mss or none)")
	fl.BoolVar(&f.listModules, "list-probe-modules", false, "list the probe modules and exit")
	fl.IntVarP(&f.rate, "rate", "r", 10000, "probes per second; 0 sends as fast as the machine can")
	fl.IntVar(&f.senders, "senders", 1, "sending threads (each with its own ring)")
	fl.IntVarP(&f.probes, "probes", "P", 1, "probes per target (from distinct source ports)")
	fl.DurationVarP(&f.cooldown, "cooldown", "c", 5*time.Second, "wait this long for late replies after the last probe")
	fl.Uint64VarP(&f.maxTargets, "max-targets", "n", 0, "stop after this many targets (0 = all)")
	fl.DurationVarP(&f.maxRuntime, "max-runtime", "t", 0, "stop sending after this long (0 = no limit)")
	fl.StringVar(&f.seed, "seed", "", "seed of the probe order (required with --shards; random otherwise)")
	fl.IntVar(&f.shards, "shards", 1, "split the scan into this many shards")
	fl.IntVar(&f.shard, "shard", 0, "which shard this scanner sends (0-based)")
	fl.StringArrayVarP(&f.excludeFiles, "exclude-file", "b", nil, "never scan the addresses in `FILE`; repeatable")
	fl.StringArrayVar(&f.excludes, "exclude", nil, "never scan this `CIDR` or range; repeatable")
	fl.StringArrayVar(&f.allowReserved, "allow-reserved", nil, "scan this reserved `CIDR` (private, lab, documentation space); repeatable")
	fl.StringVarP(&f.iface, "interface", "i", "", "send on this interface (default: from the route to the first target)")
	fl.StringVarP(&f.srcIP, "source-ip", "S", "", "source address of probes (default: the interface's)")
	fl.StringVar(&f.srcMAC, "source-mac", "", "source MAC (default: the interface's)")
	fl.StringVarP(&f.gwMAC, "gateway-mac", "G", "", "MAC of the next hop (default: from the neighbour table, or ARP)")
	fl.StringVar(&f.srcPorts, "source-port", "32768-60999", "source port range of probes")
	fl.Uint8Var(&f.ttl, "ttl", 64, "IP TTL of probes")
	fl.BoolVar(&f.qdiscBypass, "qdisc-bypass", true, "hand frames straight to the driver, skipping the kernel's queueing layer")
	fl.StringVar(&f.sendMethod, "send-method", "ring", "how frames reach the kernel: ring (memory-mapped TX ring) or mmsg (sendmmsg batches)")
	fl.BoolVar(&f.connect, "connect", false, "use connect() instead of raw frames (no root needed; slower, no TTL or window)")
	fl.DurationVar(&f.connectTimeout, "connect-timeout", 3*time.Second, "connect mode: give up on a target after this long")
	fl.IntVar(&f.concurrency, "concurrency", 512, "connect mode: connections in flight")
	fl.StringVarP(&f.output, "output", "o", "-", "write results to `FILE` ('-' = stdout)")
	fl.StringVarP(&f.format, "format", "O", "json", "result format: json (JSON lines) or csv")
	fl.StringVar(&f.states, "states", "", "states to report: open, closed, up, all (default open, or up for icmp_echo)")
	fl.StringVar(&f.metadata, "metadata", "", "write the scan's summary as JSON to `FILE`")
	fl.StringVar(&f.scanID, "scan-id", "", "identifier written with every result (default: random)")
	fl.BoolVar(&f.dedupFull, "dedup-full", false, "remember every answering target exactly (memory grows with hits) instead of the last million")
	fl.StringVar(&f.server, "server", "", "also publish results to this vantage server `URL` (needs a key with the scan scope)")
	fl.StringVar(&f.key, "key", os.Getenv("VANTAGE_KEY"), "API key for --server ($VANTAGE_KEY)")
	fl.StringVar(&f.nats, "nats", "", "also publish results straight onto this NATS bus `URL` ($VANTAGE_NATS_TOKEN, $VANTAGE_NATS_CREDS)")
	fl.StringVar(&f.exclusionsFrom, "exclusions-from", "", "obey the exclusion list (opt-outs) of this vantage server `URL` (with --key) even when not publishing to it")
	fl.DurationVar(&f.exclusionsMaxAge, "exclusions-max-age", 5*time.Minute, "stop scanning (fail closed) when the exclusion list has not been confirmed current for this long")
	fl.StringVar(&f.infoPage, "info-page", "", "serve a page on `ADDR` (:80, 192.0.2.10:8080) that says who scans, why and how to opt out; the HTTP User-Agent points to it")
	fl.StringVar(&f.infoContact, "info-contact", "", "the operator's contact `ADDRESS`, shown on the info page")
	fl.StringVar(&f.infoURL, "info-url", "", "the info page's public `URL` for the User-Agent (default: http:// and the scanner's source address)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no status line or summary on stderr")
	fl.DurationVar(&f.statusInterval, "status-interval", time.Second, "time between status lines")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics (vantage_scan_*) on `ADDR`/metrics while the scan runs (127.0.0.1:9101; port 0 picks one, printed on stderr)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the targets in probe order instead of sending anything")
	fl.BoolVar(&f.grab, "grab", false, "identify every open port found (see 'vantage grab --help'); output is then one service per line")
	f.grabFlags.register(cmd, "grab-")
	return cmd
}

func runScan(cmd *cobra.Command, f *scanFlags, args []string) error {
	stderr := cmd.ErrOrStderr()
	if f.listModules {
		_, err := io.WriteString(cmd.OutOrStdout(), probeModuleList())
		return err
	}
	log, err := logger(cmd)
	if err != nil {
		return err
	}
	// Every flag is checked before any target is read, so a mistake is
	// reported the same way whatever the targets are.
	cfg, err := f.config()
	if err != nil {
		return err
	}
	cfg.Log = log

	targets, err := readTargets(cmd.InOrStdin(), args, f.targetFiles)
	if err != nil {
		return err
	}
	if targets.Empty() {
		return usagef("no targets: give addresses, CIDRs or ranges as arguments, --targets-file FILE, or '-' for stdin")
	}
	pol, err := f.policy()
	if err != nil {
		return err
	}
	// the platform's exclusion list, before anything is sent: without it,
	// no scan
	var follower *listFollower
	src, err := f.exclusionSource(cmd.Context(), log)
	if err != nil {
		return err
	}
	if src != nil {
		defer src.Close()
		if follower, err = loadExclusions(cmd.Context(), src, f.exclusionsMaxAge, log); err != nil {
			return err
		}
		pol.Exclude(follower.labeled()...)
		if !f.quiet {
			follower.status = stderr
			fmt.Fprintf(stderr, "vantage: obeying exclusion list version %d from %s (%d ranges), checked before every probe\n", follower.cur.Version, src, len(follower.cur.Entries))
		}
	}
	allowed, dropped := pol.Apply(targets)
	for _, d := range dropped {
		if d.Reserved {
			fmt.Fprintf(stderr, "vantage: skipping %d target addresses in %s (%s); scan them with --allow-reserved %s\n", d.Count, d.Range, d.Reason, d.Range)
		} else if !f.quiet {
			fmt.Fprintf(stderr, "vantage: skipping %d target addresses excluded by your exclusion lists\n", d.Count)
		}
	}
	if allowed.Empty() {
		return usagef("no target address left to scan after exclusions")
	}
	ports := []uint16{0} // address-only probes
	if cfg.Module.UsesPorts {
		ports, _ = target.ParsePorts(f.ports) // checked in config
	}
	if cfg.Space, err = target.NewSpace(allowed, ports); err != nil {
		return usageError{err}
	}

	if f.dryRun {
		return dryRun(cmd.OutOrStdout(), cfg.Space, cfg.Seed, f.shard, f.shards, f.maxTargets, cfg.Module.UsesPorts)
	}

	// metrics: this scan's own server (--metrics), and the process's
	// (a scanner worker's, through the context); each sums every scan
	run := &scanRun{rate: f.rate, expected: (cfg.Space.Size() + uint64(f.shards) - 1) / uint64(f.shards)}
	if f.maxTargets > 0 {
		run.expected = min(run.expected, f.maxTargets)
	}
	cfg.Progress = &run.progress
	trackers := []*scanMetrics{}
	if m := scanMetricsFrom(cmd.Context()); m != nil {
		trackers = append(trackers, m)
	}
	if f.metrics != "" {
		reg := metrics.NewRegistry("scan")
		m := newScanMetrics(reg)
		stop, err := startMetrics(cmd.Context(), f.metrics, reg, f.quiet, log, stderr)
		if err != nil {
			return err
		}
		defer stop()
		trackers = append(trackers, m)
	}
	for _, m := range trackers {
		m.begin(run)
		defer m.end(run) // after the publisher's Close: its last records count
	}

	out := cmd.OutOrStdout()
	if f.output != "-" {
		file, err := os.Create(f.output)
		if err != nil {
			return fmt.Errorf("open output: %w", err)
		}
		defer file.Close()
		out = file
	}
	if cfg.Output, err = scan.NewWriter(f.format, out); err != nil {
		return usageError{err}
	}
	if follower != nil {
		live := follower.live
		cfg.Live = live
		f.grabFlags.allowed = func(a netip.Addr) bool {
			if a = a.Unmap(); a.Is4() {
				return live.Allowed(target.AddrTo(a))
			}
			select {
			case <-live.Stopped():
				return false
			default:
				return true
			}
		}
		fctx, stopFollow := context.WithCancel(cmd.Context())
		followDone := make(chan struct{})
		go func() {
			defer close(followDone)
			follower.run(fctx)
		}()
		defer func() {
			stopFollow()
			<-followDone
		}()
	}
	if f.infoPage != "" {
		first, _ := cfg.Space.At(0)
		d := infoData{Contact: f.infoContact, OptOutURL: optOutURL(f.server), Rate: rateText(f.rate), Ports: f.ports, ScanID: cfg.ScanID}
		var version func() uint64
		if follower != nil {
			version = follower.live.Version
			if d.OptOutURL == "" {
				d.OptOutURL = optOutURL(f.exclusionsFrom)
			}
		}
		srcAddr := infoSource(cmd.Context(), f.srcIP, target.AddrFrom(first))
		d.Source = srcAddr.String()
		if !srcAddr.IsValid() {
			d.Source = "this address"
		}
		publicURL := f.infoURL
		if publicURL == "" {
			ap, err := netip.ParseAddrPort(f.infoPage)
			if err != nil { // ":80" and "host:80" are not AddrPorts
				_, port, _ := net.SplitHostPort(f.infoPage)
				n, _ := strconv.ParseUint(port, 10, 16)
				ap = netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(n))
			}
			if ap.Port() != 0 {
				publicURL = infoURL(ap, srcAddr)
			}
		}
		page, err := startInfoPage(f.infoPage, publicURL, d, version)
		if err != nil {
			return err
		}
		defer page.Close()
		if !cmd.Flags().Changed("grab-user-agent") {
			f.grabFlags.userAgent = grab.UserAgentFor(page.URL)
		}
		log.Info("info page", "listen", page.Addr().String(), "url", page.URL)
		if !f.quiet {
			fmt.Fprintf(stderr, "vantage: serving the info page on %s as %s\n", page.Addr(), page.URL)
		}
	}
	var pipe *grabPipe
	if f.grab {
		if f.format != "json" {
			return usagef("--grab writes JSON lines; drop --format %s", f.format)
		}
		if err := f.grabFlags.check(); err != nil {
			return err
		}
		if f.scanID == "" {
			f.scanID = newScanID()
			cfg.ScanID = f.scanID
		}
		gr, err := f.grabFlags.grabber(pol, f.scanID, stderr)
		if err != nil {
			return err
		}
		grabGC(cmd.Context())
		pipe = newGrabPipe(gr, out, f.grabFlags.concurrency)
		cfg.Output = grabWriter{ctx: cmd.Context(), pipe: pipe}
		run.setPipe(pipe)
	}
	if f.server != "" || f.nats != "" {
		pub, err := newPublisher(cmd.Context(), f.server, f.key, f.nats, log, stderr)
		if err != nil {
			return err
		}
		defer func() {
			if err := pub.Close(); err != nil {
				fmt.Fprintf(stderr, "vantage: %v\n", err)
			}
		}()
		run.setPublisher(pub)
		if pipe != nil {
			pipe.pub = pub // grabbed services, not bare SYN-ACKs
		} else {
			cfg.Output = teeWriter{cfg.Output, pub}
		}
	}
	if !f.quiet {
		cfg.Status = stderr
		fmt.Fprintf(stderr, "vantage: scanning %d targets (%d addresses x %d ports), shard %d of %d, seed %d, at %s\n",
			(cfg.Space.Size()+uint64(f.shards)-1)/uint64(f.shards), cfg.Space.Addresses(), len(ports), f.shard, f.shards, cfg.Seed, rateText(f.rate))
	}

	run.started()
	sum, err := scan.Run(cmd.Context(), cfg)
	if pipe != nil {
		stop := func() {}
		if !f.quiet {
			fmt.Fprintf(stderr, "vantage: scan done, grabbing the %d services still queued\n", pipe.queued())
			stop = pipe.status(stderr, f.statusInterval)
		}
		pipe.close()
		stop()
		if !f.quiet {
			pipe.summary(stderr)
		}
		if err == nil {
			err = pipe.err
		}
		if err == nil && cfg.Live != nil {
			err = cfg.Live.Err() // the list went stale while grabbing: the rest was refused
		}
	}
	if sum != nil && f.metadata != "" {
		if merr := writeMetadata(f.metadata, sum); merr != nil && err == nil {
			err = merr
		}
	}
	if err != nil {
		return err
	}
	if sum.StopReason == "interrupted" {
		return errInterrupted
	}
	return nil
}

// config checks every flag and builds the scan configuration, without the
// target space and the output.
func (f *scanFlags) config() (scan.Config, error) {
	mod, err := scan.Lookup(f.module)
	if err != nil {
		return scan.Config{}, usageError{err}
	}
	// a module checks its arguments when it is made: placeholder addresses will do
	if _, err := mod.New(scan.Env{Args: f.probeArgs, Probes: 1}); err != nil {
		return scan.Config{}, usagef("--probe-args: %v", err)
	}
	if mod.UsesPorts {
		if f.ports == "" {
			return scan.Config{}, usagef("no ports: give -p/--ports, e.g. -p 22,80,443 (see 'vantage help targets')")
		}
		if _, err := target.ParsePorts(f.ports); err != nil {
			return scan.Config{}, usageError{err}
		}
	} else if f.ports != "" {
		return scan.Config{}, usagef("probe module %s takes no ports: drop -p/--ports", mod.Name)
	}
	cfg := scan.Config{
		Module: mod, ProbeArgs: f.probeArgs, Shard: f.shard, Shards: f.shards,
		Probes: f.probes, Rate: f.rate, Senders: f.senders, Cooldown: f.cooldown, MaxTargets: f.maxTargets,
		MaxRuntime: f.maxRuntime, Interface: f.iface, TTL: f.ttl, QdiscBypass: f.qdiscBypass, SendMethod: f.sendMethod,
		Connect: f.connect, ConnectTimeout: f.connectTimeout, Concurrency: f.concurrency,
		DedupFull: f.dedupFull, ScanID: f.scanID, StatusInterval: f.statusInterval,
	}
	switch {
	case f.seed != "":
		if cfg.Seed, err = strconv.ParseUint(f.seed, 0, 64); err != nil {
			return cfg, usagef("--seed %q: not an unsigned integer", f.seed)
		}
	case f.shards > 1:
		return cfg, usagef("--shards needs --seed: every shard of a scan must use the same seed")
	default:
		var b [8]byte
		rand.Read(b[:])
		cfg.Seed = binary.LittleEndian.Uint64(b[:])
	}
	if f.shards < 1 || f.shard < 0 || f.shard >= f.shards {
		return cfg, usagef("--shard %d --shards %d: want 0 <= shard < shards", f.shard, f.shards)
	}
	if f.exclusionsMaxAge <= 0 {
		return cfg, usagef("--exclusions-max-age %v: must be positive", f.exclusionsMaxAge)
	}
	if f.sendMethod != "mmsg" && f.sendMethod != "ring" {
		return cfg, usagef("--send-method %q: want ring or mmsg", f.sendMethod)
	}
	if f.probes < 1 || f.senders < 1 || f.concurrency < 1 || f.rate < 0 {
		return cfg, usagef("--probes, --senders and --concurrency must be at least 1, --rate at least 0")
	}
	if f.srcIP != "" {
		a, err := netip.ParseAddr(f.srcIP)
		if err != nil || !a.Is4() {
			return cfg, usagef("--source-ip %q: not an IPv4 address", f.srcIP)
		}
		cfg.SrcIP = a
	}
	if cfg.SrcMAC, err = parseMAC("--source-mac", f.srcMAC); err != nil {
		return cfg, err
	}
	if cfg.GatewayMAC, err = parseMAC("--gateway-mac", f.gwMAC); err != nil {
		return cfg, err
	}
	if cfg.SrcPortFirst, cfg.SrcPortLast, err = parsePortRange(f.srcPorts); err != nil {
		return cfg, usagef("--source-port %q: %v", f.srcPorts, err)
	}
	states := f.states
	if states == "" {
		states = "open,up"
	}
	if cfg.States, err = scan.ParseStates(states); err != nil {
		return cfg, usagef("--states: %v", err)
	}
	if _, err := scan.NewWriter(f.format, io.Discard); err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

// policy builds the exclusion policy from the flags and files.
func (f *scanFlags) policy() (*target.Policy, error) {
	pol := target.NewPolicy()
	for _, a := range f.allowReserved {
		r, err := target.ParseRange(a)
		if err != nil {
			return nil, usagef("--allow-reserved %q: %v", a, err)
		}
		if err := pol.AllowReserved(r); err != nil {
			return nil, usageError{err}
		}
	}
	for _, e := range f.excludes {
		set, err := target.ParseTargetList([]string{e}, "--exclude")
		if err != nil {
			return nil, usageError{err}
		}
		for _, r := range set.Ranges() {
			pol.Exclude(target.Labeled{Range: r, Reason: "--exclude " + e})
		}
	}
	for _, name := range f.excludeFiles {
		ls, err := readLabeled(name)
		if err != nil {
			return nil, err
		}
		pol.Exclude(ls...)
	}
	return pol, nil
}

func rateText(rate int) string {
	if rate == 0 {
		return "full speed"
	}
	return fmt.Sprintf("%d probes/s", rate)
}

// readTargets gathers targets from arguments ('-' = stdin) and files.
func readTargets(stdin io.Reader, args, files []string) (*target.Set, error) {
	all := &target.Set{}
	stdinUsed := false
	readFrom := func(name string) error {
		var r io.Reader
		if name == "-" {
			if stdinUsed {
				return usagef("standard input named twice as a target source")
			}
			stdinUsed = true
			r = stdin
		} else {
			file, err := os.Open(name)
			if err != nil {
				return usagef("targets file: %v", err)
			}
			defer file.Close()
			r = bufio.NewReaderSize(file, 1<<16)
		}
		set, err := target.ParseTargets(r, name)
		if err != nil {
			return usageError{err}
		}
		all.AddSet(set)
		return nil
	}
	var tokens []string
	for _, a := range args {
		if a == "-" {
			if err := readFrom("-"); err != nil {
				return nil, err
			}
			continue
		}
		tokens = append(tokens, a)
	}
	set, err := target.ParseTargetList(tokens, "argument")
	if err != nil {
		return nil, usageError{err}
	}
	all.AddSet(set)
	for _, name := range files {
		if err := readFrom(name); err != nil {
			return nil, err
		}
	}
	return all, nil
}

func readLabeled(name string) ([]target.Labeled, error) {
	file, err := os.Open(name)
	if err != nil {
		return nil, usagef("exclusion file: %v", err)
	}
	defer file.Close()
	ls, err := target.ParseLabeled(bufio.NewReaderSize(file, 1<<16), name)
	if err != nil {
		return nil, usageError{err}
	}
	return ls, nil
}

func parseMAC(flag, s string) (net.HardwareAddr, error) {
	if s == "" {
		return nil, nil
	}
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, usagef("%s %q: not an Ethernet MAC address (like 02:00:5e:10:00:01)", flag, s)
	}
	return mac, nil
}

func parsePortRange(s string) (uint16, uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	if err != nil || a == 0 {
		return 0, 0, errors.New("want a port or a range like 32768-60999")
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16); err != nil || b < a {
			return 0, 0, errors.New("want a port or a range like 32768-60999")
		}
	}
	return uint16(a), uint16(b), nil
}

// dryRun prints the targets of one shard in probe order.
func dryRun(w io.Writer, space *target.Space, seed uint64, shard, shards int, limit uint64, ports bool) error {
	cyc, err := target.NewCycle(space.Size(), seed)
	if err != nil {
		return err
	}
	walk, err := cyc.Shard(shard, shards)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	var buf []byte
	n := uint64(0)
	for k, ok := walk.Next(); ok && (limit == 0 || n < limit); k, ok = walk.Next() {
		a, p := space.At(k)
		buf = target.AddrFrom(a).AppendTo(buf[:0])
		if ports {
			buf = append(buf, ':')
			buf = strconv.AppendUint(buf, uint64(p), 10)
		}
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
		n++
	}
	return bw.Flush()
}

func writeMetadata(name string, sum *scan.Summary) error {
	doc := struct {
		*scan.Summary
		Vantage version.Info `json:"vantage"`
		Args    []string     `json:"args"`
	}{sum, version.Get(), os.Args[1:]}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(name, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	return nil
}

// scanRun is one scan as its metrics see it.
type scanRun struct {
	progress scan.Progress
	rate     int
	expected uint64

	mu    sync.Mutex
	start time.Time
	pipe  *grabPipe
	pub   *publisher
}

func (r *scanRun) started() {
	r.mu.Lock()
	r.start = time.Now()
	r.mu.Unlock()
}

func (r *scanRun) setPipe(p *grabPipe) {
	r.mu.Lock()
	r.pipe = p
	r.mu.Unlock()
}

func (r *scanRun) setPublisher(p *publisher) {
	r.mu.Lock()
	r.pub = p
	r.mu.Unlock()
}

// scanTotals are the counters of one scan, or the sum of several.
type scanTotals struct {
	scan.Counts
	grabs, identified, recognised int64
	grabErrors, protocols         map[string]int64
	published, batches, failures  uint64
}

func (r *scanRun) totals() scanTotals {
	t := scanTotals{Counts: r.progress.Counts()}
	r.mu.Lock()
	pipe, pub := r.pipe, r.pub
	r.mu.Unlock()
	if pipe != nil {
		st := pipe.g.Stats()
		pipe.outMu.Lock()
		t.grabs = pipe.done
		pipe.outMu.Unlock()
		t.identified, t.recognised, t.grabErrors, t.protocols = st.Identified, st.Recognised, st.Errors, st.Protocols
	}
	if pub != nil {
		t.batches, t.published, t.failures = pub.batcher.Sent()
	}
	return t
}

func (t *scanTotals) add(o scanTotals) {
	c, d := &t.Counts, o.Counts
	c.Targets += d.Targets
	c.Sent += d.Sent
	c.SendFailures += d.SendFailures
	c.Replies += d.Replies
	c.Hits += d.Hits
	c.Closed += d.Closed
	c.Duplicates += d.Duplicates
	c.Invalid += d.Invalid
	c.Results += d.Results
	c.RecvPackets += d.RecvPackets
	c.RecvDrops += d.RecvDrops
	c.Excluded += d.Excluded
	t.grabs += o.grabs
	t.identified += o.identified
	t.recognised += o.recognised
	t.published += o.published
	t.batches += o.batches
	t.failures += o.failures
	for k, v := range o.grabErrors {
		if t.grabErrors == nil {
			t.grabErrors = map[string]int64{}
		}
		t.grabErrors[k] += v
	}
	for k, v := range o.protocols {
		if t.protocols == nil {
			t.protocols = map[string]int64{}
		}
		t.protocols[k] += v
	}
}

// scanMetrics exports the counters of the scans run in this process as
// vantage_scan_*, summed over them: those of one `vantage scan`, or those
// of every job of a `vantage scanner` worker (see withScanMetrics).
type scanMetrics struct {
	mu      sync.Mutex
	ended   scanTotals
	scans   uint64
	running map[*scanRun]bool
}

// newScanMetrics registers the scan metrics on reg.
func newScanMetrics(reg prometheus.Registerer) *scanMetrics {
	m := &scanMetrics{running: map[*scanRun]bool{}}
	reg.MustRegister(m)
	return m
}

type scanMetricsKey struct{}

// withScanMetrics makes every scan run with ctx, in this process (the
// jobs of a worker, through inProcess), count in m as well.
func withScanMetrics(ctx context.Context, m *scanMetrics) context.Context {
	return context.WithValue(ctx, scanMetricsKey{}, m)
}

func scanMetricsFrom(ctx context.Context) *scanMetrics {
	m, _ := ctx.Value(scanMetricsKey{}).(*scanMetrics)
	return m
}

func (m *scanMetrics) begin(r *scanRun) {
	m.mu.Lock()
	m.running[r] = true
	m.mu.Unlock()
}

// end folds a finished scan into the totals.
func (m *scanMetrics) end(r *scanRun) {
	t := r.totals()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running[r] {
		delete(m.running, r)
		m.ended.add(t)
		m.scans++
	}
}

func scanDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("vantage_scan_"+name, help, labels, nil)
}

var (
	scanCounterDescs = []struct {
		d *prometheus.Desc
		v func(*scanTotals) float64
	}{
		{scanDesc("targets_total", "Targets probed (address and port pairs, or addresses for icmp_echo)."), func(t *scanTotals) float64 { return float64(t.Targets) }},
		{scanDesc("probes_sent_total", "Probes sent (connects started in connect mode)."), func(t *scanTotals) float64 { return float64(t.Sent) }},
		{scanDesc("send_failures_total", "Probes the kernel would not send, or connects that failed locally (out of descriptors or ports)."), func(t *scanTotals) float64 { return float64(t.SendFailures) }},
		{scanDesc("replies_total", "Validated replies, duplicates included."), func(t *scanTotals) float64 { return float64(t.Replies) }},
		{scanDesc("hits_total", "Unique targets found open (or up, for icmp_echo)."), func(t *scanTotals) float64 { return float64(t.Hits) }},
		{scanDesc("closed_total", "Unique targets found closed."), func(t *scanTotals) float64 { return float64(t.Closed) }},
		{scanDesc("duplicate_replies_total", "Replies from targets that had already answered."), func(t *scanTotals) float64 { return float64(t.Duplicates) }},
		{scanDesc("invalid_replies_total", "Packets to the scanner that failed validation (not answers to our probes)."), func(t *scanTotals) float64 { return float64(t.Invalid) }},
		{scanDesc("results_total", "Results written (the states asked for with --states)."), func(t *scanTotals) float64 { return float64(t.Results) }},
		{scanDesc("recv_packets_total", "Packets the kernel's filter passed to the receive ring (raw mode)."), func(t *scanTotals) float64 { return float64(t.RecvPackets) }},
		{scanDesc("recv_drops_total", "Packets the kernel dropped because the receive ring was full (raw mode): lost replies."), func(t *scanTotals) float64 { return float64(t.RecvDrops) }},
		{scanDesc("excluded_total", "Targets not probed because a version of the exclusion list (opt-outs) that arrived during the scan excluded them."), func(t *scanTotals) float64 { return float64(t.Excluded) }},
		{scanDesc("grabs_total", "Services grabbed (--grab)."), func(t *scanTotals) float64 { return float64(t.grabs) }},
		{scanDesc("grab_identified_total", "Grabbed services whose product was identified."), func(t *scanTotals) float64 { return float64(t.identified) }},
		{scanDesc("grab_recognised_total", "Grabbed services whose protocol was recognised."), func(t *scanTotals) float64 { return float64(t.recognised) }},
		{scanDesc("published_records_total", "Records the server or bus acknowledged (--server, --nats)."), func(t *scanTotals) float64 { return float64(t.published) }},
		{scanDesc("published_batches_total", "Batches the server or bus acknowledged."), func(t *scanTotals) float64 { return float64(t.batches) }},
		{scanDesc("publish_failures_total", "Failed attempts to publish a batch; each is retried."), func(t *scanTotals) float64 { return float64(t.failures) }},
	}
	scanGrabErrors    = scanDesc("grab_errors_total", "Grabs that ended in an error, by kind (timeout, refused, reset, eof, too-large, excluded, not-recognised, other).", "kind")
	scanGrabProtocols = scanDesc("grab_protocols_total", "Grabbed services by protocol.", "protocol")
	scanScans         = scanDesc("scans_total", "Scans finished (a worker's jobs).")
	scanRunning       = scanDesc("running", "Scans running now.")
	scanExpected      = scanDesc("targets_expected", "Targets the running scans probe in all (their shard, capped by --max-targets): progress is targets_total over this.")
	scanRateLimit     = scanDesc("rate_limit_pps", "Probes per second the running scans may send in all (0 = no limit).")
	scanSendRate      = scanDesc("send_rate_pps", "Probes per second the running scans have sent on average since they started; rate(vantage_scan_probes_sent_total[1m]) is the recent rate.")
	scanGrabQueue     = scanDesc("grab_queue", "Open ports waiting to be grabbed.")
)

// Describe is part of prometheus.Collector.
func (m *scanMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range scanCounterDescs {
		ch <- c.d
	}
	for _, d := range []*prometheus.Desc{scanGrabErrors, scanGrabProtocols, scanScans, scanRunning, scanExpected, scanRateLimit, scanSendRate, scanGrabQueue} {
		ch <- d
	}
}

// Collect is part of prometheus.Collector.
func (m *scanMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	t := m.ended
	t.grabErrors, t.protocols = maps.Clone(t.grabErrors), maps.Clone(t.protocols)
	scans := m.scans
	var running []*scanRun
	for r := range m.running {
		running = append(running, r)
	}
	m.mu.Unlock()

	var expected, rateLimit, sendRate, queued float64
	now := time.Now()
	for _, r := range running {
		rt := r.totals()
		t.add(rt)
		expected += float64(r.expected)
		rateLimit += float64(r.rate)
		r.mu.Lock()
		start, pipe := r.start, r.pipe
		r.mu.Unlock()
		if !start.IsZero() {
			sendRate += float64(rt.Sent) / max(now.Sub(start).Seconds(), 1e-3)
		}
		if pipe != nil {
			queued += float64(pipe.queued())
		}
	}
	for _, c := range scanCounterDescs {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, c.v(&t))
	}
	for k, v := range t.grabErrors {
		ch <- prometheus.MustNewConstMetric(scanGrabErrors, prometheus.CounterValue, float64(v), k)
	}
	for k, v := range t.protocols {
		ch <- prometheus.MustNewConstMetric(scanGrabProtocols, prometheus.CounterValue, float64(v), k)
	}
	ch <- prometheus.MustNewConstMetric(scanScans, prometheus.CounterValue, float64(scans))
	ch <- prometheus.MustNewConstMetric(scanRunning, prometheus.GaugeValue, float64(len(running)))
	ch <- prometheus.MustNewConstMetric(scanExpected, prometheus.GaugeValue, expected)
	ch <- prometheus.MustNewConstMetric(scanRateLimit, prometheus.GaugeValue, rateLimit)
	ch <- prometheus.MustNewConstMetric(scanSendRate, prometheus.GaugeValue, sendRate)
	ch <- prometheus.MustNewConstMetric(scanGrabQueue, prometheus.GaugeValue, queued)
}
