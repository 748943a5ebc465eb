package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/fingerprint"
	"github.com/vantagehq/vantage/grab"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/scan"
	"github.com/vantagehq/vantage/target"
)

// grabFlags are the flags of `vantage grab` and the grab part of `vantage
// scan --grab`.
type grabFlags struct {
	timeout, greetingWait         time.Duration
	maxBytes, maxHandshakes       int
	concurrency, perHost          int
	tlsInner                      bool
	protocol, userAgent           string
	udp, listModules              bool
	rulesFiles, nmapProbes, recog []string
	// allowed, when set, is asked too before every connection: the live
	// exclusion list of vantage scan --grab
	allowed func(netip.Addr) bool
}

func (g *grabFlags) register(cmd *cobra.Command, prefix string) {
	fl := cmd.Flags()
	fl.DurationVar(&g.timeout, prefix+"timeout", 5*time.Second, "per connection: connect to last byte")
	fl.DurationVar(&g.greetingWait, prefix+"greeting-wait", 2*time.Second, "on ports no protocol owns: wait this long for the server to speak first, then probe")
	fl.IntVar(&g.maxBytes, prefix+"max-bytes", 256<<10, "bytes read per connection at most")
	fl.IntVar(&g.maxHandshakes, prefix+"max-handshakes", 5, "connections per service at most")
	fl.IntVar(&g.concurrency, prefix+"concurrency", 256, "services grabbed at once")
	fl.IntVar(&g.perHost, prefix+"per-host", 8, "services grabbed at once on one address")
	fl.BoolVar(&g.tlsInner, prefix+"tls-inner", true, "identify the service inside TLS tunnels too (false: the handshake only as far as the server's certificate chain: version, cipher, ALPN and chain are recorded, no Finished is sent)")
	fl.StringVar(&g.protocol, prefix+"protocol", "", "try only this protocol module (see --list-modules)")
	fl.StringVar(&g.userAgent, prefix+"user-agent", grab.DefaultUserAgent, "User-Agent of HTTP requests")
	fl.StringArrayVar(&g.rulesFiles, prefix+"rules", nil, "also load fingerprint rules from this `FILE` (our TOML format); repeatable")
	fl.StringArrayVar(&g.nmapProbes, prefix+"nmap-probes", nil, "also import match lines from an nmap-service-probes `FILE` (e.g. /usr/share/nmap/nmap-service-probes)")
	fl.StringArrayVar(&g.recog, prefix+"recog", nil, "also import a Recog XML fingerprint `FILE`; repeatable")
}

func (g *grabFlags) check() error {
	switch {
	case g.timeout <= 0:
		return usagef("--timeout must be positive")
	case g.maxBytes < 1024:
		return usagef("--max-bytes %d: at least 1024", g.maxBytes)
	case g.maxHandshakes < 1 || g.maxHandshakes > 10:
		return usagef("--max-handshakes %d: between 1 and 10", g.maxHandshakes)
	case g.concurrency < 1 || g.perHost < 1:
		return usagef("--concurrency and --per-host must be at least 1")
	}
	if g.protocol != "" {
		tr := "tcp"
		if g.udp {
			tr = "udp"
		}
		if _, ok := grab.Lookup(tr, g.protocol); !ok {
			return usagef("no %s protocol module %q (see vantage grab --list-modules)", tr, g.protocol)
		}
	}
	return nil
}

func (g *grabFlags) grabber(pol *target.Policy, scanID string, stderr io.Writer) (*grab.Grabber, error) {
	excluded := pol.Excluded()
	ident, err := identifier(g.rulesFiles, g.nmapProbes, g.recog, stderr)
	if err != nil {
		return nil, err
	}
	return grab.New(grab.Config{
		Timeout: g.timeout, GreetingWait: g.greetingWait, MaxBytes: g.maxBytes, MaxHandshakes: g.maxHandshakes,
		Concurrency: g.concurrency, PerHost: g.perHost, UserAgent: g.userAgent, ScanID: scanID, TLSHandshakeOnly: !g.tlsInner,
		Allowed: func(a netip.Addr) bool {
			if g.allowed != nil && !g.allowed(a) {
				return false
			}
			return !a.Is4() || !excluded.ContainsAddr(a)
		},
		Identify: ident,
	}), nil
}

func newGrabCmd() *cobra.Command {
	f := &scanFlags{}
	g := &grabFlags{}
	cmd := &cobra.Command{
		Use:   "grab [flags] [TARGET...]",
		Short: "Identify the services on open ports: protocol, product, version, CPE",
		Long: `Grab connects to each service, says just enough to learn what answers
(a greeting, a handshake, one request), and writes one JSON object per
service: protocol, product, version, CPE, the banner, and protocol details
(HTTP headers and title, the TLS chain, SSH algorithms and host key ...).
It never logs in, never sends credentials, never writes.

Targets come as arguments or, with none, on stdin, one per line:
  192.0.2.1:22            an address and port
  192.0.2.1 22            the same, as masscan-style text
  192.0.2.1               with -p: every port given
  {"ip":"192.0.2.1","port":22,...}   vantage scan's (or zmap's) JSON lines
Only "open" JSON results are grabbed.

On a port that a protocol usually owns, that protocol is tried first. On
any other port the grabber waits --greeting-wait for the server to speak
first (SSH, FTP, SMTP, MySQL ...), and otherwise tries HTTP, TLS, then the
other probes, stopping at the first that identifies the service and after
--max-handshakes connections. A port that accepts connections but never
says a byte is reported with state "silent", not as a service.

Reserved ranges are refused unless named with --allow-reserved, and the
exclusion lists are checked again before every connection.`,
		Example: `  # the services a SYN scan found, straight from the scanner
  sudo vantage scan -p 22,80,443 198.51.100.0/24 | vantage grab

  # one service, forcing the protocol
  vantage grab --protocol redis 192.0.2.7:8443 --allow-reserved 192.0.2.0/24

  # UDP: DNS and NTP
  vantage grab --udp -p 53,123 192.0.2.53 --allow-reserved 192.0.2.0/24`,
		RunE: func(cmd *cobra.Command, args []string) error { return runGrab(cmd, f, g, args) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&f.ports, "ports", "p", "", "ports for targets given as bare addresses: 22,80,8000-8100")
	fl.BoolVar(&g.udp, "udp", false, "grab UDP services (DNS, NTP, SIP) instead of TCP")
	fl.BoolVar(&g.listModules, "list-modules", false, "list the protocol modules and exit")
	g.register(cmd, "")
	fl.StringArrayVarP(&f.excludeFiles, "exclude-file", "b", nil, "never connect to the addresses in `FILE`; repeatable")
	fl.StringArrayVar(&f.excludes, "exclude", nil, "never connect to this `CIDR` or range; repeatable")
	fl.StringArrayVar(&f.allowReserved, "allow-reserved", nil, "allow this reserved `CIDR` (private, lab, documentation space); repeatable")
	fl.StringVarP(&f.output, "output", "o", "-", "write results to `FILE` ('-' = stdout)")
	fl.StringVar(&f.scanID, "scan-id", "", "identifier written with every result (default: random)")
	fl.StringVar(&f.server, "server", "", "also publish services to this vantage server `URL` (needs a key with the scan scope)")
	fl.StringVar(&f.key, "key", os.Getenv("VANTAGE_KEY"), "API key for --server ($VANTAGE_KEY)")
	fl.StringVar(&f.nats, "nats", "", "also publish services straight onto this NATS bus `URL`")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no status line or summary on stderr")
	fl.DurationVar(&f.statusInterval, "status-interval", time.Second, "time between status lines")
	return cmd
}

func runGrab(cmd *cobra.Command, f *scanFlags, g *grabFlags, args []string) error {
	if g.listModules {
		return listGrabModules(cmd.OutOrStdout())
	}
	if err := g.check(); err != nil {
		return err
	}
	log, err := logger(cmd)
	if err != nil {
		return err
	}
	var ports []uint16
	if f.ports != "" {
		if ports, err = target.ParsePorts(f.ports); err != nil {
			return usagef("--ports: %v", err)
		}
	}
	pol, err := f.policy()
	if err != nil {
		return err
	}
	if f.scanID == "" {
		f.scanID = newScanID()
	}
	gr, err := g.grabber(pol, f.scanID, cmd.ErrOrStderr())
	if err != nil {
		return err
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
	grabGC(cmd.Context())
	pipe := newGrabPipe(gr, out, g.concurrency)
	if f.server != "" || f.nats != "" {
		pub, err := newPublisher(cmd.Context(), f.server, f.key, f.nats, log, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		defer func() {
			if err := pub.Close(); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "vantage: %v\n", err)
			}
		}()
		pipe.pub = pub
	}
	ctx := cmd.Context()
	stopStatus := func() {}
	if !f.quiet {
		stopStatus = pipe.status(cmd.ErrOrStderr(), f.statusInterval)
	}
	transport := "tcp"
	if g.udp {
		transport = "udp"
	}
	add := func(t grab.Target, src string) error {
		t.Transport, t.Protocol = transport, g.protocol
		if !t.Addr.Addr().Is4() {
			return fmt.Errorf("%s: %s: only IPv4 is grabbed so far", src, t.Addr)
		}
		pipe.add(ctx, grabItem{t: t})
		return nil
	}
	var readErr error
	if len(args) > 0 {
		for _, a := range args {
			ts, err := parseGrabTarget(a, ports)
			if err != nil {
				readErr = usageError{fmt.Errorf("argument %q: %w", a, err)}
				break
			}
			for _, t := range ts {
				if err := add(t, "argument"); err != nil {
					readErr = usageError{err}
					break
				}
			}
		}
	} else {
		readErr = readGrabTargets(cmd.InOrStdin(), ports, add)
	}
	pipe.close()
	stopStatus()
	if !f.quiet {
		pipe.summary(cmd.ErrOrStderr())
	}
	if readErr != nil {
		return readErr
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	return pipe.err
}

func listGrabModules(w io.Writer) error {
	fmt.Fprintf(w, "%-4s %-12s %-6s %-12s %s\n", "", "MODULE", "RANK", "SPEAKS", "PORTS")
	for _, m := range grab.Modules() {
		speaks := "client first"
		if m.Claims != nil {
			speaks = "server first"
		}
		rank := "-"
		if m.Rank > 0 {
			rank = strconv.Itoa(m.Rank)
		}
		tr := m.Transport
		if tr == "" {
			tr = "tcp"
		}
		var ps []string
		for _, p := range m.Ports {
			ps = append(ps, strconv.Itoa(int(p)))
		}
		fmt.Fprintf(w, "%-4s %-12s %-6s %-12s %s\n", tr, m.Name, rank, speaks, strings.Join(ps, ","))
	}
	_, err := fmt.Fprintln(w, "\nRANK: order of blind probes on ports no module owns (lower first; - = only on its own ports)")
	return err
}

// parseGrabTarget reads "ip:port", "ip port" or "ip" (with ports).
func parseGrabTarget(s string, ports []uint16) ([]grab.Target, error) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return []grab.Target{{Addr: ap}}, nil
	}
	if a, p, ok := strings.Cut(s, " "); ok {
		addr, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			return nil, err
		}
		port, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
		if err != nil || port == 0 {
			return nil, fmt.Errorf("port %q: want 1-65535", strings.TrimSpace(p))
		}
		return []grab.Target{{Addr: netip.AddrPortFrom(addr, uint16(port))}}, nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return nil, fmt.Errorf("want ADDRESS:PORT, ADDRESS PORT or ADDRESS with -p")
	}
	if len(ports) == 0 {
		return nil, fmt.Errorf("a bare address needs -p PORTS")
	}
	out := make([]grab.Target, 0, len(ports))
	for _, p := range ports {
		out = append(out, grab.Target{Addr: netip.AddrPortFrom(addr, p)})
	}
	return out, nil
}

// readGrabTargets reads targets line by line: text forms or JSON lines.
func readGrabTargets(r io.Reader, ports []uint16, add func(grab.Target, string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		src := "stdin:" + strconv.Itoa(n)
		if line[0] == '{' {
			var j struct {
				IP     string `json:"ip"`
				Saddr  string `json:"saddr"` // zmap
				Port   uint16 `json:"port"`
				Sport  uint16 `json:"sport"` // zmap
				State  string `json:"state"`
				Status string `json:"status"` // masscan -oJ
				Proto  string `json:"proto"`
				Name   string `json:"name"`
			}
			if err := json.Unmarshal([]byte(line), &j); err != nil {
				return usagef("%s: %v", src, err)
			}
			if j.State != "" && j.State != "open" || j.Status != "" && j.Status != "open" || j.Proto == "icmp" {
				continue
			}
			ip, port := j.IP, j.Port
			if ip == "" {
				ip, port = j.Saddr, j.Sport
			}
			a, err := netip.ParseAddr(ip)
			if err != nil || port == 0 {
				return usagef("%s: want \"ip\" and \"port\" in a JSON line", src)
			}
			if err := add(grab.Target{Addr: netip.AddrPortFrom(a, port), Name: j.Name}, src); err != nil {
				return usageError{err}
			}
			continue
		}
		ts, err := parseGrabTarget(line, ports)
		if err != nil {
			return usagef("%s: %q: %v", src, line, err)
		}
		for _, t := range ts {
			if err := add(t, src); err != nil {
				return usageError{err}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read targets: %w", err)
	}
	return nil
}

// grabItem is one service to grab, with what the SYN scan already knew.
type grabItem struct {
	t      grab.Target
	ttl    uint8
	window uint16
}

// grabPipe grabs queued services with a fixed set of workers and writes
// each result as one JSON line. The queue is unbounded so a scanner that
// feeds it never stalls its receive loop; it holds only open ports.
type grabPipe struct {
	g   *grab.Grabber
	pub *publisher

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []grabItem
	closed bool
	wg     sync.WaitGroup

	outMu sync.Mutex
	out   *bufio.Writer
	err   error

	start time.Time
	done  int64
}

func newGrabPipe(g *grab.Grabber, w io.Writer, workers int) *grabPipe {
	p := &grabPipe{g: g, out: bufio.NewWriterSize(w, 64<<10), start: time.Now()}
	p.cond = sync.NewCond(&p.mu)
	for i := 0; i < workers; i++ {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

// grabGC: grabs allocate little that lives, so collecting less often
// saves a tenth of the CPU per grab for a few MiB of heap. GOGC and
// GOMEMLIMIT in the environment win; otherwise a memory limit bounds the
// heap that the higher GOGC lets grow. The settings are the process's:
// a scan run inside a server (its scan worker) leaves them to the server,
// whose heap is other than a grabber's.
func grabGC(ctx context.Context) {
	if runsInProcess(ctx) {
		return
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(grabMemoryLimit)
	}
}

// grabMemoryLimit is the soft heap limit of vantage grab and scan --grab
// unless GOMEMLIMIT is set: far above what --concurrency 1000 uses (tens
// of MiB), low enough that a small VM is not pushed to swap.
const grabMemoryLimit = 512 << 20

func (p *grabPipe) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

func (p *grabPipe) add(ctx context.Context, it grabItem) {
	p.mu.Lock()
	if !p.closed && ctx.Err() == nil {
		p.queue = append(p.queue, it)
		p.cond.Signal()
	}
	p.mu.Unlock()
}

// close waits for every queued service to be grabbed.
func (p *grabPipe) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
	p.outMu.Lock()
	if err := p.out.Flush(); err != nil && p.err == nil {
		p.err = fmt.Errorf("write results: %w", err)
	}
	p.outMu.Unlock()
}

func (p *grabPipe) work() {
	defer p.wg.Done()
	ctx := context.Background()
	var line []byte
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.closed {
			p.cond.Wait()
		}
		if len(p.queue) == 0 {
			p.mu.Unlock()
			return
		}
		it := p.queue[0]
		p.queue[0] = grabItem{}
		p.queue = p.queue[1:]
		p.mu.Unlock()

		svc, err := p.g.Grab(ctx, it.t)
		svc.TTL, svc.Window = it.ttl, it.window
		line = appendGrabOutput(line[:0], &svc, err)
		p.outMu.Lock()
		p.done++
		p.out.Write(line)
		p.outMu.Unlock()
		if p.pub != nil && svc.State != "closed" && !errorsIsExcluded(err) {
			p.pub.batcher.AddService(svc)
		}
	}
}

func errorsIsExcluded(err error) bool { return err != nil && grab.ErrorKind(err) == "excluded" }

// appendGrabOutput appends a service as a JSON line for people and tools:
// the record's members, then the banner as text (JSON-escaped) rather than
// base64, and the error and its kind when nothing was learnt
// (TestGrabOutputJSON compares it with encoding/json's output).
func appendGrabOutput(b []byte, svc *record.Service, err error) []byte {
	b = append(b, '{')
	b = svc.AppendJSONFields(b, false)
	if len(svc.Banner) > 0 {
		b = append(b, `,"banner":`...)
		b = record.AppendJSONString(b, bannerText(svc.Banner))
	}
	if err != nil {
		if msg := err.Error(); msg != "" {
			b = append(b, `,"error":`...)
			b = record.AppendJSONString(b, msg)
		}
		b = append(b, `,"error_kind":`...)
		b = record.AppendJSONString(b, grab.ErrorKind(err))
	}
	return append(b, '}', '\n')
}

// bannerText shows bytes as text, escaping what is not valid UTF-8 as
// \xNN so nothing is lost.
func bannerText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		} else {
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}

// status prints a line every interval until the returned stop is called.
func (p *grabPipe) status(w io.Writer, every time.Duration) (stop func()) {
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
		var last int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.outMu.Lock()
				n := p.done
				p.outMu.Unlock()
				p.mu.Lock()
				queued := len(p.queue)
				p.mu.Unlock()
				st := p.g.Stats()
				fmt.Fprintf(w, "vantage: grabbed %d (%.0f/s), queued %d, identified %d, recognised %d%s\n",
					n, float64(n-last)/every.Seconds(), queued, st.Identified, st.Recognised, errorText(st.Errors))
				last = n
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (p *grabPipe) summary(w io.Writer) {
	st := p.g.Stats()
	el := time.Since(p.start)
	p.outMu.Lock()
	n := p.done
	p.outMu.Unlock()
	var protos []string
	for k, v := range st.Protocols {
		protos = append(protos, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(protos)
	fmt.Fprintf(w, "vantage: grabbed %d services in %s (%.0f/s): identified %d, recognised %d [%s]%s\n",
		n, el.Round(time.Millisecond), float64(n)/max(el.Seconds(), 1e-9), st.Identified, st.Recognised, strings.Join(protos, ", "), errorText(st.Errors))
}

func errorText(errs map[string]int64) string {
	if len(errs) == 0 {
		return ""
	}
	var parts []string
	for k, v := range errs {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return ", errors: " + strings.Join(parts, ", ")
}

// grabWriter is the scan.Writer of `vantage scan --grab`: open TCP results
// go to the grab pipe instead of the output.
type grabWriter struct {
	ctx  context.Context
	pipe *grabPipe
}

func (w grabWriter) Write(r *scan.Result) error {
	if r.Proto != "tcp" || r.State != scan.StateOpen {
		return nil
	}
	w.pipe.add(w.ctx, grabItem{t: grab.Target{Addr: netip.AddrPortFrom(r.IP, r.Port)}, ttl: r.TTL, window: r.Window})
	return nil
}

func (w grabWriter) Flush() error { return nil }

// newScanID is a random scan identifier, as the scanner makes one.
func newScanID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// identifier loads the fingerprint rules: ours first, then the
// operator's own files and imports, each import reported on stderr.
func identifier(rules, nmap, recog []string, stderr io.Writer) (func(*grab.Result), error) {
	db := fingerprint.Default()
	var extra []*fingerprint.DB
	for _, name := range rules {
		d, err := fingerprint.LoadFile(name)
		if err != nil {
			return nil, usageError{err}
		}
		extra = append(extra, d)
	}
	imp := func(name string, fn func(io.Reader, string) (*fingerprint.DB, fingerprint.Report, error)) error {
		f, err := os.Open(name)
		if err != nil {
			return usageError{err}
		}
		defer f.Close()
		d, rep, err := fn(f, name)
		if err != nil {
			return usageError{fmt.Errorf("import %s: %w", name, err)}
		}
		fmt.Fprintf(stderr, "vantage: %s: imported %d of %d rules (%d skipped: Go's regexp lacks what they use, or they name no product)\n",
			name, rep.Imported, rep.Total, rep.SkippedTotal())
		extra = append(extra, d)
		return nil
	}
	for _, name := range nmap {
		if err := imp(name, fingerprint.ImportNmap); err != nil {
			return nil, err
		}
	}
	for _, name := range recog {
		if err := imp(name, fingerprint.ImportRecog); err != nil {
			return nil, err
		}
	}
	if len(extra) > 0 {
		merged, err := db.Merge(extra...)
		if err != nil {
			return nil, usageError{err}
		}
		db = merged
	}
	return grab.Identifier(db), nil
}
