package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/internal/memtrim"
	"github.com/vantagehq/vantage/internal/metrics"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/sensor"
	"github.com/vantagehq/vantage/sensor/respond"
)

// sensorUDPPorts are the UDP ports the sensor answers (the others it only
// records): DNS and SIP.
var sensorUDPPorts = []uint16{53, 5060}

type sensorFlags struct {
	iface, name, output  string
	addresses            []string
	listenPort           uint16
	redirect, printRules bool
	maxConns, perSource  int
	connTimeout          time.Duration
	server, key, nats    string
	spool                string
	actors, actorRanges  []string
	quiet                bool
	statusInterval       time.Duration
	metrics              string
}

func newSensorCmd() *cobra.Command {
	f := &sensorFlags{}
	cmd := &cobra.Command{
		Use:   "sensor --interface IF --addresses CIDR... [--server URL | --nats URL | -o FILE]",
		Short: "Listen on addresses that host nothing and record everything that reaches them",
		Long: `Sensor owns addresses where nothing legitimate lives and records every
packet that reaches them: every TCP SYN (also of scans that never complete a
handshake), ICMP, UDP, with the header features that tell tools apart (TTL,
IP ID, window, TCP options, sequence number). Packets are read from
memory-mapped AF_PACKET rings, so nothing is sampled.

Connections to any TCP port of those addresses are redirected (nftables) to
one local port and answered by low-interaction responders that draw out the
client's next message (an HTTP request, a TLS ClientHello, an SSH client
banner, attempted logins); a connection event has "handshake": true, which a
spoofed source can never produce.

Events go to a server (--server, or --nats for the bus) and/or as JSON lines
to a file (-o). It needs root (raw capture, nftables). Route the addresses
to this machine (or assign them) before starting.`,
		Example: `  # the netlab sensor: its dark /25, events to a server in the same namespace
  sudo ip netns exec nl-sensor vantage sensor -i sensor0 --addresses 198.51.100.128/25 \
      --server http://127.0.0.1:8080 --key $(cat data/admin.key)

  # print the nftables redirect instead of loading it
  vantage sensor --addresses 192.0.2.0/24 --print-redirect`,
		RunE: func(cmd *cobra.Command, args []string) error { return runSensor(cmd, f) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&f.iface, "interface", "i", "", "interface the addresses' traffic arrives on")
	fl.StringArrayVarP(&f.addresses, "addresses", "a", nil, "`CIDR` the sensor owns; repeatable, IPv4 and IPv6")
	fl.StringVar(&f.name, "name", "", "sensor name recorded in every event (default: the host name)")
	fl.Uint16Var(&f.listenPort, "listen-port", 65534, "local port redirected connections arrive on")
	fl.BoolVar(&f.redirect, "redirect", true, "load the nftables redirect of every TCP port to --listen-port (and remove it at exit)")
	fl.BoolVar(&f.printRules, "print-redirect", false, "print the nftables redirect and exit")
	fl.IntVar(&f.maxConns, "max-conns", 4096, "connections served at once; more are closed at once (their SYN is still recorded)")
	fl.IntVar(&f.perSource, "per-source", 32, "connections served at once per source address")
	fl.DurationVar(&f.connTimeout, "conn-timeout", 10*time.Second, "time a responder may spend on one connection")
	fl.StringVar(&f.server, "server", "", "send events to this vantage server `URL` (a key with the scan scope)")
	fl.StringVar(&f.key, "key", os.Getenv("VANTAGE_KEY"), "API key for --server ($VANTAGE_KEY)")
	fl.StringVar(&f.nats, "nats", "", "send events straight onto this NATS bus `URL`")
	fl.StringVar(&f.spool, "spool", "/var/spool/vantage-sensor", "keep events in this `DIR` until the server or bus has them (survives outages and restarts)")
	fl.StringVarP(&f.output, "output", "o", "", "also write events as JSON lines to `FILE` ('-' = stdout)")
	fl.StringArrayVar(&f.actors, "actors", nil, "add the actors of this `FILE` (TOML, see docs/tags.md) to the built-in ones; repeatable")
	fl.StringArrayVar(&f.actorRanges, "actor-ranges", nil, "import a published list of an actor's addresses: `ACTOR=FILE` (one IP, CIDR or range per line); repeatable")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no status line on stderr")
	fl.DurationVar(&f.statusInterval, "status-interval", 10*time.Second, "time between status lines")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics (vantage_sensor_*) on `ADDR`/metrics (127.0.0.1:9102; port 0 picks one, printed on stderr)")
	return cmd
}

func runSensor(cmd *cobra.Command, f *sensorFlags) error {
	var prefixes []netip.Prefix
	for _, a := range f.addresses {
		for _, part := range strings.Split(a, ",") {
			part = strings.TrimSpace(part)
			p, err := netip.ParsePrefix(part)
			if err != nil {
				addr, aerr := netip.ParseAddr(part)
				if aerr != nil {
					return usagef("--addresses %q: want a CIDR or an address", part)
				}
				p = netip.PrefixFrom(addr, addr.BitLen())
			}
			prefixes = append(prefixes, p.Masked())
		}
	}
	if len(prefixes) == 0 {
		return usagef("--addresses: name the CIDRs the sensor owns")
	}
	if f.printRules {
		_, err := io.WriteString(cmd.OutOrStdout(), sensor.RedirectRules(prefixes, f.listenPort, sensorUDPPorts...))
		return err
	}
	if f.iface == "" {
		return usagef("--interface: name the interface the addresses' traffic arrives on")
	}
	if f.server == "" && f.nats == "" && f.output == "" {
		return usagef("events need somewhere to go: --server URL, --nats URL or -o FILE")
	}
	log, err := logger(cmd)
	if err != nil {
		return err
	}
	if f.name == "" {
		f.name, _ = os.Hostname()
	}
	var sinks []func(record.Event)
	var pub *publisher
	if f.output != "" {
		w := cmd.OutOrStdout()
		if f.output != "-" {
			file, err := os.Create(f.output)
			if err != nil {
				return fmt.Errorf("open output: %w", err)
			}
			defer file.Close()
			w = file
		}
		bw := bufio.NewWriterSize(w, 64<<10)
		var mu sync.Mutex
		defer func() { mu.Lock(); bw.Flush(); mu.Unlock() }()
		enc := json.NewEncoder(bw)
		sinks = append(sinks, func(ev record.Event) {
			mu.Lock()
			enc.Encode(ev)
			mu.Unlock()
		})
		// events should reach a file promptly even when traffic is thin
		stopFlush := make(chan struct{})
		defer close(stopFlush)
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopFlush:
					return
				case <-t.C:
					mu.Lock()
					bw.Flush()
					mu.Unlock()
				}
			}
		}()
	}
	if f.server != "" || f.nats != "" {
		// a short batching delay bounds what a crash can take with it; the
		// spool keeps the rest across outages and restarts
		pub, err = newStreamPublisher(cmd.Context(), pubConfig{role: "sensor", stream: bus.StreamEvents, endpoint: "events",
			server: f.server, key: f.key, nats: f.nats, spoolDir: f.spool, maxDelay: 200 * time.Millisecond}, log, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		defer func() {
			if err := pub.Close(); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "vantage: %v\n", err)
			}
		}()
		sinks = append(sinks, func(ev record.Event) { pub.batcher.AddEvent(ev) })
	}
	tagger, err := sensorTagger(f.actors, f.actorRanges)
	if err != nil {
		return err
	}
	s, err := sensor.New(sensor.Config{
		Name: f.name, Interface: f.iface, Addresses: prefixes, ListenPort: f.listenPort, Redirect: f.redirect,
		MaxConns: f.maxConns, PerSource: f.perSource, ConnTimeout: f.connTimeout, Log: log,
		Handler: sensorHandler(f.connTimeout), UDPPorts: sensorUDPPorts, UDPHandler: respond.HandlePacket,
		Emit: func(ev record.Event) {
			tagger(&ev)
			for _, sink := range sinks {
				sink(ev)
			}
		},
	})
	if err != nil {
		return usageError{err}
	}
	stderr := cmd.ErrOrStderr()
	if f.metrics != "" {
		reg := metrics.NewRegistry("sensor")
		newSensorMetrics(reg, s.Stats(), pub)
		stop, err := startMetrics(cmd.Context(), f.metrics, reg, f.quiet, log, stderr)
		if err != nil {
			return err
		}
		defer stop()
	}
	if !f.quiet {
		fmt.Fprintf(stderr, "vantage: sensor %s on %s for %s, connections redirected to :%d\n", f.name, f.iface, joinPrefixes(prefixes), f.listenPort)
		stop := sensorStatus(stderr, s, f.statusInterval)
		defer stop()
	}
	// the sensor runs none of the server's code (nor DuckDB's) that the
	// one binary carries: give back those pages before the rings come
	if n, err := memtrim.Executable(); err != nil {
		log.Warn("sensor: keeping the binary's pages", "err", err)
	} else {
		log.Debug("sensor: dropped the binary's resident pages", "mapped", n)
	}
	err = s.Run(cmd.Context())
	st := s.Stats()
	if !f.quiet {
		fmt.Fprintf(stderr, "vantage: sensor stopped: %d packets, %d events, %d connections (%d shed over budget), %d ring drops\n",
			st.Packets.Load(), st.Events.Load(), st.Conns.Load(), st.ConnsShed.Load(), st.RingDrops.Load())
	}
	if err != nil {
		return err
	}
	if cmd.Context().Err() != nil {
		return errInterrupted
	}
	return nil
}

func joinPrefixes(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

func sensorStatus(w io.Writer, s *sensor.Sensor, every time.Duration) func() {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		var last uint64
		for {
			select {
			case <-done:
				return
			case <-t.C:
				st := s.Stats()
				ev := st.Events.Load()
				fmt.Fprintf(w, "vantage: sensor: %d events (%.0f/s), %d packets, %d connections, %d shed, %d ring drops\n",
					ev, float64(ev-last)/every.Seconds(), st.Packets.Load(), st.Conns.Load(), st.ConnsShed.Load(), st.RingDrops.Load())
				last = ev
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// sensorMetrics exports a sensor's counters and its publisher's (the
// batcher's and the spool's) as vantage_sensor_*.
type sensorMetrics struct {
	stats *sensor.Stats
	pub   *publisher // nil when events only go to a file
}

// newSensorMetrics registers the sensor metrics on reg.
func newSensorMetrics(reg prometheus.Registerer, stats *sensor.Stats, pub *publisher) {
	reg.MustRegister(&sensorMetrics{stats: stats, pub: pub})
}

func sensorDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("vantage_sensor_"+name, help, nil, nil)
}

var sensorCounterDescs = []struct {
	d *prometheus.Desc
	v func(*sensor.Stats) uint64
}{
	{sensorDesc("packets_total", "Frames read from the capture rings."), func(s *sensor.Stats) uint64 { return s.Packets.Load() }},
	{sensorDesc("events_total", "Events recorded."), func(s *sensor.Stats) uint64 { return s.Events.Load() }},
	{sensorDesc("ring_drops_total", "Frames the kernel dropped because a capture ring was full: packets never seen."), func(s *sensor.Stats) uint64 { return s.RingDrops.Load() }},
	{sensorDesc("connections_total", "TCP connections accepted by the responders."), func(s *sensor.Stats) uint64 { return s.Conns.Load() }},
	{sensorDesc("connections_shed_total", "Connections closed at once because a budget (--max-conns, --per-source) was full; their SYN is still recorded."), func(s *sensor.Stats) uint64 { return s.ConnsShed.Load() }},
	{sensorDesc("not_ours_total", "Frames to addresses the sensor does not own, ignored."), func(s *sensor.Stats) uint64 { return s.NotOurs.Load() }},
	{sensorDesc("segments_total", "TCP segments without SYN: counted, not events."), func(s *sensor.Stats) uint64 { return s.Segments.Load() }},
	{sensorDesc("udp_answered_total", "UDP packets a responder answered (DNS, SIP)."), func(s *sensor.Stats) uint64 { return s.UDPAnswered.Load() }},
	{sensorDesc("udp_unanswered_total", "UDP packets recorded without an answer."), func(s *sensor.Stats) uint64 { return s.UDPUnanswered.Load() }},
	{sensorDesc("undecodable_total", "Frames that did not decode."), func(s *sensor.Stats) uint64 { return s.Undecodable.Load() }},
}

var (
	sensorBatched    = sensorDesc("batched_events_total", "Events handed on in batches: into the spool, or straight to the server or bus without one (--spool '').")
	sensorPubFail    = sensorDesc("publish_failures_total", "Failed hand-offs of a batch (spool full or unwritable; without a spool, the server or bus refused); each is retried.")
	sensorSpoolDepth = sensorDesc("spool_batches", "Batches in the spool waiting for the server or bus to acknowledge them.")
	sensorSpoolSent  = sensorDesc("spool_delivered_batches_total", "Batches the spool delivered to the server or bus.")
	sensorSpoolDrop  = sensorDesc("spool_refused_events_total", "Events the spool refused because it was full (counted again at every retry).")
)

// Describe is part of prometheus.Collector.
func (m *sensorMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range sensorCounterDescs {
		ch <- c.d
	}
	for _, d := range []*prometheus.Desc{sensorBatched, sensorPubFail, sensorSpoolDepth, sensorSpoolSent, sensorSpoolDrop} {
		ch <- d
	}
}

// Collect is part of prometheus.Collector.
func (m *sensorMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range sensorCounterDescs {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, float64(c.v(m.stats)))
	}
	if m.pub == nil {
		return
	}
	_, records, failures := m.pub.batcher.Sent()
	ch <- prometheus.MustNewConstMetric(sensorBatched, prometheus.CounterValue, float64(records))
	ch <- prometheus.MustNewConstMetric(sensorPubFail, prometheus.CounterValue, float64(failures))
	if m.pub.spool != nil {
		sent, pending, dropped := m.pub.spool.Stats()
		ch <- prometheus.MustNewConstMetric(sensorSpoolDepth, prometheus.GaugeValue, float64(pending))
		ch <- prometheus.MustNewConstMetric(sensorSpoolSent, prometheus.CounterValue, float64(sent))
		ch <- prometheus.MustNewConstMetric(sensorSpoolDrop, prometheus.CounterValue, float64(dropped))
	}
}
