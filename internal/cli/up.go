package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/config"
	"github.com/vantagehq/vantage/internal/demo"
	"github.com/vantagehq/vantage/internal/lab"
	"github.com/vantagehq/vantage/internal/netns"
	"github.com/vantagehq/vantage/server"
	"github.com/vantagehq/vantage/target"
)

type upFlags struct {
	config                string
	ports, targets        string
	rate                  int
	rescan                time.Duration
	sensorIF              string
	sensorAddrs           []string
	demo                  bool
	netlab                string
	trafficEvery, forDur  time.Duration
	readyFile             string
	labRate, labListenTCP int
}

func newUpCmd() *cobra.Command {
	f := &upFlags{}
	cmd := &cobra.Command{
		Use:   "up [--data DIR] [--listen ADDR] [--demo]",
		Short: "Run every role in one process: server, a scan of this machine, a sensor; --demo fills it from the lab",
		Long: `Up runs the platform (embedded bus and store in one data directory, the API)
and beside it the roles that feed it, and prints the URL to open.

Without --demo the scanner looks at this machine's own addresses (every
address of every interface, loopback included: they are the operator's own,
so up allows exactly those reserved addresses), all TCP ports by default, in
connect mode (no root needed; nothing leaves the machine), identifies what
answers, and does it again every --rescan. A sensor runs only as root and
only on dark addresses you name (--sensor-interface, --sensor-addresses):
it never redirects this machine's own service ports.

With --demo (root) up brings up ../shared/netlab (the simulated Internet in
network namespaces on this machine) and its twelve service daemons, serves
the API inside the lab's scanner namespace as well, scans the lab's host
farm and daemons, runs a sensor on the lab's dark range, and every
--traffic-every sends real tool traffic (zmap, masscan, nmap, curl, ssh,
ping, python3) at it from seven lab sources that an overrides file places in
seven (fictional) countries. Nothing leaves the machine. At exit it removes
what it added and takes the lab down if it brought it up (NETLAB_KEEP=1
keeps it).`,
		Example: `  vantage up                                # this machine's exposure, on http://127.0.0.1:8080/
  sudo vantage up --sensor-interface eth1 --sensor-addresses 203.0.113.128/25
  sudo vantage up --demo                    # the lab, every view filled
  sudo vantage up --demo --for 5m --ready-file /tmp/ready.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUp(cmd, f) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.String("data", "", "data directory (default ./data)")
	fl.String("listen", "", "address of the API and UI (default 127.0.0.1:8080)")
	fl.StringVar(&f.config, "config", "", "server configuration `FILE` (TOML; see 'vantage help config')")
	fl.String("overrides", "", "geo overrides file (--demo writes and uses its own unless this is given)")
	fl.String("geo-dir", "", "directory of the geo databases written by scripts/geodata.sh (default <data>/geo)")
	fl.StringVarP(&f.ports, "ports", "p", "1-65535", "ports of this machine's addresses to scan")
	fl.StringVar(&f.targets, "targets", "", "scan only these of this machine's addresses (comma-separated; for tests)")
	fl.IntVarP(&f.rate, "rate", "r", 20000, "probes per second of the scan of this machine")
	fl.DurationVar(&f.rescan, "rescan", time.Hour, "scan again after this long")
	fl.StringVar(&f.sensorIF, "sensor-interface", "", "run a sensor (root) on this interface ...")
	fl.StringArrayVar(&f.sensorAddrs, "sensor-addresses", nil, "... for these dark `CIDR`s (addresses that host nothing); repeatable")
	fl.BoolVar(&f.demo, "demo", false, "bring up ../shared/netlab and fill every view from it (root)")
	fl.StringVar(&f.netlab, "netlab", "", "--demo: the netlab script (default $NETLAB or ../shared/netlab/netlab beside the repository)")
	fl.DurationVar(&f.trafficEvery, "traffic-every", 30*time.Second, "--demo: time between rounds of lab traffic at the sensor")
	fl.IntVar(&f.labRate, "lab-rate", 20000, "--demo: probes per second of the scan of the lab's farm")
	fl.IntVar(&f.labListenTCP, "lab-port", 0, "--demo: port of the API inside the lab's scanner namespace (default: the --listen port)")
	fl.StringVar(&f.readyFile, "ready-file", "", "once the first scan is searchable (and, with --demo, the first traffic stored), write a JSON summary to `FILE`")
	fl.DurationVar(&f.forDur, "for", 0, "stop by itself after this long (0 = until Ctrl-C)")
	fl.MarkHidden("targets")
	return cmd
}

// upRun is one `vantage up`: what every role needs to reach the server.
type upRun struct {
	f        *upFlags
	cfg      config.Server
	log      *slog.Logger
	stderr   io.Writer
	url      string // the server, from this process
	labURL   string // the server, from inside the lab (--demo)
	nats     string // the bus, for the scan worker
	keyFile  string
	key      string
	work     string // <data>/up: logs, scan output, the demo's files
	t0       time.Time
	srcs     []demo.Source
	outMu    sync.Mutex
	firstAPI chan firstScan // the first scan round, for the ready file
	traffic  chan struct{}  // closed after the first traffic round (--demo)
}

// firstScan is what the first scan round published, per scan ID.
type firstScan map[string]int

func runUp(cmd *cobra.Command, f *upFlags) error {
	log, err := logger(cmd)
	if err != nil {
		return err
	}
	cfg, err := config.LoadFile(f.config)
	if err != nil {
		return usageError{err}
	}
	if err := cfg.ApplyEnv(os.LookupEnv); err != nil {
		return usageError{err}
	}
	applyServerFlags(cmd.Flags(), &cfg)
	if err := cfg.Check(); err != nil {
		return usageError{err}
	}
	if _, err := target.ParsePorts(f.ports); err != nil {
		return usagef("--ports: %v", err)
	}
	if f.demo && os.Geteuid() != 0 {
		return usagef("--demo needs root (network namespaces, raw sockets, nftables): sudo vantage up --demo")
	}
	if (f.sensorIF == "") != (len(f.sensorAddrs) == 0) {
		return usagef("a sensor needs both --sensor-interface and --sensor-addresses")
	}
	if f.rescan < time.Minute || f.trafficEvery < 5*time.Second {
		return usagef("--rescan must be at least 1m and --traffic-every at least 5s")
	}
	if f.rate < 0 || f.labRate < 0 {
		return usagef("--rate and --lab-rate must be at least 0")
	}
	ctx := cmd.Context()
	if f.forDur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.forDur)
		defer cancel()
	}
	u := &upRun{f: f, cfg: cfg, log: log, stderr: cmd.ErrOrStderr(), t0: time.Now(),
		work: filepath.Join(cfg.Data, "up"), firstAPI: make(chan firstScan, 1), traffic: make(chan struct{})}
	if err := os.MkdirAll(u.work, 0o750); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	if f.demo {
		err = u.runDemo(ctx)
	} else {
		err = u.runLocal(ctx)
	}
	if err == nil && cmd.Context().Err() != nil {
		return errInterrupted
	}
	return err
}

func (u *upRun) say(format string, a ...any) {
	u.outMu.Lock()
	defer u.outMu.Unlock()
	fmt.Fprintf(u.stderr, "vantage: "+format+"\n", a...)
}

// serve runs the server until serverCtx ends, and roles (once the server
// is up) until ctx ends; the roles stop before the server does, so what
// they hold (a sensor's spool) still reaches it.
func (u *upRun) serve(ctx context.Context, extra []net.Listener, roles func(ctx context.Context, wg *sync.WaitGroup) error) error {
	serverCtx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	started := make(chan server.Running, 1)
	served := make(chan error, 1)
	go func() {
		served <- server.RunOptions(serverCtx, u.cfg, u.log, server.Options{
			Started:   func(r server.Running) { started <- r },
			Listeners: extra,
		})
	}()
	select {
	case r := <-started:
		u.url, u.nats = r.URL, r.NATS
		if r.AdminKey != "" {
			u.say("the first admin API key is in %s", r.AdminKey)
		}
	case err := <-served:
		if err == nil {
			err = errors.New("the server stopped before it started")
		}
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
		stopServer()
		<-served
		return nil
	}
	u.keyFile = filepath.Join(u.cfg.Data, "admin.key")
	b, err := os.ReadFile(u.keyFile)
	if err != nil {
		stopServer()
		<-served
		return fmt.Errorf("the roles publish with the admin key, which the server writes only at the first start, when the bus holds no key (move %s away to start with fresh keys): %w", filepath.Join(u.cfg.Data, "bus"), err)
	}
	u.key = strings.TrimSpace(string(b))
	u.say("open %s/ (data in %s)", u.url, u.cfg.Data)

	rctx, stopRoles := context.WithCancel(ctx)
	defer stopRoles()
	var wg sync.WaitGroup
	rolesErr := roles(rctx, &wg)
	var serveErr error
	if rolesErr == nil {
		select {
		case <-rctx.Done():
		case serveErr = <-served:
			served <- serveErr // read again below
		}
	}
	u.say("stopping")
	stopRoles()
	wg.Wait()
	stopServer()
	if err := <-served; err != nil && serveErr == nil {
		serveErr = fmt.Errorf("server: %w", err)
	}
	return errors.Join(rolesErr, serveErr)
}

// runLocal: the server, a scan of this machine's addresses, and a sensor
// when asked for.
func (u *upRun) runLocal(ctx context.Context) error {
	addrs, err := u.ownAddrs()
	if err != nil {
		return err
	}
	// the sensor's dark addresses host nothing: scanning them would only
	// fill the sensor with this machine's own probes
	var dark []netip.Prefix
	for _, a := range u.f.sensorAddrs {
		for _, part := range strings.Split(a, ",") {
			if p, err := netip.ParsePrefix(strings.TrimSpace(part)); err == nil {
				dark = append(dark, p)
			} else if ip, err := netip.ParseAddr(strings.TrimSpace(part)); err == nil {
				dark = append(dark, netip.PrefixFrom(ip, ip.BitLen()))
			}
		}
	}
	addrs = slices.DeleteFunc(addrs, func(a netip.Addr) bool {
		return slices.ContainsFunc(dark, func(p netip.Prefix) bool { return p.Contains(a) })
	})
	if len(addrs) == 0 {
		return usagef("no address of this machine is left to scan")
	}
	if u.cfg.Bus.URL == "" && u.cfg.Bus.Listen == "" {
		u.cfg.Bus.Listen = "127.0.0.1:0" // for the scan worker below
	}
	var ownReserved []string
	for _, a := range addrs {
		if reserved(a) {
			ownReserved = append(ownReserved, a.String()+"/32")
		}
	}
	return u.serve(ctx, nil, func(ctx context.Context, wg *sync.WaitGroup) error {
		// watchlists' rescans (vantage monitor) run here; reserved space
		// only where it is this machine's own
		wg.Add(1)
		go func() {
			defer wg.Done()
			workInProcess(ctx, u.nats, ownReserved, u.stderr, u.log)
		}()
		if u.f.sensorIF != "" {
			if os.Geteuid() != 0 {
				u.say("sensor off: it needs root (raw capture, nftables); run up as root with --sensor-interface and --sensor-addresses")
			} else {
				args := []string{"sensor", "-q", "-i", u.f.sensorIF, "--server", u.url, "--key", u.key, "--spool", filepath.Join(u.cfg.Data, "spool")}
				for _, a := range u.f.sensorAddrs {
					args = append(args, "--addresses", a)
				}
				u.say("sensor: on %s for %s, events to the server", u.f.sensorIF, strings.Join(u.f.sensorAddrs, ", "))
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := inProcess(ctx, u.stderr, args...); err != nil {
						u.say("sensor stopped: %v", err)
					}
				}()
			}
		} else {
			u.say("sensor off: a sensor needs dark addresses (that host nothing) routed to this machine; name them with sudo vantage up --sensor-interface IF --sensor-addresses CIDR (see 'vantage sensor --help')")
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			u.scanLoop(ctx, func(ctx context.Context, round int) firstScan {
				return u.scanOwn(ctx, round, addrs)
			})
		}()
		go func() {
			defer wg.Done()
			close(u.traffic) // no lab traffic to wait for
			u.whenReady(ctx, 0)
		}()
		return nil
	})
}

// ownAddrs are this machine's IPv4 addresses (or --targets among them).
func (u *upRun) ownAddrs() ([]netip.Addr, error) {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("this machine's addresses: %w", err)
	}
	var own []netip.Addr
	for _, ia := range ifaddrs {
		p, err := netip.ParsePrefix(ia.String())
		if err != nil || !p.Addr().Is4() {
			continue // the scanner is IPv4 only for now
		}
		own = append(own, p.Addr())
	}
	slices.SortFunc(own, netip.Addr.Compare)
	own = slices.Compact(own)
	if u.f.targets == "" {
		return own, nil
	}
	var picked []netip.Addr
	for _, s := range strings.Split(u.f.targets, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return nil, usagef("--targets %q: not an address", s)
		}
		if !slices.Contains(own, a) {
			return nil, usagef("--targets %s: not an address of this machine (up scans only its own)", a)
		}
		picked = append(picked, a)
	}
	return picked, nil
}

// reserved reports whether an address is in a range scans skip unless told.
func reserved(a netip.Addr) bool {
	r, err := target.ParseRange(a.String())
	return err == nil && target.NewPolicy().AllowReserved(r) == nil
}

// scanOwn scans this machine's addresses once, in connect mode, into the server.
func (u *upRun) scanOwn(ctx context.Context, round int, addrs []netip.Addr) firstScan {
	id := fmt.Sprintf("up-own-%d-%d", u.t0.Unix(), round)
	args := []string{"scan", "--connect", "-q", "--grab", "-p", u.f.ports, "-r", strconv.Itoa(u.f.rate), "-c", "1s",
		"--scan-id", id, "-o", filepath.Join(u.work, "own.jsonl"), "--metadata", filepath.Join(u.work, "own-meta.json"),
		"--server", u.url, "--key", u.key}
	var names, allowed []string
	for _, a := range addrs {
		names = append(names, a.String())
		if reserved(a) {
			args = append(args, "--allow-reserved", a.String()+"/32")
			allowed = append(allowed, a.String())
		}
	}
	args = append(args, names...)
	if round == 0 {
		u.say("scanner: this machine's own addresses %s, ports %s, connect mode, every %s", strings.Join(names, " "), u.f.ports, u.f.rescan)
		if len(allowed) > 0 {
			u.say("scanner: reserved addresses allowed because they are this machine's own, and only these: %s", strings.Join(allowed, " "))
		}
	}
	t0 := time.Now()
	var log lockedBuffer
	err := inProcess(ctx, &log, args...)
	n := publishedIn(log.String())
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		u.say("scanner: scan of this machine: %v", err)
	}
	u.say("scanner: this machine scanned in %s: %d services published", time.Since(t0).Round(100*time.Millisecond), n)
	return firstScan{id: n}
}

// inProcess runs a vantage subcommand in this process, its stderr to w.
func inProcess(ctx context.Context, w io.Writer, args ...string) error {
	root := newRoot(strings.NewReader(""), io.Discard, w)
	root.SetArgs(args)
	err := root.ExecuteContext(context.WithValue(ctx, inProcessKey{}, true))
	if errors.Is(err, errInterrupted) || ctx.Err() != nil {
		return nil
	}
	return err
}

// inProcessKey marks the context of a command run by inProcess.
type inProcessKey struct{}

// runsInProcess says whether a command runs inside another (a server's
// scan worker) rather than as the process itself: process-wide settings
// are not its to change.
func runsInProcess(ctx context.Context) bool {
	v, _ := ctx.Value(inProcessKey{}).(bool)
	return v
}

var publishedRE = regexp.MustCompile(`published (\d+) records`)

// publishedIn reads how many records a scan published from what it wrote.
func publishedIn(log string) int {
	m := publishedRE.FindStringSubmatch(log)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// scanLoop runs a scan round now and every --rescan; the first round's
// result goes to the ready file.
func (u *upRun) scanLoop(ctx context.Context, round func(ctx context.Context, r int) firstScan) {
	for r := 0; ; r++ {
		res := round(ctx, r)
		if r == 0 && res != nil {
			u.firstAPI <- res
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(u.f.rescan):
		}
	}
}

// whenReady waits until the first scan round is searchable and the first
// traffic round (--demo) stored, then writes --ready-file and a summary.
func (u *upRun) whenReady(ctx context.Context, wantCountries int) {
	var first firstScan
	select {
	case <-ctx.Done():
		return
	case first = <-u.firstAPI:
	}
	// searchable: every scan's published services can be counted by its ID
	for id, n := range first {
		err := waitFor(ctx, 2*time.Minute, func() bool {
			got, err := u.count("scan:" + id)
			return err == nil && got >= int64(n)
		})
		if err != nil && ctx.Err() == nil {
			u.say("scan %s: not all %d services searchable after 2 minutes", id, n)
		}
	}
	select {
	case <-ctx.Done():
		return
	case <-u.traffic:
	}
	var events int64
	countries := 0
	if u.f.demo {
		// stored: every source's country is there and the count has settled
		var last int64 = -1
		stable := 0
		err := waitFor(ctx, 90*time.Second, func() bool {
			n, c, err := u.eventStats()
			if err != nil {
				return false
			}
			if n == last && n > 0 && c >= wantCountries {
				stable++
			} else {
				stable = 0
			}
			last, events, countries = n, n, c
			return stable >= 3
		})
		if err != nil && ctx.Err() == nil {
			u.say("the first traffic round is not all stored after 90 s (%d events from %d source countries so far)", events, countries)
		}
	}
	if ctx.Err() != nil {
		return
	}
	services, _ := u.count("")
	took := time.Since(u.t0).Round(100 * time.Millisecond)
	u.say("ready after %s: %d services searchable, %d sensor events from %d source countries", took, services, events, countries)
	u.say("try: curl '%s/api/v1/count?facets=port,product,country' or vantage search 'port:22' --server %s", u.url, u.url)
	if u.f.readyFile == "" {
		return
	}
	doc := map[string]any{"url": u.url + "/", "api": u.url, "key_file": u.keyFile, "services": services, "events": events,
		"source_countries": countries, "seconds": time.Since(u.t0).Seconds(), "demo": u.f.demo}
	if u.labURL != "" {
		doc["lab_url"] = u.labURL
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	tmp := u.f.readyFile + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err == nil {
		err = os.Rename(tmp, u.f.readyFile)
		if err != nil {
			u.say("ready file: %v", err)
		}
	} else {
		u.say("ready file: %v", err)
	}
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// get reads a JSON answer of the server's API.
func (u *upRun) get(path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", u.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+u.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (u *upRun) count(q string) (int64, error) {
	var r struct {
		Total int64 `json:"total"`
	}
	err := u.get("/api/v1/count?q="+url.QueryEscape(q), &r)
	return r.Total, err
}

// eventStats: events stored in the last hour, and their source countries.
func (u *upRun) eventStats() (events int64, countries int, err error) {
	var r struct {
		Buckets []struct {
			Key   string `json:"key"`
			Count int64  `json:"count"`
		} `json:"buckets"`
	}
	if err := u.get("/api/v1/sensors/stats?by=src_country&window=1h&limit=1000", &r); err != nil {
		return 0, 0, err
	}
	for _, b := range r.Buckets {
		events += b.Count
		if b.Key != "" {
			countries++
		}
	}
	return events, countries, nil
}

// lockedBuffer is a bytes.Buffer for writers on several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// child is a vantage role run as a child process inside a lab namespace.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
}

// startChild runs this executable with args inside a namespace; the
// context's end sends SIGINT (a clean stop), and SIGKILL 20 s later.
func (u *upRun) startChild(ctx context.Context, name, ns string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%s: own executable: %w", name, err)
	}
	c := &child{name: name, log: filepath.Join(u.work, name+".log")}
	logf, err := os.Create(c.log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer logf.Close() // the child has its own copy
	c.cmd = lab.Command(ctx, ns, exe, args...)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.Env = append(os.Environ(), "VANTAGE_KEY="+u.key)
	c.cmd.Cancel = func() error { return c.cmd.Process.Signal(syscall.SIGINT) }
	c.cmd.WaitDelay = 20 * time.Second
	// the child ends with this process even when it is killed
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

func (c *child) logText() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

// runDemo: the lab, its daemons, the server in the host and in the lab, a
// scanner and a sensor in the lab, traffic rounds.
func (u *upRun) runDemo(ctx context.Context) (err error) {
	if missing := demo.MissingTools(); len(missing) > 0 {
		u.say("demo: %s not installed (../shared/netlab/netlab deps installs them): their traffic is left out", strings.Join(missing, ", "))
	}
	script := u.f.netlab
	if script == "" {
		if script, err = lab.Script(); err != nil {
			return fmt.Errorf("demo: %w (or give --netlab PATH)", err)
		}
	}
	u.say("demo: bringing up the lab (%s)", script)
	l, err := lab.UpAt(ctx, script)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("demo: %w", cerr))
		}
	}()
	if ctx.Err() != nil {
		return nil
	}
	if !l.BroughtUp() {
		u.say("demo: the lab was up already; it stays up at exit")
	}
	servicesUp := make(chan error, 1)
	servicesDone := make(chan struct{})
	go func() {
		defer close(servicesDone)
		servicesUp <- l.ServicesUp(context.WithoutCancel(ctx)) // never half-started: Close stops them whole
	}()
	defer func() { <-servicesDone }() // before l.Close, which reads what ServicesUp set

	dir := filepath.Join(u.work, "demo")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if u.cfg.Geo.Overrides == "" {
		u.cfg.Geo.Overrides = filepath.Join(dir, "demo.overrides")
		if err := os.WriteFile(u.cfg.Geo.Overrides, demo.Overrides, 0o644); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	blocklist := filepath.Join(dir, "empty-blocklist.conf") // zmap's default one blocks the lab's ranges
	actors := filepath.Join(dir, "benign-scanner.txt")
	u.srcs = demo.Sources(blocklist)
	var benign []string
	for _, s := range u.srcs {
		if s.Country == "DE" {
			benign = append(benign, s.Addr.String())
		}
	}
	if err := errors.Join(os.WriteFile(blocklist, nil, 0o644),
		os.WriteFile(actors, []byte("# the demo's known benign scanner, as if published by "+demo.BenignActor+"\n"+strings.Join(benign, "\n")+"\n"), 0o644)); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	port := u.f.labListenTCP
	if port == 0 { // the host's port (0 there, as in tests, is any free one here too)
		_, p, _ := net.SplitHostPort(u.cfg.Listen)
		if port, err = strconv.Atoi(p); err != nil {
			port = 8080
		}
	}
	ln, err := netns.Listen(lab.NSScan, "tcp", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return fmt.Errorf("demo: the API inside the lab: %w", err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	u.labURL = fmt.Sprintf("http://%s:%d", lab.ScanIP, port)

	remove, err := demo.AddSources(ctx, u.srcs)
	defer func() {
		if rerr := remove(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("demo: %w", rerr))
		}
	}()
	if err != nil {
		ln.Close()
		return fmt.Errorf("demo: %w", err)
	}

	return u.serve(ctx, []net.Listener{ln}, func(ctx context.Context, wg *sync.WaitGroup) error {
		u.say("demo: the API is also on %s inside %s (and http://127.0.0.1:%d there)", u.labURL, lab.NSScan, port)
		sensor, err := u.startChild(ctx, "sensor", demo.SensorNS, "sensor", "-i", demo.SensorIF, "--addresses", demo.Dark,
			"--name", "demo-sensor", "--server", u.labURL, "--spool", filepath.Join(dir, "spool"), "--conn-timeout", "5s",
			"--actor-ranges", demo.BenignActor+"="+actors, "--status-interval", "1m")
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			werr := sensor.cmd.Wait()
			if ctx.Err() == nil {
				u.say("demo: the sensor stopped: %v\n%s", werr, sensor.logText())
			}
		}()
		// the sensor is ready once its redirect is loaded
		if err := waitFor(ctx, 20*time.Second, func() bool {
			out, _ := lab.Command(ctx, demo.SensorNS, "nft", "list", "tables").Output()
			return strings.Contains(string(out), "vantage_sensor_")
		}); err != nil && ctx.Err() == nil {
			return fmt.Errorf("demo: the sensor did not start:\n%s", sensor.logText())
		}
		u.say("sensor: on %s in %s for the dark range %s, events to the server (log %s)", demo.SensorIF, demo.SensorNS, demo.Dark, sensor.log)

		wg.Add(3)
		go func() {
			defer wg.Done()
			u.scanLoop(ctx, func(ctx context.Context, r int) firstScan { return u.scanLab(ctx, r, servicesUp) })
		}()
		go func() {
			defer wg.Done()
			u.trafficLoop(ctx)
		}()
		go func() {
			defer wg.Done()
			u.whenReady(ctx, len(u.srcs))
		}()
		return nil
	})
}

// scanLab scans the lab's daemons and farm once, each as a child process
// in the scanner's namespace, into the server through the lab listener.
func (u *upRun) scanLab(ctx context.Context, round int, servicesUp <-chan error) firstScan {
	res := firstScan{}
	if round == 0 {
		if err := <-servicesUp; err != nil {
			u.say("demo: the lab's daemons did not start, they are left out: %v", err)
		} else {
			u.say("demo: the lab's twelve daemons are up on %s", demo.Daemons)
		}
	}
	scans := []struct {
		name, ports, rate, allow, targets, what string
	}{
		{"daemons", demo.DaemonPorts, "2000", demo.DaemonNet, demo.Daemons, "the 12 daemons " + demo.Daemons},
		{"farm", "22,80,443", strconv.Itoa(u.f.labRate), lab.Farm, lab.Farm, "the farm " + lab.Farm + " (131,072 addresses) on 22,80,443"},
	}
	for _, s := range scans {
		if ctx.Err() != nil {
			return nil
		}
		id := fmt.Sprintf("up-lab-%s-%d-%d", s.name, u.t0.Unix(), round)
		u.say("scanner: %s at %s probes/s, identifying what answers", s.what, s.rate)
		t0 := time.Now()
		c, err := u.startChild(ctx, "scan-"+s.name, lab.NSScan, "scan", "-q", "--grab", "-p", s.ports, "-r", s.rate, "-c", "2s",
			"--allow-reserved", s.allow, "--scan-id", id, "-o", filepath.Join(u.work, "demo", s.name+".jsonl"),
			"--server", u.labURL, s.targets)
		if err != nil {
			u.say("scanner: %v", err)
			continue
		}
		werr := c.cmd.Wait()
		if ctx.Err() != nil {
			return nil
		}
		n := publishedIn(c.logText())
		if werr != nil {
			u.say("scanner: %s: %v\n%s", s.name, werr, c.logText())
		}
		u.say("scanner: %s done in %s: %d services published", s.name, time.Since(t0).Round(100*time.Millisecond), n)
		res[id] = n
	}
	return res
}

// trafficLoop sends a round of real tool traffic at the sensor now and
// every --traffic-every.
func (u *upRun) trafficLoop(ctx context.Context) {
	skip := map[string]bool{}
	for _, t := range demo.MissingTools() {
		skip[t] = true
	}
	for i, s := range u.srcs {
		if i == 0 {
			u.say("traffic: every %s, real tools from %d lab sources at the dark range:", u.f.trafficEvery, len(u.srcs))
		}
		u.say("traffic:   %s (%s, fiction): %s", s.Addr, s.Country, s.Does)
	}
	for r := 0; ; r++ {
		res := demo.Round(ctx, u.srcs, r, 20*time.Second, skip)
		if ctx.Err() != nil {
			return
		}
		if r == 0 {
			u.say("traffic: first round done in %s, %d commands (%d ended with an error status, often normal for scanners: %s)",
				res.Took.Round(100*time.Millisecond), res.Commands, len(res.Failed), strings.Join(res.Failed, "; "))
			close(u.traffic)
		} else {
			u.log.Info("traffic round", "round", r, "commands", res.Commands, "failed", len(res.Failed), "took", res.Took)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(u.f.trafficEvery):
		}
	}
}
