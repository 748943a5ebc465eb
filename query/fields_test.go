package query

import (
	"strings"
	"testing"
)

// TestSharedNames: a name known to both targets must take the same
// values in both, because Parse checks values without a target.
func TestSharedNames(t *testing.T) {
	shared := 0
	for name, s := range fieldIndex[Services] {
		e := fieldIndex[Events][name]
		if e == nil {
			continue
		}
		shared++
		if s.Kind != e.Kind || s.min != e.min || s.max != e.max || s.asn != e.asn || s.tmode != e.tmode ||
			s.fold != e.fold || s.normalise("aB") != e.normalise("aB") || (s.check == nil) != (e.check == nil) {
			t.Errorf("%s: services %s %+v and events %s %+v differ", name, s.Name, s.Kind, e.Name, e.Kind)
		}
	}
	if shared < 10 {
		t.Errorf("only %d shared names", shared)
	}
}

func TestFieldRegistry(t *testing.T) {
	for _, target := range []Target{Services, Events} {
		fs := Fields(target)
		if len(fs) < 20 {
			t.Errorf("%s: %d fields", target, len(fs))
		}
		for _, f := range fs {
			if f.Desc == "" || f.Example == "" {
				t.Errorf("%s %s: no description or example", target, f.Name)
			}
			cols := 1
			switch f.Kind {
			case KindIP, KindVersion:
				cols = 2
			case KindHas:
				cols = 0
			}
			if len(f.Columns) != cols {
				t.Errorf("%s %s: %d columns, want %d", target, f.Name, len(f.Columns), cols)
			}
			if f.Facet && (f.Kind == KindIP || f.Kind == KindTime || f.Kind == KindHas || f.Kind == KindBlob) {
				t.Errorf("%s %s: a %s field cannot be a facet", target, f.Name, f.Kind)
			}
			if f.Kind.Syntax() == "" {
				t.Errorf("%s: no syntax for kind %s", f.Name, f.Kind)
			}
			if strings.Contains(f.Example, "...") {
				continue
			}
			for _, d := range []Dialect{DuckDB, ClickHouse} {
				if _, _, err := CompileQuery(f.Example, target, d, testNow); err != nil {
					t.Errorf("%s %s: example %q: %v", target, f.Name, f.Example, err)
				}
			}
			for _, n := range append([]string{f.Name}, f.Aliases...) {
				g, ok := LookupField(target, strings.ToUpper(n))
				if !ok || g.Name != f.Name {
					t.Errorf("%s: LookupField(%q) = %v, %v", target, n, g.Name, ok)
				}
			}
		}
		// Fields returns copies.
		fs[0].Aliases = append(fs[0].Aliases, "zzz")
		fs[0].Columns[0] = "zzz"
		if _, ok := LookupField(target, "zzz"); ok || Fields(target)[0].Columns[0] == "zzz" {
			t.Errorf("%s: Fields shares the registry", target)
		}
		if LookupField(target, "has"); len(Fields(target)[len(fs)-1].HasKeys()) == 0 {
			t.Errorf("%s: has lists no keys", target)
		}
	}
	if s, _ := ParseTarget("Events"); s != Events {
		t.Error("ParseTarget")
	}
	if _, err := ParseTarget("hosts"); err == nil {
		t.Error("ParseTarget accepted hosts")
	}
	if Services.String() != "services" || Events.Table() != "events" {
		t.Error("target names")
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"prot", "port"},
		{"contry", "country"},
		{"county", "country"},
		{"http.titel", "http.title"},
		{"http.tit", "http.title"},
		{"produkt", "product"},
		{"verison", "version"},
		{"tls.sni", "tls.san"},
		{"hostname", "tls.san"},
		{"cve", "vuln"},
		{"xyzzy", ""},
		{"p", ""},
	} {
		if got := suggest(tc.in, allNames); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFacets(t *testing.T) {
	got, err := ParseFacets("country,org, product:20 ,tag:5", Services)
	if err != nil {
		t.Fatal(err)
	}
	want := []Facet{
		{Field: "country", Column: "country", Kind: KindString, Limit: 10},
		{Field: "org", Column: "org", Kind: KindText, Limit: 10},
		{Field: "product", Column: "product", Kind: KindString, Limit: 20},
		{Field: "tag", Column: "tags", Kind: KindList, List: true, Limit: 5},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("facet %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if e := got[3].Expr(DuckDB); e != "unnest(tags)" {
		t.Errorf("DuckDB list facet %q", e)
	}
	if e := got[3].Expr(ClickHouse); e != "arrayJoin(tags)" {
		t.Errorf("ClickHouse list facet %q", e)
	}
	if e := got[0].Expr(ClickHouse); e != "country" {
		t.Errorf("facet %q", e)
	}
	for _, tc := range []struct {
		f    Facet
		d    Dialect
		want string
	}{
		{got[0], DuckDB, "SELECT country AS v, count(*) AS n FROM services WHERE (port = ?) AND country IS NOT NULL AND country <> '' GROUP BY v ORDER BY n DESC, v LIMIT ?"},
		{got[3], DuckDB, "SELECT v, count(*) AS n FROM (SELECT unnest(tags) AS v FROM services WHERE port = ?) WHERE v IS NOT NULL AND v <> '' GROUP BY v ORDER BY n DESC, v LIMIT ?"},
		{got[3], ClickHouse, "SELECT v, count(*) AS n FROM (SELECT arrayJoin(tags) AS v FROM services WHERE port = ?) WHERE v IS NOT NULL AND v <> '' GROUP BY v ORDER BY n DESC, v LIMIT ?"},
	} {
		if q := tc.f.Query(tc.d, "services", "port = ?"); q != tc.want {
			t.Errorf("%s %s facet query:\n got %s\nwant %s", tc.d.Name(), tc.f.Field, q, tc.want)
		}
	}
	if p, _ := ParseFacets("port", Services); !strings.Contains(p[0].Query(DuckDB, "services", "true"), "AND port IS NOT NULL GROUP BY") {
		t.Errorf("int facet: %s", p[0].Query(DuckDB, "services", "true"))
	}
	ev, err := ParseFacets("country,port,asn,tags,handshake", Events)
	if err != nil || ev[0].Column != "src_country" || ev[1].Column != "dst_port" || ev[3].Field != "tag" || ev[4].Column != "handshake" {
		t.Errorf("events facets %+v %v", ev, err)
	}
	if f, err := ParseFacets("  ", Services); f != nil || err != nil {
		t.Errorf("empty: %v %v", f, err)
	}
	for _, tc := range []struct {
		s    string
		t    Target
		want string
	}{
		{"contry", Services, `1:1: unknown field "contry" (did you mean "country"?)`},
		{"country,prot", Services, `1:9: unknown field "prot" (did you mean "port"?)`},
		{"country:0", Services, `1:9: facet limit must be a number 1-1000`},
		{"country:1001", Services, `1:9: facet limit must be a number 1-1000`},
		{"country:x", Services, `1:9: facet limit must be a number 1-1000`},
		{"country,,org", Services, `1:9: empty facet`},
		{"country,", Services, `1:9: empty facet`},
		{"country,country:5", Services, `1:9: facet country is listed twice`},
		{"tags,tag", Services, `1:6: facet tag is listed twice`},
		{"ip", Services, `1:1: ip cannot be a facet (ip fields are not counted)`},
		{"last_seen", Services, `1:1: last_seen cannot be a facet (time fields are not counted)`},
		{"banner", Services, `1:1: banner cannot be a facet (blob-text fields are not counted)`},
		{"src.country", Services, `1:1: src.country is a sensor-event field; facet events instead`},
		{"product", Events, `1:1: product is a service field; facet services instead`},
	} {
		_, err := ParseFacets(tc.s, tc.t)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseFacets(%q) = %v, want %s", tc.s, err, tc.want)
		}
	}
}

// TestSyntaxDoc keeps the help text honest: every field:value example in
// it parses, and compiles for services or events.
func TestSyntaxDoc(t *testing.T) {
	n := 0
	for _, line := range strings.Split(Syntax, "\n") {
		for _, w := range strings.Fields(line) {
			if !strings.Contains(w, ":") || !isIdentStart(w[0]) || strings.HasSuffix(w, ":") || strings.ContainsAny(w, "()") {
				continue
			}
			if strings.Contains(w, "[") || strings.Contains(w, "{") { // ranges hold spaces
				continue
			}
			w = strings.TrimRight(w, ";,")
			if strings.HasPrefix(w, "field:") || w == "after:X" || w == "before:Y" {
				continue
			}
			n++
			_, _, err1 := CompileQuery(w, Services, DuckDB, testNow)
			_, _, err2 := CompileQuery(w, Events, DuckDB, testNow)
			if err1 != nil && err2 != nil {
				t.Errorf("Syntax example %q: %v / %v", w, err1, err2)
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d examples found in Syntax", n)
	}
}
