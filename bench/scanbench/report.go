package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// group is the runs of one (section, tool, setting).
type group struct {
	section, tool, label string
	runs                 []record
}

// groups collects records in the order their settings first ran.
func groups(recs []record, section string) []*group {
	var out []*group
	idx := map[[2]string]*group{}
	for _, r := range recs {
		if r.Section != section {
			continue
		}
		k := [2]string{r.Tool, r.Label}
		g := idx[k]
		if g == nil {
			g = &group{section: section, tool: r.Tool, label: r.Label}
			idx[k] = g
			out = append(out, g)
		}
		g.runs = append(g.runs, r)
	}
	return out
}

func find(gs []*group, tool, label string) *group {
	for _, g := range gs {
		if g.tool == tool && g.label == label {
			return g
		}
	}
	return nil
}

// values extracts one number per run; runs for which f says !ok are left out.
func (g *group) values(f func(r record) (float64, bool)) []float64 {
	var v []float64
	for _, r := range g.runs {
		if x, ok := f(r); ok {
			v = append(v, x)
		}
	}
	return v
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// medRange formats the median and, with several runs, the range.
func medRange(v []float64, digits int) string {
	if len(v) == 0 {
		return "n/a"
	}
	f := func(x float64) string { return fmt.Sprintf("%.*f", digits, x) }
	if len(v) == 1 {
		return f(v[0])
	}
	return fmt.Sprintf("%s (%s–%s)", f(median(v)), f(slices.Min(v)), f(slices.Max(v)))
}

// Extractors.
func always(f func(r record) float64) func(r record) (float64, bool) {
	return func(r record) (float64, bool) { return f(r), true }
}

var (
	pps      = func(r record) (float64, bool) { return r.PPS, r.WindowS > 0 }
	window   = func(r record) (float64, bool) { return r.WindowS, r.WindowS > 0 }
	wall     = always(func(r record) float64 { return r.WallS })
	cpu      = always(func(r record) float64 { return r.CPUS })
	cpuProbe = func(r record) (float64, bool) { return r.CPUUsPerProbe, r.Probes > 0 }
	rssMiB   = always(func(r record) float64 { return float64(r.MaxRSSKB) / 1024 })
	probes   = always(func(r record) float64 { return float64(r.Probes) })
	recall   = func(r record) (float64, bool) {
		if r.Recall == nil {
			return 0, false
		}
		return *r.Recall, true
	}
	falsePos  = always(func(r record) float64 { return float64(r.FalsePos) })
	dups      = always(func(r record) float64 { return float64(r.Dups) })
	delivered = func(r record) (float64, bool) {
		return 100 * float64(r.DeliveredSYN) / float64(r.Probes), r.Probes > 0
	}
	reachedNet = func(r record) (float64, bool) {
		if r.ReachedNet == nil || r.Probes == 0 {
			return 0, false
		}
		return 100 * float64(*r.ReachedNet) / float64(r.Probes), true
	}
	rateErr = func(r record) (float64, bool) {
		return 100 * (r.PPS - float64(r.Rate)) / float64(r.Rate), r.WindowS > 0 && r.Rate > 0
	}
	toolPPS    = func(r record) (float64, bool) { return r.ToolPPS, r.ToolPPS > 0 }
	toolRateEr = func(r record) (float64, bool) {
		return 100 * (r.ToolPPS - float64(r.Rate)) / float64(r.Rate), r.ToolPPS > 0 && r.Rate > 0
	}
)

// ratio of the medians of a value for two tools, "n/a" if either is missing.
func ratio(a, b *group, f func(r record) (float64, bool)) string {
	if a == nil || b == nil {
		return "n/a"
	}
	x, y := median(a.values(f)), median(b.values(f))
	if math.IsNaN(x) || math.IsNaN(y) || y == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", x/y)
}

type table struct {
	sb *strings.Builder
}

func (t table) header(cols ...string) {
	t.row(cols...)
	seps := make([]string, len(cols))
	for i := range seps {
		seps[i] = "---"
	}
	t.row(seps...)
}

func (t table) row(cells ...string) {
	fmt.Fprintf(t.sb, "| %s |\n", strings.Join(cells, " | "))
}

func (b *bench) summary(env []string) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format+"\n", args...) }
	t := table{&sb}

	p("# vantage scan benchmark (netlab host farm)")
	p("")
	var loads []float64
	for _, r := range b.records {
		loads = append(loads, r.Load1)
	}
	p("%s; reps %d; load average before runs %s.", strings.Join(env, "; "), b.cfg.reps, medRange(loads, 2))
	p("The machine's CPUs are shared with other work (another developer's builds, the lab's own stack answering the probes), which adds noise: see box_cpu_s and load1_before in results.jsonl.")
	p("Cells are the median over the runs, with the range (min–max) in parentheses. Achieved pps = probes sent / send window on scan0 (10 ms samples of tx_packets, first to last sample above 2%% of the peak). CPU = user+sys of the scanner process (rusage); max RSS from the same rusage.")
	for _, n := range b.notes {
		p("- note: %s", n)
	}

	farm := groups(b.records, "farm")
	if len(farm) > 0 {
		p("")
		p("## Farm scan: 198.18.0.0/15 port 80 (%d targets, %s open)", uint64(1)<<17, openCount(b, 80))
		p("")
		t.header("tool", "rate", "runs", "achieved pps", "send window s", "delivered %", "recall %", "false pos", "dups", "wall s", "CPU s", "CPU µs/probe", "max RSS MiB")
		for _, g := range farm {
			t.row(g.tool, g.label, fmt.Sprint(len(g.runs)), medRange(g.values(pps), 0), medRange(g.values(window), 3),
				medRange(g.values(delivered), 2), medRange(g.values(recall), 2), medRange(g.values(falsePos), 0),
				medRange(g.values(dups), 0), medRange(g.values(wall), 2), medRange(g.values(cpu), 2),
				medRange(g.values(cpuProbe), 2), medRange(g.values(rssMiB), 1))
		}
		b.ratioTable(t, p, farm)
	}

	send := groups(b.records, "send-only")
	if len(send) > 0 {
		p("")
		p("## Send only: unthrottled, 4 probes per target (vantage/zmap -P 4, masscan -p80-83), dropped in nl-net before the farm")
		p("")
		t.header("tool", "runs", "probes", "sustained pps", "send window s", "wall s", "CPU s", "CPU µs/probe", "max RSS MiB", "reached nl-net %")
		for _, g := range send {
			t.row(g.tool, fmt.Sprint(len(g.runs)), medRange(g.values(probes), 0), medRange(g.values(pps), 0),
				medRange(g.values(window), 3), medRange(g.values(wall), 2), medRange(g.values(cpu), 2),
				medRange(g.values(cpuProbe), 2), medRange(g.values(rssMiB), 1), medRange(g.values(reachedNet), 2))
		}
		b.ratioTable(t, p, send)
	}

	rate := groups(b.records, "rate")
	if len(rate) > 0 {
		p("")
		p("## Rate accuracy (requested vs achieved; error = (achieved - requested) / requested)")
		p("")
		p("Slices sized for 2-3 s of sending; 100,000 pps uses 2 probes per target (zmap 2.1.1 paces targets, so it gets -r 50000 -P 2).")
		p("")
		t.header("tool", "requested", "targets × probes", "runs", "achieved pps (scan0)", "error %", "tool's send_rate_pps", "error %", "send window s", "recall %")
		for _, g := range rate {
			r0 := g.runs[0]
			t.row(g.tool, g.label, fmt.Sprintf("%s × %d", r0.Targets, r0.ProbesPerTarget), fmt.Sprint(len(g.runs)),
				medRange(g.values(pps), 1), medRange(g.values(rateErr), 2), medRange(g.values(toolPPS), 1),
				medRange(g.values(toolRateEr), 2), medRange(g.values(window), 3), medRange(g.values(recall), 2))
		}
	}

	mem := groups(b.records, "memory")
	if len(mem) > 0 {
		p("")
		p("## Memory: vantage, farm, unthrottled")
		p("")
		t.header("ports", "runs", "probes", "max RSS MiB", "CPU s", "achieved pps", "recall %")
		for _, g := range mem {
			t.row(g.label, fmt.Sprint(len(g.runs)), medRange(g.values(probes), 0), medRange(g.values(rssMiB), 1),
				medRange(g.values(cpu), 2), medRange(g.values(pps), 0), medRange(g.values(recall), 2))
		}
		if len(mem) == 2 {
			p("")
			p("Memory line: vantage max RSS %.1f MiB for 1 port, %.1f MiB for 3 ports (3× the probes): %s the memory.",
				median(mem[0].values(rssMiB)), median(mem[1].values(rssMiB)), ratio(mem[1], mem[0], rssMiB))
		}
	}

	var bad []string
	for _, r := range b.records {
		if r.Error != "" || r.ExitCode != 0 {
			bad = append(bad, fmt.Sprintf("- %s %s %s rep %d: exit %d %s", r.Section, r.Tool, r.Label, r.Rep, r.ExitCode, r.Error))
		}
	}
	if len(bad) > 0 {
		p("")
		p("## Runs with problems")
		p("")
		p("%s", strings.Join(bad, "\n"))
	}
	return sb.String()
}

func openCount(b *bench, port int) string {
	if set, ok := b.truth[port]; ok {
		return fmt.Sprint(len(set))
	}
	return "?"
}

// ratioTable prints vantage's rate and CPU per probe relative to each
// anchor, per setting.
func (b *bench) ratioTable(t table, p func(string, ...any), gs []*group) {
	var anchors []string
	for _, name := range []string{"zmap", "masscan"} {
		for _, g := range gs {
			if g.tool == name {
				anchors = append(anchors, name)
				break
			}
		}
	}
	var labels []string
	for _, g := range gs {
		if g.tool == "vantage" {
			labels = append(labels, g.label)
		}
	}
	if len(anchors) == 0 || len(labels) == 0 {
		return
	}
	p("")
	cols := []string{"setting"}
	for _, a := range anchors {
		cols = append(cols, "vantage/"+a+" rate", "vantage/"+a+" CPU per probe")
	}
	t.header(cols...)
	for _, l := range labels {
		cells := []string{l}
		v := find(gs, "vantage", l)
		for _, a := range anchors {
			g := find(gs, a, l)
			cells = append(cells, ratio(v, g, pps), ratio(v, g, cpuProbe))
		}
		t.row(cells...)
	}
}
