package cli

import (
	"fmt"
	"strings"

	"github.com/vantagehq/vantage/config"
	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/scan"
	"github.com/vantagehq/vantage/target"
)

// helpTopic is a page of `vantage help <topic>`.
type helpTopic struct{ name, short, long string }

var helpTopics = []helpTopic{
	{"targets", "How to name targets and ports", `Targets are IPv4 addresses, given as arguments, in files (--targets-file,
repeatable) or on standard input ('-' as an argument):

  198.51.100.7              one address
  198.51.100.0/24           a CIDR block (host bits are ignored)
  198.51.100.10-198.51.100.20   a range
  198.51.100.10-20          a range within the last octet

In files, tokens are separated by spaces, tabs, commas or newlines, and '#'
starts a comment. An error names the file, the line and the token.
IPv6 literals are recognised and refused: IPv6 scanning does not exist yet.
Host names are not resolved: give addresses.

Ports (-p/--ports) are a list of numbers and ranges: 22,80,443,8000-8100.
1-65535 scans every port. ICMP echo (-M icmp_echo) takes no ports.

The order of probes is a pseudorandom permutation of (address x port): no
network sees a burst, every target is probed exactly once, and the scanner
keeps no state per target. --seed fixes the order; --shards N --shard i
splits one scan across N scanners (all given the same seed), whose shards
are disjoint and together cover every target.`},
	{"exclusions", "What is never scanned, and how to change it", `Before any packet is sent, targets are reduced by exclusions:

1. The IANA special-purpose ranges (RFC 6890 and successors), always:
` + reservedList() + `
   A reserved range is scanned only when named with --allow-reserved CIDR
   (repeatable): for a lab, a benchmark network, or your own private ranges.

2. Your exclusion lists: --exclude-file FILE (repeatable; the syntax of
   target files, a comment after a range is kept as the reason) and
   --exclude CIDR (repeatable). They win over --allow-reserved.

3. The opt-out list published by a vantage server (a later release).

Exclusion happens where targets are generated: an excluded address is not
skipped at send time, it is never produced. If nothing is left to scan,
vantage says so and exits with status 2.`},
	{"output", "Result formats, status line and metadata", `Results go to standard output (or -o FILE), one per target that answered:

  --format json   JSON lines (the default):
    {"ip":"198.18.0.7","port":80,"proto":"tcp","state":"open","ttl":64,
     "window":64240,"time":"2026-11-27T08:43:01.123Z","scan_id":"3f2a..","shard":0}
  --format csv    ` + scan.CSVHeader + `

--states chooses what is reported: open (SYN-ACK, the default), closed
(RST), up (ICMP echo reply), or a list such as open,closed. Each target is
reported at most once.

A status line goes to standard error every second: elapsed time, percent
done, probes sent and the current rate, replies, hits and hit rate, kernel
receive drops, and the time left. --quiet turns it off. A summary line
ends every scan, and --metadata FILE writes the summary as JSON (scan id,
seed, interface, counters, rates, stop reason).`},
	{"exit-codes", "What vantage's exit status means", `  0    done (also when --max-targets or --max-runtime ended the scan)
  1    the work failed: network set-up, sending, receiving, writing results
  2    usage: a bad flag, target, port or file, or nothing left to scan
  130  interrupted by Ctrl-C or SIGTERM; results so far were written and
       the summary printed`},
	{"probe-modules", "The probe modules scan -M can use", ""},
	{"query", "The search query language and its fields", ""},
	{"config", "The server's configuration file, variables and defaults", ""},
}

func init() {
	for i := range helpTopics {
		switch helpTopics[i].name {
		case "probe-modules":
			helpTopics[i].long = probeModuleList()
		case "query":
			helpTopics[i].long = queryHelp()
		case "config":
			helpTopics[i].long = "vantage server reads --config FILE, then VANTAGE_* variables, then flags.\n" +
				"Every key, its variable and its default (docs/vantage.toml is this file):\n\n" + config.Sample()
		}
	}
}

func queryHelp() string {
	var b strings.Builder
	b.WriteString("vantage search, count and the API's q= parameter take queries like\n\n" +
		"  port:22 product:openssh version:<8.0 country:DE\n  tag:RDP_SCANNER last_seen:1h\n\n")
	b.WriteString(query.Syntax)
	for _, t := range []query.Target{query.Services, query.Events} {
		fmt.Fprintf(&b, "\nFields of %s%s:\n", t, map[query.Target]string{query.Events: " (vantage search --events)"}[t])
		for _, f := range query.Fields(t) {
			name := f.Name
			if len(f.Aliases) > 0 {
				name += " (" + strings.Join(f.Aliases, ", ") + ")"
			}
			fmt.Fprintf(&b, "  %-28s %s\n  %-28s e.g. %s\n", name, f.Desc, "", f.Example)
		}
	}
	return b.String()
}

func reservedList() string {
	var b strings.Builder
	for _, l := range target.Reserved() {
		fmt.Fprintf(&b, "     %-19s %s\n", l.Range, l.Reason)
	}
	return strings.TrimRight(b.String(), "\n")
}

func probeModuleList() string {
	var b strings.Builder
	b.WriteString("Probe modules (vantage scan -M NAME [--probe-args ARGS]):\n\n")
	for _, m := range scan.Modules() {
		fmt.Fprintf(&b, "  %-10s %s\n", m.Name, m.Description)
		if m.Args != "" {
			fmt.Fprintf(&b, "  %-10s --probe-args: %s\n", "", m.Args)
		}
		if m.Connect {
			fmt.Fprintf(&b, "  %-10s has a --connect mode (no root needed)\n", "")
		}
	}
	return b.String()
}
