// Command scanbench runs vantage scan and its anchors, zmap and masscan,
// against the netlab host farm at the same rates, several times each, and
// writes one JSON line per run and a markdown summary. It needs root and
// the lab in ../shared/netlab; bench/scan.sh builds and runs it.
//
// Sections:
//
//	farm       198.18.0.0/15 port 80 at each -rates (0 = unlimited), every tool
//	send-only  the farm behind a drop table in nl-net, 4 probes per target,
//	           unthrottled: the sustained send rate without reply traffic
//	rate       requested 100 .. 100,000 pps on slices sized for 2-3 s of sending
//	           (vantage, and zmap as the anchor)
//	memory     vantage max RSS for the farm x 1 port and x 3 ports, unthrottled
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vantagehq/vantage/internal/lab"
)

const (
	samplePeriod = 10 * time.Millisecond
	dropTable    = "vantage_scanbench_drop" // nftables table of the send-only section, in nl-net
)

// rateSpecs are the rate-accuracy runs: each sends for about 2-3 s.
var rateSpecs = []struct {
	rate   int
	cidr   string
	probes int
}{
	{100, "198.18.0.0/24", 1},    // 256 probes: 2.6 s
	{1000, "198.18.0.0/21", 1},   // 2,048 probes: 2.0 s
	{10000, "198.18.0.0/17", 1},  // 32,768 probes: 3.3 s
	{100000, "198.18.0.0/15", 2}, // 262,144 probes: 2.6 s
}

type config struct {
	out     string
	vantage string
	reps    int
	rates   []int
	tools   []string
	quick   bool
	timeout time.Duration
	pause   time.Duration
}

// The main goroutine keeps the main thread, so the sampler's goroutine,
// which moves its thread into nl-scan for good, never gets that thread: a
// main thread left in nl-scan would make `netlab down` count this process
// as part of the lab and kill it.
func init() { runtime.LockOSThread() }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scanbench:", err)
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

func parseFlags() (config, error) {
	var c config
	var rates, tools string
	flag.StringVar(&c.out, "out", "", "output directory (required)")
	flag.StringVar(&c.vantage, "vantage", "", "the vantage binary (required)")
	flag.IntVar(&c.reps, "reps", 3, "repetitions of every setting")
	flag.StringVar(&rates, "rates", "10000 100000 0", "farm-scan rates in pps, space separated (0 = unlimited)")
	flag.StringVar(&tools, "tools", "vantage zmap masscan", "tools to run, space separated")
	var extra string
	flag.StringVar(&extra, "vantage-args", "", "flags added to every vantage scan, e.g. \"--send-method ring\"")
	flag.BoolVar(&c.quick, "quick", false, "fewer rate-accuracy points")
	flag.DurationVar(&c.timeout, "timeout", 120*time.Second, "kill a scan that runs longer than this")
	flag.DurationVar(&c.pause, "pause", time.Second, "pause between runs")
	flag.Parse()
	vantageExtra = strings.Fields(extra)
	if c.out == "" || c.vantage == "" {
		return c, errors.New("-out and -vantage are required")
	}
	if c.reps < 1 {
		return c, fmt.Errorf("-reps %d: need at least 1", c.reps)
	}
	for _, f := range strings.Fields(rates) {
		r, err := strconv.Atoi(f)
		if err != nil || r < 0 {
			return c, fmt.Errorf("-rates: bad rate %q", f)
		}
		c.rates = append(c.rates, r)
	}
	c.tools = strings.Fields(tools)
	if len(c.tools) == 0 {
		return c, errors.New("-tools is empty")
	}
	return c, nil
}

// bench holds what every run needs.
type bench struct {
	cfg       config
	lab       *lab.Lab
	tools     []*tool  // selected and installed, in table order
	notes     []string // skipped tools and runs, for the summary
	raw       string   // directory of the tools' own files
	blocklist string
	truth     map[int]map[netip.Addr]bool
	results   *os.File
	records   []record
}

func run() error {
	cfg, err := parseFlags()
	if err != nil {
		return err
	}
	if why := lab.Unavailable(); why != "" {
		return errors.New(why)
	}
	b := &bench{cfg: cfg, raw: filepath.Join(cfg.out, "raw"), truth: map[int]map[netip.Addr]bool{}}
	if err := b.selectTools(); err != nil {
		return err
	}
	if len(b.tools) == 0 {
		return errors.New("none of the tools is installed: " + strings.Join(cfg.tools, ", "))
	}
	if err := os.MkdirAll(b.raw, 0o755); err != nil {
		return err
	}
	b.blocklist = filepath.Join(b.raw, "empty-blocklist.conf")
	if err := os.WriteFile(b.blocklist, nil, 0o644); err != nil {
		return err
	}
	if b.results, err = os.Create(filepath.Join(cfg.out, "results.jsonl")); err != nil {
		return err
	}
	defer b.results.Close()
	env := environment(b.tools)

	logf("waiting for the lab lock (/run/vantage-netlab.lock) and checking the lab ...")
	upCtx, cancelUp := context.WithTimeout(context.Background(), 5*time.Minute)
	b.lab, err = lab.Up(upCtx)
	cancelUp()
	if err != nil {
		return err
	}
	defer func() {
		if err := b.lab.Close(); err != nil {
			logf("%v", err)
		}
	}()
	// From here on a signal cancels ctx: the running scan is killed, the
	// drop table (if any) deleted and the lab closed before exiting.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := deleteDropTable(); err != nil { // a leftover of a killed run
		return err
	}

	sections := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"farm", b.farm},
		{"send-only", b.sendOnly},
		{"rate", b.rateAccuracy},
		{"memory", b.memory},
	}
	for _, s := range sections {
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	summary := b.summary(env)
	if err := os.WriteFile(filepath.Join(cfg.out, "summary.md"), []byte(summary), 0o644); err != nil {
		return err
	}
	logf("wrote %s and %s", b.results.Name(), filepath.Join(cfg.out, "summary.md"))
	return nil
}

// selectTools keeps the requested tools that are installed; a missing one
// is skipped with a note.
func (b *bench) selectTools() error {
	for _, name := range b.cfg.tools {
		var t *tool
		for _, k := range tools {
			if k.name == name {
				c := *k
				t = &c
			}
		}
		if t == nil {
			return fmt.Errorf("unknown tool %q (known: vantage, zmap, masscan)", name)
		}
		if t.name == "vantage" {
			t.bin = b.cfg.vantage
		}
		path, err := exec.LookPath(t.bin)
		if err != nil {
			b.note("%s skipped: not installed (%v)", name, err)
			continue
		}
		if t.bin, err = filepath.Abs(path); err != nil {
			return err
		}
		b.tools = append(b.tools, t)
	}
	return nil
}

func (b *bench) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	logf("note: %s", msg)
	b.notes = append(b.notes, msg)
}

func (b *bench) tool(name string) *tool {
	for _, t := range b.tools {
		if t.name == name {
			return t
		}
	}
	return nil
}

func rateLabel(rate int) string {
	if rate == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d pps", rate)
}

var farm = netip.MustParsePrefix(lab.Farm)

// farm scans the whole farm, port 80, at every rate, interleaving the tools.
func (b *bench) farm(ctx context.Context) error {
	for rep := 1; rep <= b.cfg.reps; rep++ {
		for _, rate := range b.cfg.rates {
			for _, t := range b.tools {
				s := runSpec{Section: "farm", Label: rateLabel(rate), Rate: rate, CIDR: farm,
					Ports: []int{80}, Probes: 1, Rep: rep}
				if err := b.do(ctx, t, s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// sendOnly measures the sustained send rate: nl-net drops every probe
// before it reaches the farm, so no replies load the machine, and 4 probes
// per target make the send window four times longer.
func (b *bench) sendOnly(ctx context.Context) (err error) {
	err = lab.Nft(ctx, lab.NSNet, fmt.Sprintf(`
table inet %s {
	counter dropped { }
	chain pre {
		type filter hook prerouting priority -500; policy accept;
		ip daddr %s counter name "dropped" drop
	}
}`, dropTable, lab.Farm))
	if err != nil {
		return fmt.Errorf("create the drop table: %w", err)
	}
	defer func() {
		if derr := deleteDropTable(); derr != nil && err == nil {
			err = derr
		}
	}()
	for rep := 1; rep <= b.cfg.reps; rep++ {
		for _, t := range b.tools {
			s := runSpec{Section: "send-only", Label: "unlimited, 4 probes/target", CIDR: farm,
				Ports: []int{80}, Probes: 4, Rep: rep, Dropped: true}
			if err := b.do(ctx, t, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteDropTable removes the send-only table if it exists. It does not
// use the run's context: it must work after an interrupt.
func deleteDropTable() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// adding an existing table is a no-op, so this deletes it whether or not it exists
	if err := lab.Nft(ctx, lab.NSNet, fmt.Sprintf("add table inet %[1]s\ndelete table inet %[1]s\n", dropTable)); err != nil {
		return fmt.Errorf("delete the drop table inet %s in %s: %w", dropTable, lab.NSNet, err)
	}
	return nil
}

// rateAccuracy asks vantage and zmap for fixed rates.
func (b *bench) rateAccuracy(ctx context.Context) error {
	var ts []*tool
	for _, name := range []string{"vantage", "zmap"} {
		if t := b.tool(name); t != nil {
			ts = append(ts, t)
		}
	}
	for rep := 1; rep <= b.cfg.reps; rep++ {
		for _, rs := range rateSpecs {
			if b.cfg.quick && rs.rate != 1000 && rs.rate != 100000 {
				continue
			}
			for _, t := range ts {
				s := runSpec{Section: "rate", Label: rateLabel(rs.rate), Rate: rs.rate,
					CIDR: netip.MustParsePrefix(rs.cidr), Ports: []int{80}, Probes: rs.probes, Rep: rep}
				if err := b.do(ctx, t, s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// memory scans the farm on 1 and on 3 ports with vantage, unthrottled.
func (b *bench) memory(ctx context.Context) error {
	t := b.tool("vantage")
	if t == nil {
		return nil
	}
	for rep := 1; rep <= b.cfg.reps; rep++ {
		for _, ports := range [][]int{{80}, {22, 80, 443}} {
			s := runSpec{Section: "memory", Label: fmt.Sprintf("%d port(s): %s", len(ports), joinPorts(ports)),
				CIDR: farm, Ports: ports, Probes: 1, Rep: rep}
			if err := b.do(ctx, t, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// do runs one scan, records it and pauses. Only an interrupt or a broken
// lab is an error; a tool that fails is recorded as such.
func (b *bench) do(ctx context.Context, t *tool, s runSpec) error {
	rec, err := b.run(ctx, t, s)
	if errors.Is(err, errSkip) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s rep %d: %w", t.name, s.Label, s.Rep, err)
	}
	b.records = append(b.records, rec)
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := b.results.Write(append(line, '\n')); err != nil {
		return err
	}
	logf("%s", rec.progress())
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.cfg.pause):
		return nil
	}
}

var errSkip = errors.New("skipped")

// record is one run, as results.jsonl stores it.
type record struct {
	Section         string   `json:"section"`
	Tool            string   `json:"tool"`
	Label           string   `json:"label"`
	Rep             int      `json:"rep"`
	Rate            int      `json:"rate_requested"` // 0 = unlimited
	Targets         string   `json:"targets"`
	Ports           []int    `json:"ports"`
	ProbesPerTarget int      `json:"probes_per_target"`
	Cmd             []string `json:"cmd"`
	ExitCode        int      `json:"exit_code"`
	TimedOut        bool     `json:"timed_out,omitempty"`
	Error           string   `json:"error,omitempty"`

	WallS      float64 `json:"wall_s"`      // the whole tool run, cooldown included
	WindowS    float64 `json:"window_s"`    // send window on scan0 (0: none found)
	Probes     uint64  `json:"probes"`      // probes sent
	ProbesFrom string  `json:"probes_from"` // "tool" (its own count) or "spec" (targets x ports x probes)
	PPS        float64 `json:"pps"`         // probes / window_s
	TxPackets  uint64  `json:"tx_packets"`  // scan0 tx over the run (probes and the kernel's RSTs)

	DeliveredSYN uint64  `json:"delivered_syn"` // farm_syn: SYN-only packets that reached the farm
	DeliveredPPS float64 `json:"delivered_pps"` // delivered_syn / window_s
	SynAckOut    uint64  `json:"synack_out"`
	RstOut       uint64  `json:"rst_out"`
	ReachedNet   *uint64 `json:"reached_net,omitempty"` // send-only: probes the drop table counted in nl-net

	ToolPPS   float64  `json:"tool_send_pps,omitempty"`   // the tool's own send rate
	ToolDups  *uint64  `json:"tool_duplicates,omitempty"` // duplicates the tool saw
	RecvDrops *uint64  `json:"recv_drops,omitempty"`
	ToolExtra []string `json:"tool_extra,omitempty"`

	Found    int      `json:"found"`  // result lines
	Unique   int      `json:"unique"` // distinct (address, port)
	Dups     int      `json:"dups"`   // found - unique
	Truth    int      `json:"truth"`  // open (address, port) in the targets
	Recall   *float64 `json:"recall,omitempty"`
	FalsePos int      `json:"false_pos"`

	UserS         float64 `json:"user_s"`
	SysS          float64 `json:"sys_s"`
	CPUS          float64 `json:"cpu_s"` // user + sys of the scanner process
	CPUUsPerProbe float64 `json:"cpu_us_per_probe"`
	MaxRSSKB      int64   `json:"maxrss_kb"`
	BoxCPUS       float64 `json:"box_cpu_s"` // CPU time of the whole machine during the run
	Load1         float64 `json:"load1_before"`
}

func (r record) progress() string {
	s := fmt.Sprintf("[%s %d] %-7s %-26s %d probes in %.2fs window (%.0f pps), wall %.1fs, CPU %.2fs (%.2f µs/probe), RSS %d MiB",
		r.Section, r.Rep, r.Tool, r.Label, r.Probes, r.WindowS, r.PPS, r.WallS, r.CPUS, r.CPUUsPerProbe, r.MaxRSSKB>>10)
	if r.Recall != nil {
		s += fmt.Sprintf(", recall %.2f%%, %d fp, %d dups", *r.Recall, r.FalsePos, r.Dups)
	}
	if r.ReachedNet != nil {
		s += fmt.Sprintf(", %d dropped in nl-net", *r.ReachedNet)
	}
	if r.Error != "" {
		s += ", ERROR " + r.Error
	}
	return s
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9.=-]+`)

// run runs one scan in nl-scan and measures it.
func (b *bench) run(ctx context.Context, t *tool, s runSpec) (rec record, err error) {
	tag := unsafeName.ReplaceAllString(fmt.Sprintf("%s-%s-%s-%s-%d", s.Section, t.name, s.Label, s.CIDR, s.Rep), "_")
	files := runFiles{
		Hits:      filepath.Join(b.raw, tag+".hits"),
		Meta:      filepath.Join(b.raw, tag+".meta.json"),
		Blocklist: b.blocklist,
	}
	args, err := t.args(s, files)
	if err != nil {
		b.note("%s, %s %s: %v", t.name, s.Section, s.Label, err)
		return rec, errSkip
	}
	rec = record{Section: s.Section, Tool: t.name, Label: s.Label, Rep: s.Rep, Rate: s.Rate,
		Targets: s.CIDR.String(), Ports: s.Ports, ProbesPerTarget: s.Probes,
		Cmd: append([]string{t.bin}, args...)}
	for _, p := range []string{files.Hits, files.Meta} {
		os.Remove(p) // a leftover would be read as this run's
	}
	if !s.Dropped {
		for _, p := range s.Ports {
			if err := b.loadTruth(ctx, p); err != nil {
				return rec, err
			}
		}
	}
	log, err := os.Create(filepath.Join(b.raw, tag+".log"))
	if err != nil {
		return rec, err
	}
	defer log.Close()

	fc0, err := lab.FarmCounters(ctx)
	if err != nil {
		return rec, err
	}
	var dc0 map[string]uint64
	if s.Dropped {
		if dc0, err = lab.Counters(ctx, lab.NSNet, "inet", dropTable); err != nil {
			return rec, err
		}
	}
	rec.Load1 = load1()
	cpu0 := boxCPU()
	stopTrickle := func() {}
	if t.trickle {
		stopTrickle = lab.Trickle()
	}
	sampler, err := startTxSampler(lab.NSScan, lab.ScanIF, samplePeriod)
	if err != nil {
		stopTrickle()
		return rec, err
	}
	time.Sleep(200 * time.Millisecond) // a quiet baseline before the scan

	runCtx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	cmd := lab.Command(runCtx, lab.NSScan, t.bin, args...) // ip netns exec execs the tool: the child is the tool
	cmd.Dir = b.raw                                        // masscan writes paused.conf when interrupted
	cmd.Stdout, cmd.Stderr = log, log
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	rec.WallS = round(time.Since(start).Seconds(), 3)
	rec.TimedOut = errors.Is(runCtx.Err(), context.DeadlineExceeded)
	cancel()
	time.Sleep(50 * time.Millisecond)
	samplerErr := sampler.Stop()
	stopTrickle()
	rec.BoxCPUS = round(boxCPU()-cpu0, 2)
	if ctx.Err() != nil {
		return rec, ctx.Err()
	}
	if samplerErr != nil {
		return rec, fmt.Errorf("sampling %s tx: %w", lab.ScanIF, samplerErr)
	}

	if ps := cmd.ProcessState; ps != nil {
		rec.ExitCode = ps.ExitCode()
		rec.UserS = round(ps.UserTime().Seconds(), 3)
		rec.SysS = round(ps.SystemTime().Seconds(), 3)
		rec.CPUS = round(rec.UserS+rec.SysS, 3)
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			rec.MaxRSSKB = ru.Maxrss // kilobytes on Linux
		}
	}
	var errs []string
	if runErr != nil {
		errs = append(errs, fmt.Sprintf("%v (see %s)", runErr, log.Name()))
	}
	if rec.TimedOut {
		errs = append(errs, fmt.Sprintf("killed after %s", b.cfg.timeout))
	}

	fc1, err := lab.FarmCounters(ctx)
	if err != nil {
		return rec, err
	}
	rec.DeliveredSYN = fc1["farm_syn"] - fc0["farm_syn"]
	rec.SynAckOut = fc1["farm_synack_out"] - fc0["farm_synack_out"]
	rec.RstOut = fc1["farm_rst_out"] - fc0["farm_rst_out"]
	if s.Dropped {
		dc1, err := lab.Counters(ctx, lab.NSNet, "inet", dropTable)
		if err != nil {
			return rec, err
		}
		n := dc1["dropped"] - dc0["dropped"]
		rec.ReachedNet = &n
	}

	rec.Probes, rec.ProbesFrom = s.probes(), "spec"
	if t.report != nil {
		rep, err := t.report(files, s)
		if err != nil {
			errs = append(errs, "tool report: "+err.Error())
		} else {
			if rep.Probes > 0 {
				rec.Probes, rec.ProbesFrom = rep.Probes, "tool"
			}
			rec.ToolPPS = round(rep.SendPPS, 1)
			rec.ToolDups, rec.RecvDrops, rec.ToolExtra = rep.Dups, rep.RecvDrops, rep.Extra
		}
	}
	// Replies to the ping trickle are single packets on scan0: do not let
	// them stretch the window.
	minGrowth := uint64(0)
	if t.trickle {
		minGrowth = 1
	}
	if win, tx, ok := sampler.window(minGrowth); ok {
		rec.WindowS = round(win.Seconds(), 4)
		rec.PPS = round(float64(rec.Probes)/win.Seconds(), 1)
		rec.DeliveredPPS = round(float64(rec.DeliveredSYN)/win.Seconds(), 1)
		rec.TxPackets = tx
	} else {
		errs = append(errs, "no send window on "+lab.ScanIF)
	}
	if rec.Probes > 0 {
		rec.CPUUsPerProbe = round(rec.CPUS/float64(rec.Probes)*1e6, 3)
	}

	hits, err := t.hits(files.Hits, s)
	if err != nil {
		errs = append(errs, "results: "+err.Error())
	}
	b.score(&rec, hits, s)
	rec.Error = strings.Join(errs, "; ")
	return rec, nil
}

func (b *bench) loadTruth(ctx context.Context, port int) error {
	if _, ok := b.truth[port]; ok {
		return nil
	}
	set, err := b.lab.Truth(ctx, port)
	if err != nil {
		return err
	}
	b.truth[port] = set
	return nil
}

// score compares the hits with the truth of the spec's targets and ports.
func (b *bench) score(rec *record, hits []hit, s runSpec) {
	seen := map[hit]int{}
	for _, h := range hits {
		seen[h]++
	}
	rec.Found, rec.Unique = len(hits), len(seen)
	rec.Dups = rec.Found - rec.Unique
	if s.Dropped {
		rec.FalsePos = rec.Unique // nothing can answer
		return
	}
	for _, p := range s.Ports {
		for a := range b.truth[p] {
			if s.CIDR.Contains(a) {
				rec.Truth++
			}
		}
	}
	found := 0
	for h := range seen {
		if s.CIDR.Contains(h.Addr) && b.truth[h.Port][h.Addr] {
			found++
		} else {
			rec.FalsePos++
		}
	}
	if rec.Truth > 0 {
		r := round(100*float64(found)/float64(rec.Truth), 3)
		rec.Recall = &r
	}
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}

// boxCPU is the CPU time the whole machine has used (all but idle and
// iowait), in seconds: it includes the kernel work of the namespace that
// answers the probes, and anything else running on the machine.
func boxCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy float64
	for i := 1; i < len(f) && i <= 8; i++ {
		if i == 4 || i == 5 { // idle, iowait
			continue
		}
		v, _ := strconv.ParseFloat(f[i], 64)
		busy += v
	}
	return busy / 100 // /proc/stat counts USER_HZ, always 100 on Linux
}

func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// environment describes the machine and the tools, for the summary.
func environment(ts []*tool) []string {
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil && len(out) == 0 {
			return "?"
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				return l
			}
		}
		return "?"
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	commit := first("git", "rev-parse", "--short", "HEAD")
	if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
		commit += " (uncommitted changes in the tree)"
	}
	env := []string{
		"date: " + time.Now().UTC().Format(time.RFC3339),
		"kernel: " + strings.TrimSpace(string(kernel)),
		fmt.Sprintf("cpus: %d", runtime.NumCPU()),
		"vantage: commit " + commit,
	}
	for _, t := range ts {
		switch t.name {
		case "zmap":
			env = append(env, "zmap: "+first(t.bin, "--version"))
		case "masscan":
			env = append(env, "masscan: "+first(t.bin, "--version"))
		}
	}
	return env
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
