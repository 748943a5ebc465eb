package query

import (
	"errors"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	``,
	`nginx`,
	`"Welcome to nginx"`,
	`port:22 country:DE product:openssh version:<8.0`,
	`http.title:"Welcome to nginx" OR -"foo bar" (a OR b) c`,
	`port:[1000 TO 2000} net:203.0.113.0/24 ip:2001:db8::/32 last_seen:1h`,
	`tag:RDP_SCANNER cpe:cpe:2.3:a:openbsd:openssh:* vuln:CVE-2024-*`,
	`NOT (a AND b) OR --c`,
	`_exists_:http.title -has:http has:tls`,
	`version:[7.0 TO 8.9] version:{* TO 7.4p1}`,
	`after:2026-11-01 before:2026-11-01T12:00:00Z`,
	`http.title:"say \"hi\" \\o/" payload:"C:\Windows"`,
	`country:"DE",FR asn:AS13335,13335`,
	`port:>=1024 port:<=100 port:>1 port:<2`,
	`src.country:CN ua:zgrab* handshake:true ttl:[240 TO 255]`,
	`ip:203.0.113.* ip:::ffff:1.2.3.4 ip:fe80::1%eth0`,
	`http.server:*nginx* product:open? a-b :foo 1:2`,
	`prot:80`,
	`port:`,
	`)`,
	`(a`,
	`"unterminated`,
	`port:[1 TO 2`,
	"a\u00a0b\tc\nd",
}

// FuzzParse: Parse never panics; every error is an *Error inside the
// input; a parsed query prints to a query that parses to an equal tree and
// prints the same again; compiling never panics and binds one argument
// per placeholder.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		n, err := Parse(q)
		if err != nil {
			checkError(t, q, err)
			if n != nil {
				t.Fatalf("Parse(%q) returned a tree and an error", q)
			}
			return
		}
		if n == nil {
			if strings.TrimSpace(q) != "" {
				t.Fatalf("Parse(%q) = nil", q)
			}
			return
		}
		Inspect(n, func(x Node) bool {
			if s, e := x.Span(); s < 0 || s > e || int(e) > len(q) {
				t.Fatalf("Parse(%q): %s spans %d-%d", q, x, s, e)
			}
			return true
		})
		s := n.String()
		if len(s) <= MaxQueryLen {
			n2, err := Parse(s)
			if err != nil {
				t.Fatalf("Parse(%q) printed as %q: %v", q, s, err)
			}
			if !Equal(n, n2) {
				t.Fatalf("Parse(%q) = %s printed as %q parses to %s", q, tree(n), s, tree(n2))
			}
			if s2 := n2.String(); s2 != s {
				t.Fatalf("Parse(%q) printed as %q then as %q", q, s, s2)
			}
		}
		for _, target := range []Target{Services, Events} {
			for _, d := range []Dialect{DuckDB, ClickHouse} {
				where, args, err := Compile(n, target, d, testNow)
				if err != nil {
					var e *Error
					if !errors.As(err, &e) {
						t.Fatalf("Compile(%q): %T %v", q, err, err)
					}
					e.Locate(q)
					checkError(t, q, e)
					continue
				}
				if c := strings.Count(where, "?"); c != len(args) {
					t.Fatalf("Compile(%q) %s %s: %d placeholders, %d args: %s", q, target, d.Name(), c, len(args), where)
				}
			}
		}
	})
}

func checkError(t *testing.T, q string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse(%q): %T %v", q, err, err)
	}
	if e.Pos < 0 || int(e.Pos) > len(q) || e.End < e.Pos || int(e.End) > len(q) {
		t.Fatalf("Parse(%q): error %q at %d-%d, outside the query", q, e.Msg, e.Pos, e.End)
	}
	if e.Line < 1 || e.Column < 1 || e.Msg == "" {
		t.Fatalf("Parse(%q): error %#v", q, e)
	}
	_ = e.Caret(q)
}
