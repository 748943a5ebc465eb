package query

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

var testNow = time.Date(2026, 11, 15, 12, 34, 56, 789e6, time.UTC)

type goldenCase struct {
	target Target
	q      string
}

func readCases(t *testing.T) []goldenCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "compile.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []goldenCase
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		l := sc.Text()
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		name, q, _ := strings.Cut(l, " ")
		target, err := ParseTarget(name)
		if err != nil {
			t.Fatalf("compile.txt:%d: %v", line, err)
		}
		cases = append(cases, goldenCase{target, q})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// formatArgs prints bind arguments with their types.
func formatArgs(args []any) string {
	var parts []string
	for _, a := range args {
		switch a := a.(type) {
		case string:
			parts = append(parts, quote(a))
		case uint64:
			parts = append(parts, fmt.Sprintf("uint64(%#016x)", a))
		case time.Time:
			parts = append(parts, "time("+a.Format(time.RFC3339Nano)+")")
		case *big.Int:
			parts = append(parts, fmt.Sprintf("big.Int(%#016x)", a))
		default:
			parts = append(parts, fmt.Sprintf("%T(%v)", a, a))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func TestCompileGolden(t *testing.T) {
	cases := readCases(t)
	for _, d := range []Dialect{DuckDB, ClickHouse} {
		var b strings.Builder
		for _, c := range cases {
			fmt.Fprintf(&b, "%s: %s\n", c.target, c.q)
			where, args, err := CompileQuery(c.q, c.target, d, testNow)
			if err != nil {
				fmt.Fprintf(&b, "  error: %v\n\n", err)
				continue
			}
			if n := strings.Count(where, "?"); n != len(args) {
				t.Errorf("%s %q: %d placeholders, %d args", d.Name(), c.q, n, len(args))
			}
			fmt.Fprintf(&b, "  where: %s\n  args:  %s\n\n", where, formatArgs(args))
		}
		path := filepath.Join("testdata", "compile."+d.Name()+".golden")
		if *update {
			if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if got := b.String(); got != string(want) {
			gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
			for i := 0; i < len(gl) || i < len(wl); i++ {
				var g, w string
				if i < len(gl) {
					g = gl[i]
				}
				if i < len(wl) {
					w = wl[i]
				}
				if g != w {
					t.Errorf("%s differs at line %d:\n got %s\nwant %s\n(run with -update to accept)", path, i+1, g, w)
					break
				}
			}
		}
	}
}

// TestNoValuesInSQL puts hostile values in every field of both targets,
// in every form a value can take, and checks that none of them reaches
// the SQL text.
func TestNoValuesInSQL(t *testing.T) {
	evil := `'; DROP TABLE x; --`
	forms := []string{
		`%s:"` + evil + `"`,
		`%s:"` + evil + `",b`,
		`%s:*DROP*`,
		`%s:>"` + evil + `"`,
		`%s:["` + evil + `" TO "` + evil + `"]`,
	}
	texts := []string{`"` + evil + `"`, `DROP*TABLE`, `-"` + evil + `"`}
	compiled := 0
	for _, target := range []Target{Services, Events} {
		var queries []string
		for _, f := range Fields(target) {
			for _, name := range append([]string{f.Name}, f.Aliases...) {
				for _, form := range forms {
					queries = append(queries, fmt.Sprintf(form, name))
				}
			}
		}
		queries = append(queries, texts...)
		for _, q := range queries {
			for _, d := range []Dialect{DuckDB, ClickHouse} {
				where, args, err := CompileQuery(q, target, d, testNow)
				if err != nil {
					continue
				}
				compiled++
				for _, bad := range []string{"DROP", "drop", ";", "--", "TABLE"} {
					if strings.Contains(where, bad) {
						t.Errorf("%s %s %q: SQL holds %q: %s", target, d.Name(), q, bad, where)
					}
				}
				found := false
				for _, a := range args {
					if s, ok := a.(string); ok && strings.Contains(strings.ToLower(s), "drop") {
						found = true
					}
				}
				if !found {
					t.Errorf("%s %s %q: the value is in no argument: %s %v", target, d.Name(), q, where, args)
				}
			}
		}
	}
	if compiled < 100 {
		t.Errorf("only %d hostile queries compiled; the test is not testing much", compiled)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		target Target
		q      string
		want   string
	}{
		{Services, `src.country:CN`, `1:1: src.country is a sensor-event field; search events instead`},
		{Events, `port:22 http.title:x`, `1:9: http.title is a service field; search services instead`},
		{Events, `has:vuln`, `1:5: has:vuln is for services; search services instead`},
		{Services, `has:payload`, `1:5: has:payload is for events; search events instead`},
		{Services, `_exists_:src.port`, `1:1: src.port is a sensor-event field; search events instead`},
	} {
		_, _, err := CompileQuery(tc.q, tc.target, DuckDB, testNow)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s %q: %v, want %s", tc.target, tc.q, err, tc.want)
		}
	}
	// Unlocated errors from Compile still carry the position.
	n, _ := Parse(`port:22 http.title:x`)
	_, _, err := Compile(n, Events, DuckDB, testNow)
	var e *Error
	if !errors.As(err, &e) || e.Pos != 8 || e.Line != 0 || e.Error() != "http.title is a service field; search services instead" {
		t.Errorf("Compile error %#v", err)
	}
	// Trees built by hand are checked too.
	bad := []Node{
		&Term{Field: "port", Values: []Value{{Text: "x"}}},
		&Term{Field: "port"},
		&Term{Field: "nosuch", Values: []Value{{Text: "x"}}},
		&Term{Field: "org", Op: OpGt, Values: []Value{{Text: "x"}}},
		&Term{Field: "port", Op: OpRange, Values: []Value{{Text: "1"}}},
	}
	for _, n := range bad {
		if _, _, err := Compile(n, Services, DuckDB, testNow); err == nil {
			t.Errorf("Compile(%s) succeeded", tree(n))
		}
	}
	if _, _, err := Compile(nil, Services, nil, testNow); err == nil {
		t.Error("nil dialect accepted")
	}
	if _, _, err := Compile(nil, Target(9), DuckDB, testNow); err == nil {
		t.Error("unknown target accepted")
	}
}
