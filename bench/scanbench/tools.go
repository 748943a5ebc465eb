package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/vantagehq/vantage/internal/lab"
)

// vantageExtra are flags added to every vantage command (-vantage-args).
var vantageExtra []string

// cooldown is how long every tool waits for late replies after its last
// probe, in seconds.
const cooldown = 2

// runSpec is one scan to run: what to scan and how fast.
type runSpec struct {
	Section string       // farm, send-only, rate or memory
	Label   string       // the setting, as the tables show it
	Rate    int          // requested probes per second; 0 = unlimited
	CIDR    netip.Prefix // targets
	Ports   []int
	Probes  int  // probes per target
	Rep     int  // 1-based repetition
	Dropped bool // probes are dropped before the farm (send-only): no replies, no recall
}

// probes is the number of packets the spec asks for.
func (s runSpec) probes() uint64 {
	return addresses(s.CIDR) * uint64(len(s.Ports)) * uint64(s.Probes)
}

func addresses(p netip.Prefix) uint64 { return 1 << (32 - p.Bits()) }

// runFiles are the per-run files a tool writes.
type runFiles struct {
	Hits      string // the tool's results
	Meta      string // the tool's own summary, if it writes one
	Blocklist string // an empty file (zmap's default blocklist excludes the farm)
}

// hit is one (address, port) a tool reported open.
type hit struct {
	Addr netip.Addr
	Port int
}

// toolReport is what a tool says about its own run.
type toolReport struct {
	Probes    uint64   // probes sent, when the tool counts them
	SendPPS   float64  // the tool's own send rate
	Dups      *uint64  // duplicate replies the tool saw (it may filter them from its output)
	RecvDrops *uint64  // replies the kernel dropped before the tool read them
	Extra     []string // anything else worth a look, "key=value"
}

// tool describes how to run one scanner and read what it wrote.
type tool struct {
	name    string
	bin     string // executable; found in PATH unless absolute
	trickle bool   // needs packets arriving to exit (masscan 1.3.2)
	// args returns the command line for a spec, or an error if the tool
	// cannot express it (the run is skipped).
	args func(s runSpec, f runFiles) ([]string, error)
	// hits parses the result file.
	hits func(path string, s runSpec) ([]hit, error)
	// report reads the tool's own summary (nil: it writes none).
	report func(f runFiles, s runSpec) (toolReport, error)
}

// tools is every tool the benchmark knows, in the order runs interleave.
var tools = []*tool{
	{
		name: "vantage",
		bin:  "vantage", // replaced by -vantage
		args: func(s runSpec, f runFiles) ([]string, error) {
			args := []string{"scan", "-q", "-p", joinPorts(s.Ports), "-r", strconv.Itoa(s.Rate),
				"-P", strconv.Itoa(s.Probes), "--allow-reserved", lab.Farm, s.CIDR.String(),
				"-c", fmt.Sprintf("%ds", cooldown), "-o", f.Hits, "--metadata", f.Meta}
			return append(args, vantageExtra...), nil
		},
		hits:   vantageHits,
		report: vantageReport,
	},
	{
		name: "zmap",
		bin:  "zmap",
		args: func(s runSpec, f runFiles) ([]string, error) {
			if len(s.Ports) != 1 {
				return nil, errors.New("zmap scans one port per run")
			}
			// zmap 2.1.1 paces targets, not packets: with -P k it sends k
			// probes per rate slot (and counts targets in total_sent).
			rate := s.Rate
			if rate > 0 && s.Probes > 1 {
				rate = max(rate/s.Probes, 1)
			}
			return []string{"-q", "-p", strconv.Itoa(s.Ports[0]), "-r", strconv.Itoa(rate),
				"-P", strconv.Itoa(s.Probes), "-i", lab.ScanIF, "-S", lab.ScanIP, "-G", lab.GatewayMC,
				"-b", f.Blocklist, "-c", strconv.Itoa(cooldown), "-o", f.Hits, "-m", f.Meta,
				s.CIDR.String()}, nil
		},
		hits:   zmapHits,
		report: zmapReport,
	},
	{
		name:    "masscan",
		bin:     "masscan",
		trickle: true,
		args: func(s runSpec, f runFiles) ([]string, error) {
			// masscan has no probes-per-target option: K probes per
			// target become K consecutive ports (-p80-83).
			ports := joinPorts(s.Ports)
			if s.Probes > 1 {
				if len(s.Ports) != 1 {
					return nil, errors.New("masscan: several probes per target need a single port")
				}
				ports = fmt.Sprintf("%d-%d", s.Ports[0], s.Ports[0]+s.Probes-1)
			}
			rate := s.Rate
			if rate == 0 {
				rate = 10_000_000 // masscan's way of saying "unlimited"
			}
			return []string{s.CIDR.String(), "-p" + ports, "--rate", strconv.Itoa(rate),
				"--adapter", lab.ScanIF, "--adapter-ip", lab.ScanIP, "--adapter-mac", lab.ScanMAC,
				"--router-mac", lab.GatewayMC, "--wait", strconv.Itoa(cooldown), "-oL", f.Hits}, nil
		},
		hits: masscanHits,
	},
}

func joinPorts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// eachLine calls fn for every line of a file. A missing file has no lines
// (a tool that found nothing may not create it).
func eachLine(path string, fn func(line string) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if err := fn(sc.Text()); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// vantageHits reads vantage's JSON lines.
func vantageHits(path string, _ runSpec) ([]hit, error) {
	var hits []hit
	err := eachLine(path, func(line string) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		var r struct {
			IP    netip.Addr `json:"ip"`
			Port  int        `json:"port"`
			State string     `json:"state"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return err
		}
		if r.State == "open" {
			hits = append(hits, hit{r.IP, r.Port})
		}
		return nil
	})
	return hits, err
}

// zmapHits reads zmap's CSV (saddr first; a header line, if any, is skipped).
// zmap scans one port, so every hit is on the spec's port.
func zmapHits(path string, s runSpec) ([]hit, error) {
	var hits []hit
	err := eachLine(path, func(line string) error {
		field, _, _ := strings.Cut(strings.TrimSpace(line), ",")
		if a, err := netip.ParseAddr(field); err == nil {
			hits = append(hits, hit{a, s.Ports[0]})
		}
		return nil
	})
	return hits, err
}

// masscanHits reads masscan -oL: "open tcp 80 198.18.0.102 1700000000".
func masscanHits(path string, _ runSpec) ([]hit, error) {
	var hits []hit
	err := eachLine(path, func(line string) error {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "open" || f[1] != "tcp" {
			return nil
		}
		port, err := strconv.Atoi(f[2])
		if err != nil {
			return fmt.Errorf("port %q: %w", f[2], err)
		}
		a, err := netip.ParseAddr(f[3])
		if err != nil {
			return err
		}
		hits = append(hits, hit{a, port})
		return nil
	})
	return hits, err
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func vantageReport(f runFiles, _ runSpec) (toolReport, error) {
	var m struct {
		Sent       uint64  `json:"probes_sent"`
		SendRate   float64 `json:"send_rate_pps"`
		Duplicates uint64  `json:"duplicates"`
		RecvDrops  uint64  `json:"recv_drops"`
		Failures   uint64  `json:"send_failures"`
		Hits       uint64  `json:"hits"`
		StopReason string  `json:"stop_reason"`
	}
	if err := readJSON(f.Meta, &m); err != nil {
		return toolReport{}, err
	}
	return toolReport{
		Probes: m.Sent, SendPPS: m.SendRate, Dups: &m.Duplicates, RecvDrops: &m.RecvDrops,
		Extra: []string{"send_failures=" + strconv.FormatUint(m.Failures, 10),
			"hits=" + strconv.FormatUint(m.Hits, 10), "stop_reason=" + m.StopReason},
	}, nil
}

func zmapReport(f runFiles, s runSpec) (toolReport, error) {
	var m struct {
		Sent          uint64 `json:"total_sent"` // targets; each gets -P probes
		SuccessTotal  uint64 `json:"success_total"`
		SuccessUnique uint64 `json:"success_unique"`
		PcapDrop      uint64 `json:"pcap_drop"`
		SendFailures  uint64 `json:"send_to_failures"`
	}
	if err := readJSON(f.Meta, &m); err != nil {
		return toolReport{}, err
	}
	dups := m.SuccessTotal - m.SuccessUnique
	return toolReport{
		Probes: m.Sent * uint64(s.Probes), Dups: &dups, RecvDrops: &m.PcapDrop,
		Extra: []string{"send_to_failures=" + strconv.FormatUint(m.SendFailures, 10)},
	}, nil
}
