package query

import (
	"errors"
	"strings"
	"testing"
)

// tree renders n as an s-expression that shows its structure: implicit
// AND is "and", explicit "AND"; "-" and "NOT" as written; terms as
// {field op values}, quoted values in quotes.
func tree(n Node) string {
	switch n := n.(type) {
	case nil:
		return "<nil>"
	case *And:
		op := "AND"
		if n.Implicit {
			op = "and"
		}
		return "(" + op + " " + tree(n.LHS) + " " + tree(n.RHS) + ")"
	case *Or:
		return "(OR " + tree(n.LHS) + " " + tree(n.RHS) + ")"
	case *Not:
		op := "NOT"
		if n.Minus {
			op = "-"
		}
		return "(" + op + " " + tree(n.X) + ")"
	case *Text:
		if n.Quoted {
			return "text(" + quote(n.Value) + ")"
		}
		return "text(" + n.Value + ")"
	case *Term:
		var vs []string
		for _, v := range n.Values {
			if v.Quoted {
				vs = append(vs, quote(v.Text))
			} else {
				vs = append(vs, v.Text)
			}
		}
		op := n.Op.String()
		if n.Op == OpEq {
			op = "="
		}
		if n.Op == OpRange {
			op = map[bool]string{true: "[", false: "{"}[n.IncludeLo] + map[bool]string{true: "]", false: "}"}[n.IncludeHi]
		}
		return "{" + n.Field + " " + op + " " + strings.Join(vs, "|") + "}"
	}
	return "?"
}

func TestParse(t *testing.T) {
	for _, tc := range []struct{ q, want string }{
		{``, `<nil>`},
		{`   `, `<nil>`},
		{`nginx`, `text(nginx)`},
		{`"Welcome to nginx"`, `text("Welcome to nginx")`},
		{`port:22`, `{port = 22}`},
		{`Port:22`, `{port = 22}`},
		{`port:80,443`, `{port = 80|443}`},
		{`http.title:"Welcome to nginx"`, `{http.title = "Welcome to nginx"}`},
		{`http.title:"say \"hi\" \\o/"`, `{http.title = "say \"hi\" \\o/"}`},
		{`payload:"C:\Windows"`, `{payload = "C:\\Windows"}`},
		{`country:"DE",FR`, `{country = "DE"|FR}`},
		{`port:>1024`, `{port > 1024}`},
		{`port:>=1024`, `{port >= 1024}`},
		{`port:<100`, `{port < 100}`},
		{`port:<=100`, `{port <= 100}`},
		{`port:[1000 TO 2000]`, `{port [] 1000|2000}`},
		{`port:{1000 TO 2000}`, `{port {} 1000|2000}`},
		{`port:[1000 TO *}`, `{port [} 1000|*}`},
		{`port:[  1000   TO 2000 ]`, `{port [] 1000|2000}`},
		{`version:[7.0 TO 8.9]`, `{version [] 7.0|8.9}`},
		{`product:open*`, `{product = open*}`},
		{`http.server:*nginx*`, `{http.server = *nginx*}`},
		{`http.title:*`, `{http.title = *}`},
		{`_exists_:http.title`, `{http.title exists }`},
		{`ip:2001:db8::1`, `{ip = 2001:db8::1}`},
		{`net:203.0.113.0/24`, `{net = 203.0.113.0/24}`},
		{`cpe:cpe:2.3:a:openbsd:openssh:*`, `{cpe = cpe:2.3:a:openbsd:openssh:*}`},
		{`before:2026-11-01T12:00:00Z`, `{before = 2026-11-01T12:00:00Z}`},
		{`asn:AS13335`, `{asn = AS13335}`},
		{`http.favicon:-1292923998`, `{http.favicon = -1292923998}`},
		{`port:AND`, `{port = AND}`}, // a value is never a keyword (and fails as a number below)
		// implicit and explicit AND, OR, NOT and precedence
		{`a b`, `(and text(a) text(b))`},
		{`a AND b`, `(AND text(a) text(b))`},
		{`a and b`, `(and (and text(a) text(and)) text(b))`},
		{`a OR b c`, `(OR text(a) (and text(b) text(c)))`},
		{`a b OR c`, `(OR (and text(a) text(b)) text(c))`},
		{`a OR b OR c`, `(OR (OR text(a) text(b)) text(c))`},
		{`a OR (b OR c)`, `(OR text(a) (OR text(b) text(c)))`},
		{`NOT a b`, `(and (NOT text(a)) text(b))`},
		{`NOT (a b)`, `(NOT (and text(a) text(b)))`},
		{`-port:22 -"x y"`, `(and (- {port = 22}) (- text("x y")))`},
		{`--a`, `(- (- text(a)))`},
		{`-NOT a`, `(- (NOT text(a)))`},
		{`-(a OR b)`, `(- (OR text(a) text(b)))`},
		{`a-b`, `text(a-b)`},
		{`(((a)))`, `text(a)`},
		{`NOT(a)`, `(NOT text(a))`},
		{`(port:80)`, `{port = 80}`},
		{`port:80"x"`, `(and {port = 80} text("x"))`},
		{`NOTE ANDROID ORACLE`, `(and (and text(NOTE) text(ANDROID)) text(ORACLE))`},
		{`http://example.com/`, ``}, // an error: "http" is no field
		{`:foo 1:2 2001:db8::1`, `(and (and text(:foo) text(1:2)) text(2001:db8::1))`},
		{"port:22\ncountry:DE", `(and {port = 22} {country = DE})`},
		{"a\u00a0b", `(and text(a) text(b))`},
		{`tags:RDP_SCANNER last_seen:1h`, `(and {tags = RDP_SCANNER} {last_seen = 1h})`},
		{`src.country:CN has:payload`, `(and {src.country = CN} {has = payload})`},
	} {
		n, err := Parse(tc.q)
		if tc.want == "" {
			if err == nil {
				t.Errorf("Parse(%q) = %s, want an error", tc.q, tree(n))
			}
			continue
		}
		if err != nil {
			if tc.q == `port:AND` {
				continue
			}
			t.Errorf("Parse(%q): %v", tc.q, err)
			continue
		}
		if got := tree(n); got != tc.want {
			t.Errorf("Parse(%q) = %s, want %s", tc.q, got, tc.want)
		}
		roundTrip(t, tc.q, n)
	}
}

// roundTrip checks that n prints to a query that parses to an equal tree
// and prints the same again.
func roundTrip(t *testing.T, q string, n Node) {
	t.Helper()
	if n == nil {
		return
	}
	s := n.String()
	n2, err := Parse(s)
	if err != nil {
		t.Errorf("%q printed as %q, which does not parse: %v", q, s, err)
		return
	}
	if !Equal(n, n2) {
		t.Errorf("%q printed as %q, which parses to %s, not %s", q, s, tree(n2), tree(n))
	}
	if s2 := n2.String(); s2 != s {
		t.Errorf("%q printed as %q, then as %q", q, s, s2)
	}
}

func TestPrint(t *testing.T) {
	for _, tc := range []struct{ q, want string }{
		{`a   b`, `a b`},
		{`(a b)`, `a b`},
		{`a (b c)`, `a (b c)`},
		{`(a b) c`, `a b c`},
		{`a AND (b AND c)`, `a AND (b AND c)`},
		{`(a OR b) c`, `(a OR b) c`},
		{`a OR (b c)`, `a OR b c`},
		{`NOT (a)`, `NOT a`},
		{`-(a OR b)`, `-(a OR b)`},
		{`NOT NOT a`, `NOT NOT a`},
		{`port:[1 TO 2}`, `port:[1 TO 2}`},
		{`port:[ 1 TO 2 ]`, `port:[1 TO 2]`},
		{`http.title:"x"`, `http.title:"x"`},
		{`http.title:"a\b"`, `http.title:"a\\b"`},
		{`"a \"b\""`, `"a \"b\""`},
		{`http.title:">x"`, `http.title:">x"`},
		{`http.title:"[x"`, `http.title:"[x"`},
		{`_exists_:"http.title"`, `_exists_:http.title`},
		{`HTTP.Title:Foo`, `http.title:Foo`},
	} {
		n, err := Parse(tc.q)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.q, err)
			continue
		}
		if got := n.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.q, got, tc.want)
		}
		roundTrip(t, tc.q, n)
	}
}

// TestPrintBuilt prints trees built by hand, which may hold values the
// lexer would never produce bare: the printer quotes them.
func TestPrintBuilt(t *testing.T) {
	for _, tc := range []struct {
		n    Node
		want string
	}{
		{&Text{Value: "AND"}, `"AND"`},
		{&Text{Value: "-x"}, `"-x"`},
		{&Text{Value: "port:22"}, `"port:22"`},
		{&Text{Value: "a b"}, `"a b"`},
		{&Text{Value: ""}, `""`},
		{&Term{Field: "http.title", Values: []Value{{Text: "a,b"}}}, `http.title:"a,b"`},
		{&Term{Field: "http.title", Values: []Value{{Text: "<x"}}}, `http.title:"<x"`},
		{&Term{Field: "port", Op: OpLt, Values: []Value{{Text: "=5"}}}, `port:<"=5"`},
		{&Term{Field: "version", Op: OpRange, IncludeLo: true, Values: []Value{{Text: "a]"}, {Text: "b c"}}}, `version:["a]" TO "b c"}`},
		{&And{LHS: &Text{Value: "a"}, RHS: &Or{LHS: &Text{Value: "b"}, RHS: &Text{Value: "c"}}}, `a AND (b OR c)`},
		{&Not{X: &And{LHS: &Text{Value: "a"}, RHS: &Text{Value: "b"}, Implicit: true}}, `NOT (a b)`},
	} {
		if got := tc.n.String(); got != tc.want {
			t.Errorf("%s printed as %q, want %q", tree(tc.n), got, tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct{ q, want string }{
		{`port:22 OR prot:80`, `1:12: unknown field "prot" (did you mean "port"?)`},
		{`port:`, `1:6: expected a value after "port:"`},
		{`port: 22`, `1:6: expected a value after "port:"`},
		{`port:>`, `1:7: expected a value after "port:>"`},
		{`port:80,`, `1:9: expected a value after ","`},
		{`)`, `1:1: unbalanced ")"`},
		{`a)`, `1:2: unbalanced ")"`},
		{`(a`, `1:1: unclosed "("`},
		{`()`, `1:1: empty parentheses`},
		{`a AND`, `1:6: expected a term after "AND"`},
		{`a OR OR b`, `1:6: expected a term after "OR", found "OR"`},
		{`AND a`, `1:1: unexpected "AND"`},
		{`NOT`, `1:4: expected a term after "NOT"`},
		{`a -`, `1:3: expected a term after "-"`},
		{`- a`, `1:1: expected a term after "-"`},
		{`"abc`, `1:1: unterminated quoted string`},
		{`x http.title:"abc`, `1:14: unterminated quoted string`},
		{`ip:10.0.0.0/33`, `1:4: invalid CIDR "10.0.0.0/33"`},
		{`ip:10.0.0.256`, `1:4: invalid IP address "10.0.0.256"`},
		{`ip:10.*.1.*`, `1:4: invalid IP address pattern "10.*.1.*" (only trailing octets may be *, as in 10.1.*)`},
		{`port:99999`, `1:6: port must be 0-65535`},
		{`port:-1`, `1:6: port must be 0-65535`},
		{`port:http`, `1:6: port takes a number, not "http"`},
		{`port:8*`, `1:6: port takes a number, not a pattern`},
		{`port:99999999999999999999`, `1:6: port must be 0-65535`},
		{`asn:ASX`, `1:5: asn takes a number, not "ASX"`},
		{`org:>a`, `1:1: org cannot be compared or ranged; use org:value`},
		{`port:>80,90`, `1:1: a comparison takes one value`},
		{`port:>8*`, `1:7: a comparison takes a plain value, not a pattern`},
		{`port:[2000 TO 1000]`, `1:7: empty range: "2000" is above "1000"`},
		{`version:[9 TO 8.9]`, `1:10: empty range: "9" is above "8.9"`},
		{`port:[1 2]`, `1:9: expected "TO" in the range`},
		{`port:[1 TO 2`, `1:13: expected "]" or "}" to close the range opened at column 6`},
		{`port:[1 TO]`, `1:11: expected a value after "TO"`},
		{`last_seen:yesterday`, `1:11: last_seen takes a duration (15m, 1h, 7d), a date (2026-11-01) or an RFC 3339 time, not "yesterday"`},
		{`last_seen:99999999w`, `1:11: last_seen takes a duration (15m, 1h, 7d), a date (2026-11-01) or an RFC 3339 time, not "99999999w"`},
		{`after:>2026-01-01`, `1:1: after cannot be compared or ranged; use after:value`},
		{`after:1d,2d`, `1:10: after takes one value`},
		{`handshake:maybe`, `1:11: handshake takes true or false, not "maybe"`},
		{`has:screenshot`, `1:5: unknown has:screenshot (has takes one of: http, tls, ssh, vuln, payload)`},
		{`has:*`, `1:5: has takes one of: http, tls, ssh, vuln, payload`},
		{`port:80,*`, `1:9: "*" (any value) cannot be part of a list`},
		{`country:Germany`, `1:9: country must be a two-letter ISO 3166 country code like DE, not "Germany"`},
		{`classification:evil`, `1:16: classification must be benign, malicious or unknown, not "evil"`},
		{`_exists_:prot`, `1:10: unknown field "prot" (did you mean "port"?)`},
		{`_exists_:has`, `1:1: _exists_ takes a field, not has`},
		{`_exists_:>a`, `1:10: expected a field name after "_exists_:"`},
		{`_exists_:a,b`, `1:11: _exists_ takes one field`},
		{`hostname:example.com`, `1:1: unknown field "hostname" (did you mean "tls.san"?)`},
		{`http.tit:x`, `1:1: unknown field "http.tit" (did you mean "http.title"?)`},
		{`zzzz:1`, `1:1: unknown field "zzzz"`},
		{`http://example.com`, `1:1: unknown field "http" (did you mean "has:http"?)`},
		{"port:22\n  prot:80", `2:3: unknown field "prot" (did you mean "port"?)`},
		{"\u00e9t\u00e9 prot:80", `1:5: unknown field "prot" (did you mean "port"?)`},
		{"a \xff", `1:3: invalid UTF-8 in query`},
		{strings.Repeat("a ", 2049), `1:4097: query is longer than 4096 bytes`},
		{strings.Repeat("(", 65) + "a" + strings.Repeat(")", 65), `1:65: query nests deeper than 64 levels`},
		{strings.Repeat("NOT ", 65) + "a", `1:257: query nests deeper than 64 levels`},
		{strings.Repeat("-", 65) + "a", `1:65: query nests deeper than 64 levels`},
	} {
		_, err := Parse(tc.q)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Parse(%q) = %v, want *Error %q", tc.q, err, tc.want)
			continue
		}
		if got := e.Error(); got != tc.want {
			t.Errorf("Parse(%q):\n got %s\nwant %s", tc.q, got, tc.want)
		}
		if e.Pos < 0 || int(e.Pos) > len(tc.q) || e.End < e.Pos || int(e.End) > len(tc.q) {
			t.Errorf("Parse(%q): error span %d-%d outside the query", tc.q, e.Pos, e.End)
		}
	}
	// Depth 64 is allowed.
	if _, err := Parse(strings.Repeat("(", 64) + "a" + strings.Repeat(")", 64)); err != nil {
		t.Errorf("64 levels: %v", err)
	}
}

func TestCaret(t *testing.T) {
	for _, tc := range []struct{ q, want string }{
		{`port:22 prot:80`, "port:22 prot:80\n        ^~~~"},
		{`port:`, "port:\n     ^"},
		{"a\tprot:1", "a\tprot:1\n \t^~~~"},
		{"port:22\n\u00e9 prot:80 x", "\u00e9 prot:80 x\n  ^~~~"},
		{`ip:10.0.0.0/33`, "ip:10.0.0.0/33\n   ^~~~~~~~~~~"},
		{`"abc` + "\nxyz", "\"abc\n^~~~"},
	} {
		_, err := Parse(tc.q)
		e, ok := err.(*Error)
		if !ok {
			t.Errorf("Parse(%q): %v", tc.q, err)
			continue
		}
		if got := e.Caret(tc.q); got != tc.want {
			t.Errorf("Caret(%q):\n%s\nwant\n%s", tc.q, got, tc.want)
		}
	}
	// A caret for an error of another text does not panic.
	e := &Error{Pos: 50, End: 60}
	_ = e.Caret("short")
}

func TestSpans(t *testing.T) {
	q := `port:22 -"x" (a OR http.title:"b c")`
	n, err := Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	Inspect(n, func(n Node) bool {
		s, e := n.Span()
		got = append(got, q[s:e])
		return true
	})
	want := []string{
		q[:len(q)-1], // the tree keeps no parentheses
		`port:22 -"x"`,
		`port:22`,
		`-"x"`,
		`"x"`,
		`a OR http.title:"b c"`,
		`a`,
		`http.title:"b c"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("spans:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	term := n.(*And).LHS.(*And).LHS.(*Term)
	if v := term.Values[0]; q[v.Pos:v.End] != "22" {
		t.Errorf("value span %q", q[v.Pos:v.End])
	}
}
