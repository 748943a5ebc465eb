package fingerprint

import (
	"bytes"
	"encoding/gob"
	"flag"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

var update = flag.Bool("update", false, "write builtin.gob from rules/*.toml")

// TestBuiltinSnapshot: the gob that Default decodes holds exactly the rules
// of rules/*.toml. After editing a rules file: go test ./fingerprint -run
// TestBuiltinSnapshot -update
func TestBuiltinSnapshot(t *testing.T) {
	parsed, err := parseBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(parsed); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("builtin.gob", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var snap []Rule
	if err := gob.NewDecoder(bytes.NewReader(builtinSnapshot)).Decode(&snap); err != nil {
		t.Fatalf("builtin.gob: %v (go test ./fingerprint -run TestBuiltinSnapshot -update)", err)
	}
	if !reflect.DeepEqual(normalise(snap), normalise(parsed)) {
		for i := range min(len(snap), len(parsed)) {
			if !reflect.DeepEqual(normalise(snap[i:i+1]), normalise(parsed[i:i+1])) {
				t.Errorf("first difference at rule %d: snapshot %+v, TOML %+v", i, snap[i], parsed[i])
				break
			}
		}
		t.Fatalf("builtin.gob holds %d rules, rules/*.toml %d, and they differ: go test ./fingerprint -run TestBuiltinSnapshot -update", len(snap), len(parsed))
	}
}

// parseBuiltin parses the built-in TOML files, in the order the snapshot
// keeps them.
func parseBuiltin() ([]Rule, error) {
	names, err := fs.Glob(embedded, "rules/*.toml")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var all []Rule
	for _, n := range names {
		data, err := fs.ReadFile(embedded, n)
		if err != nil {
			return nil, err
		}
		rules, err := ParseRules(n, data)
		if err != nil {
			return nil, err
		}
		all = append(all, rules...)
	}
	return all, nil
}

// normalise makes empty and nil slices and maps alike (gob keeps no
// difference between them).
func normalise(rules []Rule) []Rule {
	out := slices.Clone(rules)
	for i := range out {
		if len(out[i].CPE) == 0 {
			out[i].CPE = nil
		}
		if len(out[i].Extra) == 0 {
			out[i].Extra = nil
		}
		if len(out[i].Prefilter) == 0 {
			out[i].Prefilter = nil
		}
	}
	return out
}

func TestDefaultLoads(t *testing.T) {
	db, err := defaultDB()
	if err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	t.Logf("built-in: %s", db)
	if st.Rules < 150 {
		t.Errorf("only %d built-in rules", st.Rules)
	}
	// Every built-in rule has a source, and CPEs are well formed.
	for _, r := range db.Rules() {
		if !strings.HasPrefix(r.Source, "rules/") {
			t.Errorf("%s: source %q", r.ID, r.Source)
		}
	}
}

// TestLoadErrors: every mistake is reported with the file, the line of the
// offending key and the rule.
func TestLoadErrors(t *testing.T) {
	head := "protocol = \"ssh\"\n\n[[rule]]\nid = \"r1\"\n"
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"regexp", head + "pattern = '(?<=x)a'\nproduct = \"P\"\n",
			[]string{`bad.toml:5: rule "r1": pattern: error parsing regexp`}},
		{"group", head + "pattern = 'a(b)'\nproduct = \"P\"\nversion = \"$2\"\n",
			[]string{`bad.toml:7: rule "r1": version: template "$2": $2 refers to group 2 but the pattern has 1`}},
		{"named group", head + "pattern = 'a(?P<v>b)'\nproduct = \"P\"\nversion = \"${w}\"\n",
			[]string{`bad.toml:7: rule "r1": version: template "${w}": ${w} refers to group "w" which the pattern does not name`}},
		{"cpe parts", head + "pattern = 'a'\nproduct = \"P\"\ncpe = \"cpe:2.3:a:x:y:1:*:*\"\n",
			[]string{`bad.toml:7: rule "r1": cpe: cpe "cpe:2.3:a:x:y:1:*:*" has 8 parts, want 13`}},
		{"cpe prefix", head + "pattern = 'a'\nproduct = \"P\"\ncpe = \"cpe:/a:x:y\"\n",
			[]string{`is a CPE 2.2 URI`}},
		{"cpe case", head + "pattern = 'a'\nproduct = \"P\"\ncpe = \"cpe:2.3:a:X:y:*:*:*:*:*:*:*:*\"\n",
			[]string{`upper case`}},
		{"cpe part", head + "pattern = 'a'\nproduct = \"P\"\ncpe = \"cpe:2.3:q:x:y:*:*:*:*:*:*:*:*\"\n",
			[]string{`part "q" is not a, o or h`}},
		{"no product", head + "pattern = 'a'\n",
			[]string{`bad.toml:3: rule "r1": product: missing`}},
		{"unknown key", head + "pattern = 'a'\nproduct = \"P\"\nverison = \"1\"\n",
			[]string{`bad.toml:7: unknown key "rule.verison"`}},
		{"toml syntax", head + "pattern = 'a\n",
			[]string{`bad.toml:5:`}},
		{"duplicate id", head + "pattern = 'a'\nproduct = \"P\"\n\n[[rule]]\nid = \"r1\"\npattern = 'b'\nproduct = \"Q\"\n",
			[]string{`bad.toml:8: rule "r1": duplicate id (first at bad.toml:3)`}},
		{"protocol", "[[rule]]\nid = \"r1\"\npattern = 'a'\nproduct = \"P\"\n",
			[]string{`bad.toml:1: rule "r1": protocol: "": want`}},
		{"lone dollar", head + "pattern = 'a'\nproduct = \"P$\"\n",
			[]string{`lone $`}},
		{"two errors", head + "pattern = '('\nproduct = \"P\"\n\n[[rule]]\nid = \"r2\"\npattern = 'a'\n",
			[]string{`bad.toml:5: rule "r1": pattern`, `bad.toml:8: rule "r2": product: missing`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("bad.toml", []byte(tc.body))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadFS(t *testing.T) {
	fsys := fstest.MapFS{
		"r/b.toml": {Data: []byte("protocol = \"ftp\"\n[[rule]]\nid = \"b\"\npattern = 'x'\nproduct = \"B\"\n")},
		"r/a.toml": {Data: []byte("protocol = \"ftp\"\n[[rule]]\nid = \"a\"\npattern = 'x'\nproduct = \"A\"\n")},
	}
	db, err := LoadFS(fsys, "r")
	if err != nil {
		t.Fatal(err)
	}
	// Files load in name order: a.toml's rule comes first.
	m, ok := db.Identify("ftp", map[string]string{"banner": "x"})
	if !ok || m.RuleID != "a" || m.Source != "r/a.toml:2" {
		t.Fatalf("got %+v", m)
	}
	if _, err := LoadFS(fsys, "none"); err == nil {
		t.Fatal("empty directory: no error")
	}
}

func TestMerge(t *testing.T) {
	ours, err := New([]Rule{{ID: "ours", Protocol: "ssh", Pattern: `^SSH-2\.0-Foo`, Product: "Ours"}})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := New([]Rule{
		{ID: "theirs", Protocol: "ssh", Pattern: `^SSH-2\.0-`, Product: "Theirs"},
		{ID: "theirs2", Protocol: "ftp", Pattern: `^220 `, Product: "FTP"},
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := ours.Merge(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if db.Len() != 3 || ours.Len() != 1 {
		t.Fatalf("len %d/%d", db.Len(), ours.Len())
	}
	for banner, want := range map[string]string{"SSH-2.0-Foo": "ours", "SSH-2.0-Bar": "theirs"} {
		m, ok := db.Identify("ssh", map[string]string{"banner": banner})
		if !ok || m.RuleID != want {
			t.Errorf("%s: got %q, want %s", banner, m.RuleID, want)
		}
	}
	all := db.IdentifyAll("ssh", map[string]string{"banner": "SSH-2.0-Foo"})
	if len(all) != 2 || all[0].RuleID != "ours" || all[1].RuleID != "theirs" {
		t.Errorf("IdentifyAll: %+v", all)
	}
	if _, err := db.Merge(theirs); err == nil || !strings.Contains(err.Error(), "duplicate id") {
		t.Errorf("merging twice: %v", err)
	}
}

func TestTemplates(t *testing.T) {
	re := `^(?P<a>\w+)-(?P<b>\w*)-(.*)$`
	db, err := New([]Rule{{
		ID: "t", Protocol: "*", Pattern: re,
		Product: "P $$ ${a}", Version: "$1.$2", Info: "$P(3)",
		Extra:  map[string]string{"s": `$SUBST(1,"_",".")`, "empty": "$2", "whole": "$0"},
		CPE:    []string{"cpe:2.3:a:v:p:${a}:$2:*:*:*:*:*:*", `cpe:2.3:a:v:p:$3:*:*:*:*:*:*:*`},
		Device: "d",
	}})
	if err != nil {
		t.Fatal(err)
	}
	m, ok := db.Identify("any", map[string]string{"banner": "1_2_3--x\x01y:Z W"})
	if !ok {
		t.Fatal("no match")
	}
	if m.Product != "P $ 1_2_3" || m.Version != "1_2_3." || m.Info != "xy:Z W" || m.Device != "d" {
		t.Errorf("got %+v", m)
	}
	if m.Extra["s"] != "1.2.3" || m.Extra["whole"] != "1_2_3--x\x01y:Z W" {
		t.Errorf("extra %q", m.Extra)
	}
	if _, has := m.Extra["empty"]; has {
		t.Errorf("empty extra kept: %q", m.Extra)
	}
	want := []string{"cpe:2.3:a:v:p:1_2_3:*:*:*:*:*:*:*", `cpe:2.3:a:v:p:xy\:z_w:*:*:*:*:*:*:*`}
	if strings.Join(m.CPE, " ") != strings.Join(want, " ") {
		t.Errorf("cpe %q, want %q", m.CPE, want)
	}
	for _, bad := range []string{"$P(x)", "$SUBST(1,a,b)", `$SUBST(1,"","b")`, "$I(1,\">\")", "${", "$x"} {
		if _, err := New([]Rule{{ID: "t", Protocol: "*", Pattern: re, Product: bad}}); err == nil {
			t.Errorf("template %q: no error", bad)
		}
	}
}

// TestEmptyProductNoMatch: a product template that comes out empty is not
// an identification; the next rule gets its turn.
func TestEmptyProductNoMatch(t *testing.T) {
	db, err := New([]Rule{
		{ID: "a", Protocol: "x", Pattern: `^hello(\w*)`, Product: "$1"},
		{ID: "b", Protocol: "x", Pattern: `^hello`, Product: "Hello"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := db.Identify("x", map[string]string{"banner": "hello"}); m.RuleID != "b" {
		t.Errorf("got %q", m.RuleID)
	}
	if m, _ := db.Identify("x", map[string]string{"banner": "helloWorld"}); m.RuleID != "a" || m.Product != "World" {
		t.Errorf("got %+v", m)
	}
}

// TestFieldCap: rules see at most MaxFieldBytes of a field.
func TestFieldCap(t *testing.T) {
	db, err := New([]Rule{{ID: "a", Protocol: "http", Field: "body", Pattern: `needle`, Product: "N"}})
	if err != nil {
		t.Fatal(err)
	}
	early := "needle" + strings.Repeat("x", MaxFieldBytes)
	late := strings.Repeat("x", MaxFieldBytes) + "needle"
	if _, ok := db.Identify("http", map[string]string{"body": early}); !ok {
		t.Error("needle within the cap not found")
	}
	if _, ok := db.Identify("http", map[string]string{"body": late}); ok {
		t.Error("needle beyond the cap found")
	}
}

func TestBytesMode(t *testing.T) {
	db, err := New([]Rule{
		{ID: "b", Protocol: "x", Pattern: `^\x{ff}\x{fe}(\w+)\x00(.*)`, Product: "B", Version: "$1", Info: "$2", Bytes: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, ok := db.Identify("x", map[string]string{"banner": "\xff\xfeabc\x00caf\xc3\xa9"})
	if !ok {
		t.Fatal("no match")
	}
	// Captured UTF-8 comes back as UTF-8.
	if m.Version != "abc" || m.Info != "café" {
		t.Errorf("got %+v", m)
	}
	m, _ = db.Identify("x", map[string]string{"banner": "\xff\xfeabc\x00\xe9t\xe9"})
	if m.Info != "été" {
		t.Errorf("Latin-1 capture: %q", m.Info)
	}
}

func TestZeroDB(t *testing.T) {
	var db DB
	if _, ok := db.Identify("ssh", map[string]string{"banner": "SSH-2.0-OpenSSH_9.7"}); ok {
		t.Fatal("zero DB matched")
	}
	if db.Len() != 0 || len(db.IdentifyAll("x", nil)) != 0 {
		t.Fatal("zero DB not empty")
	}
}

// TestConcurrentIdentify exercises the scratch pools from many goroutines
// (run with -race).
func TestConcurrentIdentify(t *testing.T) {
	db := Default()
	services := benchServices()
	done := make(chan bool)
	for g := 0; g < 8; g++ {
		go func(g int) {
			defer func() { done <- true }()
			for i := 0; i < 200; i++ {
				s := services[(g+i)%len(services)]
				m1, ok1 := db.Identify(s.protocol, s.fields)
				m2, ok2, _ := db.identifySlow(s.protocol, s.fields, modeIndexOnly)
				if ok1 != ok2 || m1.RuleID != m2.RuleID {
					t.Errorf("%s: %s vs %s", s.protocol, m1.RuleID, m2.RuleID)
					return
				}
			}
		}(g)
	}
	for g := 0; g < 8; g++ {
		<-done
	}
}

// TestBuiltinRulesValid compiles every built-in rule at once, as LoadFS
// does for any other rules: Default compiles each on its first use, so an
// invalid built-in rule would otherwise show only when its protocol is
// first seen. The lazy DB must describe the same rules as the eager one.
func TestBuiltinRulesValid(t *testing.T) {
	eager, err := LoadFS(embedded, "rules")
	if err != nil {
		t.Fatal(err)
	}
	lazy, err := loadFS(embedded, "rules", true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(eager.Rules(), lazy.Rules()) {
		t.Fatal("lazy built-in rules differ from the eager ones")
	}
	if es, ls := eager.Stats(), lazy.Stats(); es != ls {
		t.Fatalf("stats: eager %+v, lazy %+v", es, ls)
	}
	for _, s := range benchServices() {
		fresh, err := loadFS(embedded, "rules", true)
		if err != nil {
			t.Fatal(err)
		}
		m1, ok1 := eager.Identify(s.protocol, s.fields)
		m2, ok2 := fresh.Identify(s.protocol, s.fields)
		if ok1 != ok2 || !reflect.DeepEqual(m1, m2) {
			t.Errorf("%s: eager %+v %v, lazy %+v %v", s.protocol, m1, ok1, m2, ok2)
		}
	}
}
