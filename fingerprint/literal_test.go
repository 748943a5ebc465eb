package fingerprint

import (
	"reflect"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
)

func TestRequiredLiterals(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		bytes   bool
		want    [][]string
		exotic  bool
	}{
		{`^SSH-[\d.]+-OpenSSH_([\w.]+)`, false, [][]string{{"-openssh_"}, {"ssh-"}}, false},
		{`(?i)openssh`, false, [][]string{{"openssh"}}, true},
		{`(?i)abc`, false, [][]string{{"abc"}}, false},
		{`nginx|openresty`, false, [][]string{{"nginx", "openresty"}}, false},
		{`(?:foo|ba)bar`, false, [][]string{{"babar", "foobar"}}, false},
		{`a.b`, false, nil, false},
		{`^(\d+)$`, false, nil, false},
		{`colou?r`, false, [][]string{{"color", "colour"}}, false},
		{`x+abc`, false, [][]string{{"abc"}}, false},
		{`(abc)+`, false, [][]string{{"abc"}}, false},
		{`(abc)*def`, false, [][]string{{"def"}}, false},
		{`[Aa]pache`, false, [][]string{{"apache"}}, false},
		{`(?:Apache|nginx.*)/2`, false, [][]string{{"nginx", "apache"}}, false},
		// A long literal is cut, short ones dropped.
		{`0123456789012345678901234567890123456789`, false, [][]string{{"01234567890123456789012345678901"}}, false},
		{`ab.cd`, false, nil, false},
		// Bytes mode: \xff is one byte; runes above 0xff cannot occur.
		{`\x{ff}ab`, true, [][]string{{"\xffab"}}, false},
		{`abc\x{100}def`, true, [][]string{{"abc"}, {"def"}}, false},
		// UTF-8 mode: a literal non-ASCII rune is its UTF-8 bytes.
		{`café`, false, [][]string{{"café"}}, false},
		// (?i) on a non-ASCII letter: not tracked.
		{`(?i)caféx`, false, [][]string{{"caf"}}, false},
	} {
		re, err := syntax.Parse(tc.pattern, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		got, exotic := requiredLiterals(re, tc.bytes)
		if !reflect.DeepEqual(got, tc.want) || exotic != tc.exotic {
			t.Errorf("%q: got %q exotic=%v, want %q exotic=%v", tc.pattern, got, exotic, tc.want, tc.exotic)
		}
	}
}

// TestExoticFold: Go's (?i) matches the Kelvin sign for k; the prefilter,
// which folds ASCII only, must not hide such a match.
func TestExoticFold(t *testing.T) {
	db, err := New([]Rule{{ID: "k", Protocol: "x", Pattern: `(?i)kestrel`, Product: "Kestrel"}})
	if err != nil {
		t.Fatal(err)
	}
	text := "\u212aestrel"
	if !regexp.MustCompile(`(?i)kestrel`).MatchString(text) {
		t.Fatal("premise: Go's (?i) should match the Kelvin sign")
	}
	if _, ok := db.Identify("x", map[string]string{"banner": text}); !ok {
		t.Fatal("Kelvin sign: no match")
	}
	if _, ok := db.Identify("x", map[string]string{"banner": "KESTREL"}); !ok {
		t.Fatal("upper case: no match")
	}
	if _, ok := db.Identify("x", map[string]string{"banner": strings.Repeat("x", 100)}); ok {
		t.Fatal("unrelated text matched")
	}
}
