// Package lab drives ../shared/netlab, the simulated Internet in network
// namespaces, for tests and benchmarks: it brings the lab up when it is
// absent (and takes down only what it brought up), serialises lab users on
// this machine with a lock file, runs commands inside the lab's
// namespaces, and reads the lab's ground truth and packet counters.
package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Lab facts, as netlab's README gives them.
const (
	NSScan    = "nl-scan"
	NSNet     = "nl-net"
	NSSensor  = "nl-sensor"
	ScanIF    = "scan0"
	ScanIP    = "192.0.2.10"
	ScanMAC   = "02:6e:6c:00:02:0a"
	GatewayIP = "192.0.2.1"
	GatewayMC = "02:6e:6c:00:02:01"
	Farm      = "198.18.0.0/15"
	FarmSize  = 1 << 17
)

// Lab is a handle on the running lab.
type Lab struct {
	Script     string // path of the netlab script
	broughtUp  bool
	servicesUp bool
	lock       *os.File
}

// Script finds the netlab script: $NETLAB, or ../shared/netlab/netlab
// beside the repository that holds the working directory or, failing that,
// the running executable (a vantage binary built in the repository).
func Script() (string, error) {
	if p := os.Getenv("NETLAB"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	p, err := scriptAbove(dir)
	if err == nil {
		return p, nil
	}
	if exe, eerr := os.Executable(); eerr == nil {
		if p, eerr := scriptAbove(filepath.Dir(exe)); eerr == nil {
			return p, nil
		}
	}
	return "", err
}

func scriptAbove(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(filepath.Dir(d), "shared", "netlab", "netlab")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("netlab not found at %s (set NETLAB): %w", p, err)
			}
			return p, nil
		}
		if d == filepath.Dir(d) {
			return "", errors.New("go.mod not found above " + dir)
		}
	}
}

// Unavailable explains why the lab cannot be used here, or returns "".
// Tests skip with this message.
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "netlab needs root (network namespaces, raw sockets); run the tests as root"
	}
	if _, err := Script(); err != nil {
		return err.Error()
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is not installed: run ../shared/netlab/netlab deps"
		}
	}
	return ""
}

// LockHeldEnv names the environment variable that tells Up the lab lock
// is held already by the process that started this one (a lab test that
// runs `vantage up --demo` under its own Up): Up then does not wait for it.
const LockHeldEnv = "VANTAGE_LAB_LOCK_HELD"

// Up takes the machine-wide lab lock (waiting for other lab users), then
// brings the lab up if it is absent and checks that it is isolated.
func Up(ctx context.Context) (*Lab, error) {
	script, err := Script()
	if err != nil {
		return nil, err
	}
	return up(ctx, context.Background(), script) // waits for the lock as long as it takes
}

// UpAt is Up with the netlab script named, for a program an operator may
// interrupt: it stops waiting for the lock when ctx is done, but a lab it
// has begun to bring up is brought up whole (and so can be taken down by
// Close), never killed half-way.
func UpAt(ctx context.Context, script string) (*Lab, error) {
	return up(context.WithoutCancel(ctx), ctx, script)
}

func up(ctx, lockCtx context.Context, script string) (*Lab, error) {
	l := &Lab{Script: script}
	if os.Getenv(LockHeldEnv) != "1" {
		var err error
		if l.lock, err = os.OpenFile("/run/vantage-netlab.lock", os.O_CREATE|os.O_RDWR, 0o644); err != nil {
			return nil, fmt.Errorf("lab lock: %w", err)
		}
		if err := flock(lockCtx, l.lock); err != nil {
			l.lock.Close()
			return nil, fmt.Errorf("lab lock /run/vantage-netlab.lock (another lab user holds it): %w", err)
		}
	}
	if !NamespaceExists(NSScan) {
		if out, err := l.netlab(ctx, "up"); err != nil {
			l.Close()
			return nil, fmt.Errorf("netlab up: %v\n%s", err, out)
		}
		l.broughtUp = true
	}
	if out, err := l.netlab(ctx, "check"); err != nil {
		l.Close()
		return nil, fmt.Errorf("netlab check (refusing to scan a lab that is not isolated): %v\n%s", err, out)
	}
	return l, nil
}

// flock takes an exclusive lock on f, waiting until ctx is done.
func flock(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil || !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// BroughtUp reports whether Up brought the lab up (and Close takes it down).
func (l *Lab) BroughtUp() bool { return l.broughtUp }

// NSServices is the namespace of `netlab services up`, the real daemons.
const NSServices = "nl-svc"

// ServicesUp starts the lab's twelve real daemons unless they run already;
// Close stops them if this call started them.
func (l *Lab) ServicesUp(ctx context.Context) error {
	if NamespaceExists(NSServices) {
		return nil
	}
	if out, err := l.netlab(ctx, "services", "up"); err != nil {
		return fmt.Errorf("netlab services up: %v\n%s", err, out)
	}
	l.servicesUp = true
	return nil
}

// Service is one line of `netlab services truth`.
type Service struct {
	Addr    netip.AddrPort
	Name    string // ssh, http, https, redis ...
	Product string
	Version string // upstream version, as the daemon would say it
	Package string
}

// ServicesTruth reads what the lab's daemons are, from the installed packages.
func (l *Lab) ServicesTruth(ctx context.Context) ([]Service, error) {
	out, err := l.netlab(ctx, "services", "truth")
	if err != nil {
		return nil, fmt.Errorf("netlab services truth: %v\n%s", err, out)
	}
	var svcs []Service
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] == "addr" {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		port, err := strconv.ParseUint(f[1], 10, 16)
		if err != nil {
			continue
		}
		svcs = append(svcs, Service{Addr: netip.AddrPortFrom(a, uint16(port)), Name: f[2], Product: f[3], Version: f[4], Package: f[5]})
	}
	if len(svcs) == 0 {
		return nil, fmt.Errorf("netlab services truth printed no service:\n%s", out)
	}
	return svcs, nil
}

// Protocol is the grabber's protocol name for the service (netlab's table
// says "https" for HTTP inside TLS and "postgresql").
func (s Service) Protocol() string {
	switch s.Name {
	case "https":
		return "http"
	case "postgresql":
		return "postgres"
	}
	return s.Name
}

// SameProduct reports whether got names the service's product, loosely:
// case, punctuation, "GNU" and a daemon suffix aside ("GNU-inetutils-telnetd"
// is "inetutils telnetd", nmap's "nginx httpd" is "nginx").
func (s Service) SameProduct(got string) bool {
	norm := func(x string) string {
		x = strings.ToLower(x)
		x = strings.NewReplacer("-", " ", "_", " ", "gnu ", "", " httpd", "", " sshd", "", " ftpd", "", " smtpd", "").Replace(x)
		return strings.Join(strings.Fields(x), " ")
	}
	t, g := norm(s.Product), norm(got)
	return g != "" && (t == g || strings.Contains(t, g) || strings.Contains(g, t))
}

// Close takes the lab down if Up brought it up, and releases the lock.
// Set NETLAB_KEEP=1 to keep it.
func (l *Lab) Close() error {
	var err error
	if l.servicesUp && !l.broughtUp && os.Getenv("NETLAB_KEEP") == "" {
		if out, serr := l.netlab(context.Background(), "services", "down"); serr != nil {
			err = fmt.Errorf("netlab services down: %v\n%s", serr, out)
		}
	}
	if l.broughtUp && os.Getenv("NETLAB_KEEP") == "" {
		var out []byte
		if out, err = l.netlab(context.Background(), "down"); err != nil {
			err = fmt.Errorf("netlab down: %v\n%s", err, out)
		}
	}
	if l.lock != nil {
		l.lock.Close() // releases the flock
	}
	return err
}

func (l *Lab) netlab(ctx context.Context, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, l.Script, args...).CombinedOutput()
}

// NamespaceExists reports whether a named network namespace exists.
func NamespaceExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

// Command returns a command that runs inside a lab namespace.
func Command(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Truth returns the farm addresses open on a port (22, 80 or 443).
func (l *Lab) Truth(ctx context.Context, port int) (map[netip.Addr]bool, error) {
	return l.addrList(ctx, "truth", strconv.Itoa(port))
}

// ICMPTruth returns the farm addresses that answer ICMP echo.
func (l *Lab) ICMPTruth(ctx context.Context) (map[netip.Addr]bool, error) {
	return l.addrList(ctx, "icmp-truth")
}

func (l *Lab) addrList(ctx context.Context, args ...string) (map[netip.Addr]bool, error) {
	out, err := exec.CommandContext(ctx, l.Script, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("netlab %s: %w", strings.Join(args, " "), err)
	}
	set := map[netip.Addr]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			return nil, fmt.Errorf("netlab %s: line %q: %w", strings.Join(args, " "), sc.Text(), err)
		}
		set[a] = true
	}
	return set, nil
}

var counterRE = regexp.MustCompile(`counter (\w+) \{\s*packets (\d+)`)

// Counters reads the named nftables counters of a table in a namespace:
// the farm's (table inet netlab in nl-net) or a test's own.
func Counters(ctx context.Context, ns, family, table string) (map[string]uint64, error) {
	out, err := Command(ctx, ns, "nft", "list", "counters", "table", family, table).Output()
	if err != nil {
		return nil, fmt.Errorf("nft list counters %s %s in %s: %w", family, table, ns, err)
	}
	m := map[string]uint64{}
	for _, g := range counterRE.FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.ParseUint(g[2], 10, 64)
		m[g[1]] = n
	}
	return m, nil
}

// FarmCounters reads the farm's counters (farm_in, farm_syn, farm_synack_out, farm_rst_out).
func FarmCounters(ctx context.Context) (map[string]uint64, error) {
	return Counters(ctx, NSNet, "inet", "netlab")
}

// Nft applies an nftables script in a namespace.
func Nft(ctx context.Context, ns, script string) error {
	cmd := Command(ctx, ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", ns, err, out)
	}
	return nil
}

// Trickle sends 5 pings a second from nl-net to the scanner until the
// returned function is called. A real network is never silent, and
// masscan 1.3.2 does not exit without some packet arriving.
func Trickle() (stop func()) {
	cmd := Command(context.Background(), NSNet, "ping", "-q", "-i", "0.2", ScanIP)
	if err := cmd.Start(); err != nil {
		return func() {}
	}
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			cmd.Process.Kill()
		}
	}
}
