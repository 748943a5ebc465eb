package triage

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	for _, c := range []struct {
		file       string
		want       string // ip:hits:kind in order of first appearance
		unreadable int
	}{
		{"nginx.log", "203.0.113.7:2:http 198.51.100.23:1:http 2001:db8::45:1:http", 0},
		{"iptables.log", "192.0.2.99:2:firewall 2001:db8::99:1:firewall", 0},
		{"auth.log", "203.0.113.50:2:ssh 203.0.113.51:1:ssh 203.0.113.52:1:ssh 203.0.113.53:1:ssh 2001:db8::7:1:ssh", 1},
		{"list.csv", "192.0.2.200:1:list 198.51.100.201:1:list", 2},
	} {
		f, err := os.Open("testdata/" + c.file)
		if err != nil {
			t.Fatal(err)
		}
		srcs, st, err := Read(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		var got []string
		for _, s := range srcs {
			got = append(got, s.Addr.String()+":"+strconv.Itoa(s.Hits)+":"+strings.Join(s.Kinds, "+"))
		}
		if strings.Join(got, " ") != c.want || st.Unreadable != c.unreadable {
			t.Errorf("%s:\n got %s (%d unreadable)\nwant %s (%d unreadable)", c.file, strings.Join(got, " "), st.Unreadable, c.want, c.unreadable)
		}
	}
}

func TestFirewallPorts(t *testing.T) {
	f, _ := os.Open("testdata/iptables.log")
	defer f.Close()
	srcs, _, _ := Read(f)
	if len(srcs) == 0 || len(srcs[0].Ports) != 2 || srcs[0].Ports[0] != 23 || srcs[0].Ports[1] != 2323 {
		t.Errorf("ports of the first source: %+v", srcs)
	}
}

func TestLongLinesAndNoise(t *testing.T) {
	in := strings.Repeat("x", MaxLine+10) + "\n198.51.100.1\n\x00\xff garbage\n\n::\n"
	srcs, st, err := Read(strings.NewReader(in))
	if err != nil || len(srcs) != 1 || st.TooLong != 1 || st.Unreadable != 2 {
		t.Errorf("got %v %+v %v", srcs, st, err)
	}
}

// FuzzRead: any bytes give sources that are valid, specified, zoneless
// addresses with at least one hit, and every line is counted once.
func FuzzRead(f *testing.F) {
	for _, name := range []string{"nginx.log", "iptables.log", "auth.log", "list.csv"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		srcs, st, err := Read(strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		hits := 0
		for _, s := range srcs {
			if !s.Addr.IsValid() || s.Addr.Zone() != "" || s.Addr.IsUnspecified() || s.Hits < 1 || len(s.Kinds) == 0 {
				t.Fatalf("source %+v", s)
			}
			hits += s.Hits
		}
		if hits != st.Matched || st.Matched+st.Unreadable+st.TooLong > st.Lines {
			t.Fatalf("stats %+v, hits %d", st, hits)
		}
	})
}

// The expressions the hand-written readers stand for.
var (
	reFirewallRef = regexp.MustCompile(`\bSRC=([0-9a-fA-F.:]+)`)
	reDPTRef      = regexp.MustCompile(`\bDPT=(\d{1,5})\b`)
	reSSHRef      = regexp.MustCompile(`\bsshd(?:-session)?\[\d+\]:.*?(?:from|by)\s+(?:invalid user \S+ |authenticating user \S+ |user \S+ )?\[?([0-9a-fA-F.:]+?)\]?(?:\s+port\s+\d+|$|\s)`)
	reWebRef      = regexp.MustCompile(`^(\S+) \S+ \S+ \[[^\]]+\] "`)
)

// FuzzParseLine: the hand-written readers find what the regular
// expressions find, on any line.
func FuzzParseLine(f *testing.F) {
	for _, name := range []string{"nginx.log", "iptables.log", "auth.log", "list.csv"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			f.Add(l)
		}
	}
	for _, l := range []string{"xSRC=1.2.3.4 SRC=5.6.7.8 DPT=123456 DPT=80x DPT=22", "SRC= SRC=::1", "a b c [] \"", "a b c [x] \"", "a\tb c [x] \"",
		"sshd[1]: from 1.2.3.4 port x sshd[2]: by 5.6.7.8", "DPT=5_ DPT=6", "sshd-session[9]: Connection closed by user bob [2001:db8::1] port 22"} {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n") {
			return
		}
		sub := func(re *regexp.Regexp) (string, bool) {
			if m := re.FindStringSubmatch(line); m != nil {
				return m[1], true
			}
			return "", false
		}
		for _, c := range []struct {
			name     string
			re       *regexp.Regexp
			got      string
			gotMatch bool
		}{
			{"firewall", reFirewallRef, "", false},
			{"ssh", reSSHRef, "", false},
			{"web", reWebRef, "", false},
		} {
			switch c.name {
			case "firewall":
				c.got, c.gotMatch = firewallAddr(line)
			case "ssh":
				c.got, c.gotMatch = sshAddr(line)
			case "web":
				c.got, c.gotMatch = webAddr(line)
			}
			if want, ok := sub(c.re); want != c.got || ok != c.gotMatch {
				t.Errorf("%s of %q: %q %v; the expression says %q %v", c.name, line, c.got, c.gotMatch, want, ok)
			}
		}
		var want uint16
		if p, ok := sub(reDPTRef); ok {
			n, _ := strconv.Atoi(p)
			want = uint16(min(n, 65535))
		}
		if got := dpt(line); got != want {
			t.Errorf("dpt of %q: %d; the expression says %d", line, got, want)
		}
	})
}
