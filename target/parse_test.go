package target

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in      string
		want    string // Range.String(), or "" for an error
		errPart string
	}{
		{"1.2.3.4", "1.2.3.4", ""},
		{"1.2.3.0/24", "1.2.3.0/24", ""},
		{"1.2.3.77/24", "1.2.3.0/24", ""}, // host bits ignored, as zmap does
		{"0.0.0.0/0", "0.0.0.0/0", ""},
		{"1.2.3.4-1.2.3.9", "1.2.3.4-1.2.3.9", ""},
		{"1.2.3.4-9", "1.2.3.4-1.2.3.9", ""},
		{"1.2.2.0-1.2.3.255", "1.2.2.0/23", ""},
		{"1.2.3.0-1.2.4.255", "1.2.3.0-1.2.4.255", ""},
		{"::ffff:1.2.3.4", "1.2.3.4", ""},
		{"1.2.3.9-1.2.3.4", "", "ends before"},
		{"1.2.3.9-4", "", "ends before"},
		{"1.2.3.4/33", "", "prefix length"},
		{"2001:db8::1", "", "IPv6"},
		{"2001:db8::/32", "", "IPv6"},
		{"example.com", "", "host names"},
		{"1.2.3", "", "not an IPv4"},
		{"1.2.3.256", "", "not an IPv4"},
		{"", "", "empty"},
		{"1.2.3.4-", "", "not an IPv4"},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.in)
		if tt.want == "" {
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("ParseRange(%q) = %v, %v; want error containing %q", tt.in, r, err, tt.errPart)
			}
			continue
		}
		if err != nil || r.String() != tt.want {
			t.Errorf("ParseRange(%q) = %v, %v; want %s", tt.in, r, err, tt.want)
		}
	}
	if _, err := ParseRange("2001:db8::1"); !errors.Is(err, ErrIPv6) {
		t.Errorf("IPv6 error does not wrap ErrIPv6: %v", err)
	}
}

func TestParseTargetsFile(t *testing.T) {
	in := "# a comment\n10.0.0.0/30, 10.0.0.8 # trailing\n\n  10.0.0.4-10.0.0.5\t192.0.2.1\n"
	s, err := ParseTargets(strings.NewReader(in), "t.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "10.0.0.0-10.0.0.5,10.0.0.8,192.0.2.1" {
		t.Fatalf("got %s", got)
	}
	_, err = ParseTargets(strings.NewReader("10.0.0.1\n\n10.0.0.2 bogus\n"), "t.txt")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 3 || pe.Token != "bogus" || !strings.HasPrefix(err.Error(), `t.txt:3: "bogus"`) {
		t.Fatalf("error %v does not name line 3 and the token", err)
	}
}

func TestParseLabeled(t *testing.T) {
	ls, err := ParseLabeled(strings.NewReader("10.0.0.0/8 # lab\n11.0.0.0/8\n"), "ex.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Reason != "lab" || ls[1].Reason != "ex.conf:2" {
		t.Fatalf("got %+v", ls)
	}
	if len(Reserved()) < 16 {
		t.Fatalf("reserved list has %d entries", len(Reserved()))
	}
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint16
		errPart string
	}{
		{"80", []uint16{80}, ""},
		{"443,22,80", []uint16{22, 80, 443}, ""},
		{"22, 80 ,8000-8002", []uint16{22, 80, 8000, 8001, 8002}, ""},
		{"80,80,79-81", []uint16{79, 80, 81}, ""},
		{"65535", []uint16{65535}, ""},
		{"1-3", []uint16{1, 2, 3}, ""},
		{"0", nil, "out of range"},
		{"65536", nil, "out of range"},
		{"22,,80", nil, "empty port"},
		{"80-22", nil, "ends before"},
		{"http", nil, "not a port"},
		{"", nil, "empty port list"},
		{"1-", nil, "missing port"},
	}
	for _, tt := range tests {
		got, err := ParsePorts(tt.in)
		if tt.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("ParsePorts(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.errPart)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("ParsePorts(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ParsePorts(%q) = %v; want %v", tt.in, got, tt.want)
			}
		}
	}
	all, err := ParsePorts("1-65535")
	if err != nil || len(all) != 65535 {
		t.Fatalf("all ports: %d, %v", len(all), err)
	}
	_, err = ParsePorts("22,8o")
	if err == nil || !strings.Contains(err.Error(), `"8o"`) {
		t.Fatalf("error %v does not name the token", err)
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "1.2.3.0/24", "1.2.3.4-9", "1.2.3.4-1.2.4.0", "::1", "a-b", "1.2.3.4/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			if r != (Range{}) {
				t.Fatalf("error with a non-zero range: %v %v", r, err)
			}
			return
		}
		if r.Lo > r.Hi {
			t.Fatalf("%q gave inverted range %v", s, r)
		}
		// the printed form parses back to the same range
		back, err := ParseTargetList([]string{r.String()}, "round-trip")
		if err != nil || back.Size() != r.Size() || back.Ranges()[0] != r {
			t.Fatalf("%q -> %v -> %v, %v", s, r, back, err)
		}
	})
}

func FuzzParseTargets(f *testing.F) {
	f.Add("10.0.0.0/8 # c\n1.2.3.4, 5.6.7.8-9\n")
	f.Add("\n\n#only comments\n")
	f.Add("1.2.3.4\x00\n")
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseTargets(strings.NewReader(s), "fuzz")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) && !strings.Contains(err.Error(), "read line") {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		rs := set.Ranges()
		for i := 1; i < len(rs); i++ {
			if uint64(rs[i].Lo) <= uint64(rs[i-1].Hi)+1 {
				t.Fatalf("ranges not normalised: %v", set)
			}
		}
	})
}

func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"22,80,8000-8100", "1-65535", "0", "80-", ",", " 443 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePorts(s)
		if err != nil {
			return
		}
		if len(ps) == 0 {
			t.Fatalf("%q: no error and no port", s)
		}
		for i, p := range ps {
			if p == 0 || i > 0 && ps[i-1] >= p {
				t.Fatalf("%q: ports not sorted, unique and non-zero: %v", s, ps)
			}
		}
	})
}
