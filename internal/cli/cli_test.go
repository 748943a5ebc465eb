package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	badTargets := filepath.Join(dir, "targets.txt")
	os.WriteFile(badTargets, []byte("198.51.100.1\n# fine\n198.51.100.2 not-an-ip\n"), 0o644)
	badExclude := filepath.Join(dir, "exclude.conf")
	os.WriteFile(badExclude, []byte("11.0.0.0/8\n11.0.0.0/40\n"), 0o644)

	tests := []struct {
		name     string
		stdin    string
		args     []string
		code     int
		stdout   []string // substrings
		stderr   []string
		noStdout bool
	}{
		{name: "help", args: []string{"--help"}, stdout: []string{"vantage scan", "Additional help topics", "exclusions"}},
		{name: "help topic", args: []string{"help", "targets"}, stdout: []string{"198.51.100.10-20", "--shards N --shard i"}},
		{name: "help exit codes", args: []string{"help", "exit-codes"}, stdout: []string{"130", "usage"}},
		{name: "help probe modules", args: []string{"help", "probe-modules"}, stdout: []string{"tcp_syn", "icmp_echo"}},
		{name: "scan help", args: []string{"scan", "--help"}, stdout: []string{"--allow-reserved", "--rate", "CAP_NET_RAW", "Examples:"}},
		{name: "version", args: []string{"version"}, stdout: []string{"vantage "}},
		{name: "version json", args: []string{"version", "--json"}, stdout: []string{`"version":`}},
		{name: "list modules", args: []string{"scan", "--list-probe-modules"}, stdout: []string{"tcp_syn", "icmp_echo"}},
		{name: "unknown command", args: []string{"sacn"}, code: ExitUsage, stderr: []string{"unknown command"}},
		{name: "unknown flag", args: []string{"scan", "--rtae", "5"}, code: ExitUsage, stderr: []string{"unknown flag", "--rtae"}},
		{name: "no targets", args: []string{"scan", "-p", "80"}, code: ExitUsage, stderr: []string{"no targets"}},
		{name: "no ports", args: []string{"scan", "192.0.2.1"}, code: ExitUsage, stderr: []string{"-p/--ports"}},
		{name: "bad port", args: []string{"scan", "-p", "22,8o", "192.0.2.1"}, code: ExitUsage, stderr: []string{`"8o"`}},
		{name: "bad target", args: []string{"scan", "-p", "80", "192.0.2.1", "192.0.2.300"}, code: ExitUsage, stderr: []string{`"192.0.2.300"`}},
		{name: "ipv6 target", args: []string{"scan", "-p", "80", "2001:db8::1"}, code: ExitUsage, stderr: []string{"IPv6"}},
		{name: "bad target file names the line", args: []string{"scan", "-p", "80", "-I", badTargets}, code: ExitUsage, stderr: []string{"targets.txt:3", `"not-an-ip"`}},
		{name: "bad exclude file names the line", args: []string{"scan", "-p", "80", "-b", badExclude, "192.0.2.1"}, code: ExitUsage, stderr: []string{"exclude.conf:2", `"11.0.0.0/40"`}},
		{name: "reserved only", args: []string{"scan", "-p", "80", "10.1.0.0/16"}, code: ExitUsage,
			stderr: []string{"skipping 65536 target addresses in 10.0.0.0/8", "--allow-reserved 10.0.0.0/8", "no target address left"}},
		{name: "allow something not reserved", args: []string{"scan", "-p", "80", "--allow-reserved", "11.0.0.0/8", "192.0.2.1"}, code: ExitUsage, stderr: []string{"not a reserved range"}},
		{name: "shards need a seed", args: []string{"scan", "-p", "80", "--shards", "2", "192.0.2.1"}, code: ExitUsage, stderr: []string{"--seed"}},
		{name: "shard out of range", args: []string{"scan", "-p", "80", "--shards", "2", "--shard", "2", "--seed", "1", "192.0.2.1"}, code: ExitUsage, stderr: []string{"0 <= shard < shards"}},
		{name: "icmp takes no ports", args: []string{"scan", "-M", "icmp_echo", "-p", "80", "192.0.2.1"}, code: ExitUsage, stderr: []string{"takes no ports"}},
		{name: "unknown module", args: []string{"scan", "-M", "udp_magic", "-p", "80", "192.0.2.1"}, code: ExitUsage, stderr: []string{"unknown probe module", "tcp_syn"}},
		{name: "bad probe args", args: []string{"scan", "-p", "80", "--probe-args", "amiga", "192.0.2.1"}, code: ExitUsage, stderr: []string{"--probe-args", "linux, windows"}},
		{name: "bad mac", args: []string{"scan", "-p", "80", "-G", "zz:zz", "192.0.2.1"}, code: ExitUsage, stderr: []string{"--gateway-mac"}},
		{name: "bad states", args: []string{"scan", "-p", "80", "--states", "opne", "192.0.2.1"}, code: ExitUsage, stderr: []string{"unknown state"}},
		{name: "dry run from stdin, reserved skipped", stdin: "198.18.0.0/30\n10.0.0.1\n", args: []string{"scan", "--dry-run", "-p", "80,443", "--seed", "5", "--allow-reserved", "198.18.0.0/15", "-"},
			stdout: []string{"198.18.0.0:80\n", "198.18.0.3:443\n"}, stderr: []string{"skipping 1 target addresses in 10.0.0.0/8"}},
		{name: "dry run with allowed reserved range", args: []string{"scan", "--dry-run", "-M", "icmp_echo", "--seed", "1", "--allow-reserved", "198.18.0.0/15", "198.18.0.0/31"},
			stdout: []string{"198.18.0.0\n", "198.18.0.1\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

// A dry run lists every target of the space once, in an order fixed by the
// seed, and shards split it.
func TestDryRunOrder(t *testing.T) {
	lines := func(args ...string) []string {
		code, out, errs := runCLI(t, "", append([]string{"scan", "--dry-run", "-p", "22,80"}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		return strings.Fields(out)
	}
	a := lines("--seed", "9", "198.18.0.0/24", "--allow-reserved", "198.18.0.0/15")
	b := lines("--seed", "9", "198.18.0.0/24", "--allow-reserved", "198.18.0.0/15")
	c := lines("--seed", "10", "198.18.0.0/24", "--allow-reserved", "198.18.0.0/15")
	if len(a) != 512 || strings.Join(a, " ") != strings.Join(b, " ") || strings.Join(a, " ") == strings.Join(c, " ") {
		t.Fatalf("seeded order not reproducible or not seed-dependent (%d targets)", len(a))
	}
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		for _, l := range lines("--seed", "9", "--shards", "4", "--shard", string(rune('0'+i)), "198.18.0.0/24", "--allow-reserved", "198.18.0.0/15") {
			if seen[l] {
				t.Fatalf("%s in two shards", l)
			}
			seen[l] = true
		}
	}
	if len(seen) != 512 {
		t.Fatalf("shards cover %d targets, want 512", len(seen))
	}
	if got := lines("--seed", "9", "-n", "7", "198.18.0.0/24", "--allow-reserved", "198.18.0.0/15"); len(got) != 7 {
		t.Fatalf("--max-targets 7 gave %d", len(got))
	}
}
