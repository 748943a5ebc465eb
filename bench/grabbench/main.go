// Command grabbench measures vantage grab in netlab, with nmap -sV as the
// anchor in the same run. It needs root and the lab; bench/grab.sh builds
// and runs it.
//
// Sections:
//
//	services  the lab's twelve real daemons, 12 addresses x 12 ports (144
//	          targets, as nmap -sV was measured before we started): wall
//	          time of vantage grab and of nmap -sV, and how many services
//	          each names with the right product and the exact version
//	farm      every open 22, 80 and 443 of the host farm, one protocol at a
//	          time: grabs/s, CPU ms per grab, errors, banners that match
//	          `netlab truth PORT --banner`
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vantagehq/vantage/internal/lab"
)

// zgrab2 in this lab before we started (from the issue): CPU ms per grab
// and sustained grabs/s. zgrab2 is not installed here, so these are a
// reference, not an anchor run in the same invocation.
var zgrab2 = map[int]struct {
	cpuMS float64
	rate  float64
	what  string
}{
	80:  {0.31, 3830, "http"},
	443: {0.96, 908, "tls"},
	22:  {0, 1771, "ssh banner"},
}

// farmOpts are the farm section's knobs.
var farmOpts struct {
	rows, compare, profiles string
}

func main() {
	vantage := flag.String("vantage", "vantage", "the vantage binary")
	reps := flag.Int("reps", 3, "runs of each farm protocol")
	conc := flag.Int("concurrency", 1000, "vantage grab --concurrency on the farm")
	sections := flag.String("sections", "services,farm", "what to run")
	flag.StringVar(&farmOpts.rows, "rows", "80,443,443h,22", "farm rows to run: 80, 443 (handshake then HTTP), 443h (handshake only), 22")
	flag.StringVar(&farmOpts.compare, "compare", "", "a second vantage `binary` run on the farm too, alternating with -vantage run by run, so two builds are compared under the same load")
	flag.StringVar(&farmOpts.profiles, "cpuprofile", "", "write a CPU profile of every farm run of vantage grab into `DIR`")
	flag.Parse()
	if err := run(*vantage, *reps, *conc, *sections); err != nil {
		fmt.Fprintln(os.Stderr, "grabbench:", err)
		os.Exit(1)
	}
}

func run(vantage string, reps, conc int, sections string) error {
	ctx := context.Background()
	l, err := lab.Up(ctx)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Printf("# vantage grab benchmark (%s)\n\n", time.Now().UTC().Format("2006-01-02 15:04"))
	if strings.Contains(sections, "services") {
		if err := services(ctx, l, vantage); err != nil {
			return err
		}
	}
	if strings.Contains(sections, "farm") {
		if err := farm(ctx, l, vantage, reps, conc); err != nil {
			return err
		}
	}
	return nil
}

type outcome struct {
	protocol, product, version string
}

func services(ctx context.Context, l *lab.Lab, vantage string) error {
	if err := l.ServicesUp(ctx); err != nil {
		return err
	}
	truth, err := l.ServicesTruth(ctx)
	if err != nil {
		return err
	}
	var addrs, ports []string
	for _, s := range truth {
		addrs = append(addrs, s.Addr.Addr().String())
		ports = append(ports, strconv.Itoa(int(s.Addr.Port())))
	}
	var targets []string
	for _, a := range addrs {
		for _, p := range ports {
			targets = append(targets, a+":"+p)
		}
	}

	// vantage: every (address, port) pair; closed ones are refused at once
	t0 := time.Now()
	out, _, err := runIn(ctx, strings.Join(targets, "\n"), vantage, "grab", "-q", "--allow-reserved", "203.0.113.0/24", "--concurrency", "256")
	if err != nil {
		return fmt.Errorf("vantage grab: %w", err)
	}
	vTime := time.Since(t0)
	vGot := map[netip.AddrPort]outcome{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var g struct {
			IP                         netip.Addr
			Port                       uint16
			Protocol, Product, Version string
		}
		if json.Unmarshal(sc.Bytes(), &g) == nil && g.Protocol != "" {
			vGot[netip.AddrPortFrom(g.IP, g.Port)] = outcome{g.Protocol, g.Product, g.Version}
		}
	}

	// nmap -sV on the same 12 x 12
	t0 = time.Now()
	xmlOut, _, err := runIn(ctx, "", "nmap", append([]string{"-sV", "-Pn", "-n", "-oX", "-", "-p", strings.Join(ports, ",")}, addrs...)...)
	nTime := time.Since(t0)
	nGot := map[netip.AddrPort]outcome{}
	if err != nil {
		fmt.Printf("nmap -sV failed: %v (its column is empty)\n\n", err)
	} else {
		nGot = parseNmap(xmlOut)
	}

	fmt.Printf("## The twelve lab daemons (12 addresses x 12 ports, %d targets)\n\n", len(targets))
	fmt.Println("| service | truth | vantage | nmap -sV |")
	fmt.Println("|---|---|---|---|")
	var vProd, vExact, nProd, nExact, revealedByV int
	for _, s := range truth {
		v, n := vGot[s.Addr], nGot[s.Addr]
		vp, ve := judge(s, v)
		np, ne := judge(s, n)
		vProd, vExact, nProd, nExact = vProd+b2i(vp), vExact+b2i(ve), nProd+b2i(np), nExact+b2i(ne)
		if v.version != "" {
			revealedByV++
		}
		fmt.Printf("| %s %s | %s %s | %s | %s |\n", s.Addr, s.Name, s.Product, s.Version, mark(v, vp, ve), mark(n, np, ne))
	}
	fmt.Printf("\n| | vantage grab | nmap -sV | ratio |\n|---|---|---|---|\n")
	fmt.Printf("| wall time | %.2f s | %.2f s | %.3fx |\n", vTime.Seconds(), nTime.Seconds(), vTime.Seconds()/nTime.Seconds())
	fmt.Printf("| product right | %d of %d | %d of %d | |\n", vProd, len(truth), nProd, len(truth))
	fmt.Printf("| product and exact version | %d of %d | %d of %d | |\n\n", vExact, len(truth), nExact, len(truth))
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func mark(o outcome, prod, exact bool) string {
	if o.protocol == "" {
		return "nothing"
	}
	m := "✗"
	switch {
	case exact:
		m = "✓ exact"
	case prod:
		m = "✓ product"
	}
	return fmt.Sprintf("%s %s %s (%s)", o.product, o.version, m, o.protocol)
}

// judge: product right (lab.Service.SameProduct), and version equal to
// the upstream version the package ships.
func judge(s lab.Service, o outcome) (product, exact bool) {
	product = s.SameProduct(o.product)
	v := strings.Fields(o.version)
	return product, product && len(v) > 0 && v[0] == s.Version
}

// parseNmap reads nmap's XML output.
func parseNmap(b []byte) map[netip.AddrPort]outcome {
	var run struct {
		Hosts []struct {
			Address struct {
				Addr string `xml:"addr,attr"`
			} `xml:"address"`
			Ports []struct {
				ID    uint16 `xml:"portid,attr"`
				State struct {
					State string `xml:"state,attr"`
				} `xml:"state"`
				Service struct {
					Name    string `xml:"name,attr"`
					Product string `xml:"product,attr"`
					Version string `xml:"version,attr"`
					Tunnel  string `xml:"tunnel,attr"`
				} `xml:"service"`
			} `xml:"ports>port"`
		} `xml:"host"`
	}
	out := map[netip.AddrPort]outcome{}
	if err := xml.Unmarshal(b, &run); err != nil {
		return out
	}
	for _, h := range run.Hosts {
		a, err := netip.ParseAddr(h.Address.Addr)
		if err != nil {
			continue
		}
		for _, p := range h.Ports {
			if p.State.State != "open" {
				continue
			}
			out[netip.AddrPortFrom(a, p.ID)] = outcome{p.Service.Name, p.Service.Product, p.Service.Version}
		}
	}
	return out
}

func farm(ctx context.Context, l *lab.Lab, vantage string, reps, conc int) error {
	fmt.Printf("## Host farm, one protocol at a time (--concurrency %d, %d runs each, median)\n\n", conc, reps)
	// with -compare, two builds take turns run by run, so a load that
	// comes and goes on the machine weighs on both alike
	bins := []struct{ label, path string }{{"", vantage}}
	if farmOpts.compare != "" {
		bins = []struct{ label, path string }{{"A", vantage}, {"B", farmOpts.compare}}
		fmt.Printf("A: %s\nB: %s\n\n", vantage, farmOpts.compare)
	}
	// the process's own start (runtime, rule compilation) with no target,
	// so the per-grab figure can be given with and without it
	start := make([]float64, len(bins))
	for bi, b := range bins {
		var starts []float64
		for r := 0; r < 3; r++ {
			_, ru, err := runIn(ctx, "", b.path, "grab", "-q")
			if err != nil {
				return fmt.Errorf("vantage grab with no target: %w", err)
			}
			starts = append(starts, cpuMS(ru))
		}
		start[bi] = median(starts)
		name := "vantage grab"
		if b.label != "" {
			name = b.label
		}
		fmt.Printf("Start-up of %s with no target: %.1f CPU ms (median of 3).\n\n", name, start[bi])
	}
	fmt.Println("| port | services | grabs/s | CPU ms per grab | same, start-up excluded | errors | banners matching truth | zgrab2 before we started | CPU ratio (excl. start-up) | max RSS |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	// 443 twice: as we grab it by default (the handshake, then HTTP inside
	// the tunnel), and the handshake alone, the work zgrab2's tls module
	// does
	want := map[string]bool{}
	for _, r := range strings.Split(farmOpts.rows, ",") {
		want[strings.TrimSpace(r)] = true
	}
	for _, c := range []struct {
		row   string
		port  int
		label string
		extra []string
	}{{"80", 80, "80", nil}, {"443", 443, "443 (handshake, then HTTP inside)", nil}, {"443h", 443, "443 (handshake only: --tls-inner=false)", []string{"--tls-inner=false"}}, {"22", 22, "22", nil}} {
		if !want[c.row] {
			continue
		}
		port := c.port
		out, err := exec.CommandContext(ctx, l.Script, "truth", strconv.Itoa(port), "--banner").Output()
		if err != nil {
			return fmt.Errorf("netlab truth %d --banner: %w", port, err)
		}
		truth := map[string]string{}
		var targets []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			a, b, _ := strings.Cut(line, "\t")
			key := a + ":" + strconv.Itoa(port)
			truth[key] = b
			targets = append(targets, key)
		}
		type tally struct {
			rates, cpus []float64
			errs, match int
			rss         int64 // KiB, the largest of the runs
		}
		got := make([]tally, len(bins))
		for r := 0; r < reps; r++ {
			for bi, b := range bins {
				args := append([]string{"grab", "-q", "--allow-reserved", "198.18.0.0/15",
					"--concurrency", strconv.Itoa(conc), "--per-host", "2"}, c.extra...)
				if farmOpts.profiles != "" {
					args = append(args, "--cpuprofile", filepath.Join(farmOpts.profiles, fmt.Sprintf("%s%s-%d.prof", c.row, b.label, r)))
				}
				t0 := time.Now()
				res, ru, err := runIn(ctx, strings.Join(targets, "\n"), b.path, args...)
				el := time.Since(t0)
				if err != nil {
					return fmt.Errorf("vantage grab port %d: %w", port, err)
				}
				errs, match := 0, 0
				sc := bufio.NewScanner(bytes.NewReader(res))
				sc.Buffer(nil, 8<<20)
				for sc.Scan() {
					var g struct {
						IP     string
						Port   int
						Banner string
						Error  string
						HTTP   *struct{ Server string }
						TLS    *struct{ Subject string }
					}
					if json.Unmarshal(sc.Bytes(), &g) != nil {
						continue
					}
					if g.Error != "" {
						errs++
					}
					have := strings.TrimRight(g.Banner, "\r\n")
					if g.HTTP != nil {
						have = g.HTTP.Server
					}
					switch {
					case c.extra != nil && g.TLS != nil && g.TLS.Subject != "":
						match++ // handshake only: the certificate is what there is to match
					case c.extra == nil && have == truth[g.IP+":"+strconv.Itoa(g.Port)]:
						match++
					}
				}
				t := &got[bi]
				t.rates = append(t.rates, float64(len(targets))/el.Seconds())
				t.cpus = append(t.cpus, cpuMS(ru)/float64(len(targets)))
				t.errs, t.match = errs, match
				if ru != nil {
					t.rss = max(t.rss, ru.Maxrss)
				}
			}
		}
		z := zgrab2[port]
		for bi, b := range bins {
			t := got[bi]
			net := median(t.cpus) - start[bi]/float64(len(targets))
			ratio := "-"
			if z.cpuMS > 0 {
				ratio = fmt.Sprintf("%.2fx (%.2fx)", median(t.cpus)/z.cpuMS, net/z.cpuMS)
			}
			ref := fmt.Sprintf("%s: %.0f/s", z.what, z.rate)
			if z.cpuMS > 0 {
				ref += fmt.Sprintf(", %.2f CPU ms", z.cpuMS)
			}
			label := c.label
			if b.label != "" {
				label = b.label + ": " + label
			}
			fmt.Printf("| %s | %d | %.0f (%.0f-%.0f) | %.3f (%.3f-%.3f) | %.3f | %d | %d of %d | %s | %s | %.0f MiB |\n", label, len(targets),
				median(t.rates), minOf(t.rates), maxOf(t.rates), median(t.cpus), minOf(t.cpus), maxOf(t.cpus), net, t.errs, t.match, len(targets), ref, ratio, float64(t.rss)/1024)
		}
	}
	fmt.Println("\nOn the handshake-only row, \"banners matching truth\" counts the services whose certificate was recorded.")
	fmt.Println("CPU is the grabber process's user+system time over all its grabs (process start and")
	fmt.Println("rule loading included); the farm's single Python process serves every listener, so grabs/s")
	fmt.Println("is bounded by the lab as much as by the grabber.")
	return nil
}

// runIn runs a command in the scanner namespace with stdin and returns its
// output and resource usage.
func runIn(ctx context.Context, stdin string, name string, args ...string) ([]byte, *syscall.Rusage, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := lab.Command(ctx, lab.NSScan, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, nil, fmt.Errorf("%v: %s", err, stderr.String())
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return out, ru, nil
}

func cpuMS(ru *syscall.Rusage) float64 {
	if ru == nil {
		return 0
	}
	return float64(ru.Utime.Sec*1000+ru.Stime.Sec*1000) + float64(ru.Utime.Usec+ru.Stime.Usec)/1000
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func minOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
