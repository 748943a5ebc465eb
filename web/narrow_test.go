package web

import (
	"testing"
	"unicode/utf8"

	"github.com/vantagehq/vantage/query"
)

// FuzzNarrow: clicking a facet value narrows any valid query to exactly
// that value, whatever bytes the value holds (values come from banners and
// payloads, so from anyone): the narrowed query parses, and its last term
// is the field with the value, literal.
func FuzzNarrow(f *testing.F) {
	for _, s := range [][2]string{{"", "nginx"}, {"port:22", "Apache httpd"}, {"a OR b", `say "hi" \ there`}, {"x", "*"},
		{"", "AND"}, {"", "-1"}, {"", "a:b"}, {"(a", "x"}, {"", "[1 TO 2]"}, {"", "é ü"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, q, v string) {
		if _, err := query.Parse(q); err != nil || !utf8.ValidString(v) || len(v) > 200 {
			return // the page narrows only queries that ran
		}
		n := narrow(q, "product", v)
		ast, err := query.Parse(n)
		if err != nil {
			if len(n) > query.MaxQueryLen {
				return
			}
			t.Fatalf("narrow(%q, product, %q) = %q: %v", q, v, n, err)
		}
		last := ast
		if and, ok := ast.(*query.And); ok {
			last = and.RHS
		}
		if v == "" {
			if _, ok := last.(*query.Not); !ok {
				t.Fatalf("narrow to the empty value gave %q (%T)", n, last)
			}
			return
		}
		term, ok := last.(*query.Term)
		if !ok || term.Field != "product" || len(term.Values) != 1 || term.Values[0].Text != v || term.Wildcard() {
			t.Fatalf("narrow(%q, product, %q) = %q: last term %#v", q, v, n, last)
		}
	})
}
