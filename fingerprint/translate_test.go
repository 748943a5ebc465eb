package fingerprint

import (
	"errors"
	"regexp"
	"testing"
)

func TestTranslate(t *testing.T) {
	for _, tc := range []struct {
		src  string
		d    dialect
		want string // "" with reason: refused
		why  string
	}{
		{`^SSH-([\d.]+)-`, dialectPCRE, `^SSH-([\d.]+)-`, ""},
		{`\xff\0\x1`, dialectPCRE, `\x{ff}\x{00}\x{01}`, ""},
		{`\012\e`, dialectPCRE, `\x{0a}\x{1b}`, ""},
		{`a$`, dialectPCRE, `a(?:\n?\z)`, ""},
		{`a\Z`, dialectRuby, `a(?:\n?\z)`, ""},
		{`a$`, dialectRuby, `a$`, ""},
		{`[\b\x80-\xff]`, dialectPCRE, `[\x{08}\x{80}-\x{ff}]`, ""},
		{`[$]`, dialectPCRE, `[$]`, ""},
		{`[]a]`, dialectPCRE, `[]a]`, ""},
		{`\h+`, dialectRuby, `[0-9a-fA-F]+`, ""},
		{`\h`, dialectPCRE, `[\t \x{a0}]`, ""},
		{`(?<n>x)(?'m'y)`, dialectRuby, `(?P<n>x)(?P<m>y)`, ""},
		{`(?m)a.b`, dialectRuby, `(?s)a.b`, ""},
		{`(?i:ab)`, dialectPCRE, `(?i:ab)`, ""},
		{`a(?#comment)b`, dialectPCRE, `ab`, ""},
		{`\Qa.b\E+`, dialectPCRE, `a\.b+`, ""},
		{`caf` + "\xc3\xa9", dialectPCRE, `caf\x{c3}\x{a9}`, ""},
		{`[[:alpha:]]+`, dialectPCRE, `[[:alpha:]]+`, ""},
		{`(?:[^\r\n]*\r\n(?!\r\n))*?Server: x`, dialectPCRE, `(?:[^\r\n]*\r\n(?:[^\r\n]+\r\n)*?)??Server: x`, ""},
		{`(?:[^\r\n]*\r\n(?!\r\n))*?\r\n`, dialectPCRE, "", "lookahead"},
		{`a(?=b)`, dialectPCRE, "", "lookahead"},
		{`(?<!a)b`, dialectPCRE, "", "lookbehind"},
		{`(a)\1`, dialectPCRE, "", "backreference"},
		{`(?P<x>a)(?P=x)`, dialectPCRE, "", "backreference"},
		{`\k<x>`, dialectRuby, "", "backreference"},
		{`(?>a+)`, dialectPCRE, "", "atomic group"},
		{`a++`, dialectPCRE, "", "possessive quantifier"},
		{`(?(1)a|b)`, dialectPCRE, "", "conditional"},
		{`(?R)`, dialectPCRE, "", "recursion"},
		{`(?x) a b`, dialectPCRE, "", "extended mode"},
		{`\G`, dialectPCRE, "", "unsupported escape"},
		{`[abc`, dialectPCRE, "", "bad pattern"},
	} {
		got, err := translate(tc.src, tc.d)
		if tc.why != "" {
			var se *skipError
			if !errors.As(err, &se) || se.reason != tc.why {
				t.Errorf("%q: got %q, %v; want refusal %q", tc.src, got, err, tc.why)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.src, got, err, tc.want)
			continue
		}
		if _, err := regexp.Compile(got); err != nil {
			t.Errorf("%q -> %q does not compile: %v", tc.src, got, err)
		}
	}
}

// TestHeaderLinesIdiom: the rewrite of nmap's header-lines idiom matches
// exactly where the PCRE would: within the header, not past the blank line.
func TestHeaderLinesIdiom(t *testing.T) {
	pat, err := translate(`^HTTP/1\.1 200 (?:[^\r\n]*\r\n(?!\r\n))*?Server: (\w+)`, dialectPCRE)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(pat)
	for text, want := range map[string]string{
		"HTTP/1.1 200 OK\r\nServer: a\r\n\r\n":                     "a",
		"HTTP/1.1 200 OK\r\nDate: x\r\nServer: b\r\n\r\n":          "b",
		"HTTP/1.1 200 \r\nServer: c\r\n":                           "c",
		"HTTP/1.1 200 OK\r\nDate: x\r\n\r\nServer: body\r\n":       "",
		"HTTP/1.1 200 OK\r\n\r\nServer: body\r\n":                  "",
		"HTTP/1.1 200 OK\r\nX: 1\r\nY: 2\r\nServer: d\r\n\r\nbody": "d",
	} {
		m := re.FindStringSubmatch(text)
		got := ""
		if m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("%q: got %q, want %q", text, got, want)
		}
	}
}
