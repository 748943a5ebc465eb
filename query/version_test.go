package query

import (
	"cmp"
	"strings"
	"testing"
)

func TestVersionKey(t *testing.T) {
	for _, tc := range []struct{ v, want string }{
		{"", ""},
		{"8.0", "0000000008.0000000000"},
		{"7.4p1", "0000000007.0000000004p0000000001"},
		{"7.10", "0000000007.0000000010"},
		{"v1.2", "0000000001.0000000002"},
		{"V1.2", "0000000001.0000000002"},
		{"v", "v"},
		{"v.1", "v.0000000001"},
		{"OpenSSH_8.9p1", "openssh.0000000008.0000000009p0000000001"},
		{"1.0-RC1", "0000000001.0000000000.rc0000000001"},
		{"007", "0000000007"},
		{"0", "0000000000"},
		{"..1..", "0000000001"},
		{"1+deb12u1", "0000000001.deb0000000012u0000000001"},
		{"2.4.62 (Debian)", "0000000002.0000000004.0000000062.debian"},
		{"12345678901", ":1112345678901"},
		{"1é2", "0000000001.0000000002"},
		{"---", ""},
		{"9" + strings.Repeat("0", 120), ":999" + strings.Repeat("0", 98)},
	} {
		if got := VersionKey(tc.v); got != tc.want {
			t.Errorf("VersionKey(%q) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestVersionOrder(t *testing.T) {
	ordered := []string{
		"", "0", "0.1", "1", "1.0", "1.0.1", "1.0a", "1.0rc1", "1.1", "1.9", "1.10",
		"7.4", "7.4.1", "7.4p1", "7.4p2", "7.10", "8.0", "8.0.1", "8.0p1", "8.1",
		"9999999999", "10000000000", "99999999999", "12345678901234567890",
		"a", "alpha", "b", "beta",
	}
	for i := range ordered {
		for j := range ordered {
			ki, kj := VersionKey(ordered[i]), VersionKey(ordered[j])
			if got, want := strings.Compare(ki, kj), cmp.Compare(i, j); got != want {
				t.Errorf("%q vs %q: key order %d, want %d (%q, %q)", ordered[i], ordered[j], got, want, ki, kj)
			}
			if got, want := refVersionCompare(ordered[i], ordered[j]), cmp.Compare(i, j); got != want {
				t.Errorf("%q vs %q: reference order %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	same := []string{"7.4", "7-4", "7_4", "v7.4", "V7.4", "7.04", " 7.4 ", "7..4", "7 4"}
	for _, v := range same {
		if VersionKey(v) != VersionKey(same[0]) {
			t.Errorf("VersionKey(%q) = %q, want it equal to VersionKey(%q) = %q", v, VersionKey(v), same[0], VersionKey(same[0]))
		}
	}
}

// refVersionCompare is the version order written independently of
// VersionKey: it compares the runs of two versions one by one. The fuzz
// test holds VersionKey to it.
func refVersionCompare(a, b string) int {
	ta, tb := refVersionRuns(a), refVersionRuns(b)
	for i := 0; i < len(ta) && i < len(tb); i++ {
		x, y := ta[i], tb[i]
		if x.kind != y.kind {
			return cmp.Compare(x.kind, y.kind)
		}
		switch x.kind {
		case runNum:
			if c := cmp.Compare(len(x.s), len(y.s)); c != 0 {
				return c
			}
			if c := strings.Compare(x.s, y.s); c != 0 {
				return c
			}
		case runWord:
			if c := strings.Compare(x.s, y.s); c != 0 {
				return c
			}
		}
	}
	return cmp.Compare(len(ta), len(tb))
}

const (
	runSep = iota
	runNum
	runWord
)

type vrun struct {
	kind int
	s    string // numbers without leading zeros (at most 99 digits); words lower-case
}

func refVersionRuns(v string) []vrun {
	var runs []vrun
	for _, c := range []byte(v) {
		kind := runSep
		switch {
		case '0' <= c && c <= '9':
			kind = runNum
		case 'a' <= c && c <= 'z':
			kind = runWord
		case 'A' <= c && c <= 'Z':
			kind, c = runWord, c+'a'-'A'
		}
		if n := len(runs); n > 0 && runs[n-1].kind == kind {
			if kind != runSep {
				runs[n-1].s += string(c)
			}
			continue
		}
		r := vrun{kind: kind}
		if kind != runSep {
			r.s = string(c)
		}
		runs = append(runs, r)
	}
	for len(runs) > 0 && runs[0].kind == runSep {
		runs = runs[1:]
	}
	for len(runs) > 0 && runs[len(runs)-1].kind == runSep {
		runs = runs[:len(runs)-1]
	}
	if len(runs) > 1 && runs[0] == (vrun{runWord, "v"}) && runs[1].kind == runNum {
		runs = runs[1:]
	}
	for i := range runs {
		if runs[i].kind == runNum {
			runs[i].s = strings.TrimLeft(runs[i].s, "0")
			if len(runs[i].s) > 99 {
				runs[i].s = runs[i].s[:99]
			}
		}
	}
	return runs
}

func sign(x int) int { return cmp.Compare(x, 0) }

// FuzzVersionKey holds VersionKey's order to the reference order, and the
// reference order to being a total order (antisymmetric, transitive).
func FuzzVersionKey(f *testing.F) {
	for _, s := range [][3]string{
		{"7.4p1", "7.10", "8.0"},
		{"1.0", "1.0rc1", "1.0.1"},
		{"v1", "1", "V1.0"},
		{"9999999999", "10000000000", "a"},
		{"OpenSSH_8.9p1", "openssh-8.10", "2.4.62 (Debian)"},
		{"", "-", "0"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		vs := []string{a, b, c}
		for _, x := range vs {
			for _, y := range vs {
				want := refVersionCompare(x, y)
				if got := strings.Compare(VersionKey(x), VersionKey(y)); got != want {
					t.Fatalf("%q vs %q: keys %q %q compare %d, reference %d", x, y, VersionKey(x), VersionKey(y), got, want)
				}
				if refVersionCompare(y, x) != -want {
					t.Fatalf("%q vs %q: not antisymmetric", x, y)
				}
				for _, z := range vs {
					if want <= 0 && refVersionCompare(y, z) <= 0 && refVersionCompare(x, z) > 0 {
						t.Fatalf("%q <= %q <= %q but %q > %q", x, y, z, x, z)
					}
				}
			}
		}
	})
}
