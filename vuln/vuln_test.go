package vuln

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/vantagehq/vantage/query"
)

func TestVersionOrder(t *testing.T) {
	// Each pair is strictly ascending.
	for _, p := range [][2]string{
		{"7.4p1", "7.10"}, {"7.10", "8.0"}, {"8.0", "8.0p1"}, {"7.4", "7.4p1"},
		{"2.4.9", "2.4.57"}, {"1.0.0", "1.0.1"}, {"8.5p1", "8.9p1"}, {"8.9p1", "9.8p1"},
		{"9.8", "9.8p1"}, {"4.3p2", "4.4p1"}, {"8", "8.0"}, {"1.0", "1.0rc1"},
		{"2.4.55", "2.4.56"}, {"1.9", "1.10"}, {"0.9.8zh", "1.0.0"},
	} {
		a, b := query.VersionKey(p[0]), query.VersionKey(p[1])
		if a >= b {
			t.Errorf("%s < %s: keys %q, %q", p[0], p[1], a, b)
		}
	}
	for _, p := range [][2]string{{"7.4", "7-4"}, {"V2.0", "2.0"}, {"2.04", "2.4"}, {"8.5P1", "8.5p1"}} {
		if query.VersionKey(p[0]) != query.VersionKey(p[1]) {
			t.Errorf("%s == %s", p[0], p[1])
		}
	}
}

// feed returns an NVD 2.0 document with one CVE per match entry,
// CVE-2000-<index>, all for vendor v, product p unless the criteria says
// otherwise.
func feed(ms ...cpeMatch) string {
	type node struct {
		CPEMatch []cpeMatch `json:"cpeMatch"`
	}
	type cfg struct {
		Nodes []node `json:"nodes"`
	}
	type cve struct {
		ID             string `json:"id"`
		Configurations []cfg  `json:"configurations"`
	}
	var items []map[string]cve
	for i, m := range ms {
		items = append(items, map[string]cve{"cve": {ID: fmt.Sprintf("CVE-2000-%04d", i), Configurations: []cfg{{Nodes: []node{{CPEMatch: []cpeMatch{m}}}}}}})
	}
	b, _ := json.Marshal(map[string]any{"format": "NVD_CVE", "version": "2.0", "vulnerabilities": items})
	return string(b)
}

func loadString(t testing.TB, name, doc string) *DB {
	t.Helper()
	im := NewImporter()
	if err := im.Add(name, strings.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	return im.DB()
}

func TestRanges(t *testing.T) {
	const all = "cpe:2.3:a:v:p:*:*:*:*:*:*:*:*"
	for _, tc := range []struct {
		name string
		m    cpeMatch
		yes  []string // versions that match
		no   []string // versions that do not
	}{
		{"start including", cpeMatch{Criteria: all, VersionStartIncluding: "2.4.0"},
			[]string{"2.4.0", "2.4.1", "2.4.57", "10.0", "2.4.0p1"}, []string{"2.3.9", "2.3.99", "1", "2.4"}},
		{"start excluding", cpeMatch{Criteria: all, VersionStartExcluding: "2.4.0"},
			[]string{"2.4.0.1", "2.4.1", "2.4.0a"}, []string{"2.4.0", "2.3.9", "2.4"}},
		{"end including", cpeMatch{Criteria: all, VersionEndIncluding: "2.4.55"},
			[]string{"2.4.55", "2.4.9", "2.4", "1.3.42", "0"}, []string{"2.4.56", "2.4.55.1", "2.4.55p1", "2.5"}},
		{"end excluding", cpeMatch{Criteria: all, VersionEndExcluding: "4.4p1"},
			[]string{"4.4", "4.3p2", "3.9p1", "4.4.0"}, []string{"4.4p1", "4.4p2", "4.10", "9.8p1"}},
		{"regreSSHion", cpeMatch{Criteria: all, VersionStartIncluding: "8.5p1", VersionEndExcluding: "9.8p1"},
			[]string{"8.5p1", "8.9p1", "9.0", "9.7p1", "9.8", "8.10p1"}, []string{"8.5", "8.4p1", "9.8p1", "9.9p1", "7.4p1", "10.0"}},
		{"excluding both", cpeMatch{Criteria: all, VersionStartExcluding: "1.0", VersionEndExcluding: "1.5"},
			[]string{"1.0.1", "1.4.99", "1.0a"}, []string{"1.0", "1.5", "0.9", "1.5.1"}},
		{"including both", cpeMatch{Criteria: all, VersionStartIncluding: "1.0", VersionEndIncluding: "1.5"},
			[]string{"1.0", "1.5", "1.2.3"}, []string{"0.9", "1.5.1", "1.6"}},
		{"start excl end incl", cpeMatch{Criteria: all, VersionStartExcluding: "1.0", VersionEndIncluding: "1.5"},
			[]string{"1.0.1", "1.5"}, []string{"1.0", "1.5.1"}},
		{"start incl end excl (empty)", cpeMatch{Criteria: all, VersionStartIncluding: "2.0", VersionEndExcluding: "2.0"},
			nil, []string{"2.0", "1.9", "2.1"}},
		{"exact", cpeMatch{Criteria: "cpe:2.3:a:v:p:2.4.49:*:*:*:*:*:*:*"},
			[]string{"2.4.49", "2.04.49", "v2.4.49"}, []string{"2.4.48", "2.4.50", "2.4.490", "2.4.4", "2.4.49.1", "2.4"}},
		{"exact with update", cpeMatch{Criteria: "cpe:2.3:a:v:p:8.5:p1:*:*:*:*:*:*"},
			[]string{"8.5p1", "8.5:p1"}, []string{"8.5", "8.5p2", "8.5:p2", "8.5:-"}},
		{"exact, no update", cpeMatch{Criteria: "cpe:2.3:a:v:p:4.4:-:*:*:*:*:*:*"},
			[]string{"4.4", "4.4:-"}, []string{"4.4p1", "4.4:p1"}},
		{"exact, any update", cpeMatch{Criteria: "cpe:2.3:a:v:p:4.4:*:*:*:*:*:*:*"},
			[]string{"4.4", "4.4:p1", "4.4:-"}, []string{"4.4p1", "4.5"}},
		{"all versions *", cpeMatch{Criteria: all},
			[]string{"1.0", "*", "-", "", "anything"}, nil},
		{"all versions -", cpeMatch{Criteria: "cpe:2.3:a:v:p:-:*:*:*:*:*:*:*"},
			[]string{"1.0", "*", "-", ""}, nil},
		{"range ignores the criteria's version", cpeMatch{Criteria: "cpe:2.3:a:v:p:3.0:*:*:*:*:*:*:*", VersionEndExcluding: "2.0"},
			[]string{"1.0"}, []string{"3.0", "2.0"}},
		{"unknown version matches no range", cpeMatch{Criteria: all, VersionStartIncluding: "0"},
			[]string{"0", "1"}, []string{"*", "-", ""}},
		{"unknown version matches no exact", cpeMatch{Criteria: "cpe:2.3:a:v:p:1.0:*:*:*:*:*:*:*"},
			[]string{"1.0"}, []string{"*", "-", ""}},
		{"escaped version", cpeMatch{Criteria: `cpe:2.3:a:v:p:1.0\-rc1:*:*:*:*:*:*:*`},
			[]string{"1.0-rc1", `1.0\-rc1`, "1.0.rc1"}, []string{"1.0", "1.0rc2"}},
	} {
		tc.m.Vulnerable = true
		db := loadString(t, tc.name, feed(tc.m))
		check := func(v string, want bool) {
			q := "cpe:2.3:a:v:p:" + v
			if !strings.Contains(v, ":") {
				q += ":*"
			}
			q += ":*:*:*:*:*:*"
			got := db.Match(q)
			if (len(got) == 1) != want || len(got) > 1 {
				t.Errorf("%s: %s: Match(%s) = %v, want match %v", tc.name, v, q, got, want)
			}
		}
		for _, v := range tc.yes {
			check(v, true)
		}
		for _, v := range tc.no {
			check(v, false)
		}
	}
}

func ids(vs []Vuln) []string {
	var s []string
	for _, v := range vs {
		s = append(s, v.ID)
	}
	return s
}

func TestTestdata(t *testing.T) {
	for _, files := range [][]string{
		{"testdata/nvd.json", "testdata/kev.json"},
		{"testdata/kev.json", "testdata/nvd.json.gz"}, // KEV first, gzip
	} {
		db, st, err := Load(files...)
		if err != nil {
			t.Fatal(err)
		}
		want := Stats{Files: 2, Items: 12, CVEs: 7, Entries: 11, KEV: 3, KEVCatalog: 4}
		if !reflect.DeepEqual(st, want) {
			t.Errorf("%v: Stats = %+v, want %+v", files, st, want)
		}
		if !reflect.DeepEqual(db.Stats(), want) {
			t.Errorf("%v: DB.Stats = %+v, want %+v", files, db.Stats(), want)
		}
		for _, tc := range []struct {
			cpe  string
			want []string
		}{
			{"cpe:2.3:a:openbsd:openssh:8.9p1:*:*:*:*:*:*:*", []string{"CVE-2023-38408", "CVE-2024-6387"}},
			{"cpe:2.3:a:openbsd:openssh:8.9:p1:*:*:*:*:*:*", []string{"CVE-2023-38408", "CVE-2024-6387"}},
			{"cpe:/a:openbsd:openssh:8.9p1", []string{"CVE-2023-38408", "CVE-2024-6387"}},
			{"CPE:2.3:A:OpenBSD:OpenSSH:8.9P1:*:*:*:*:*:*:*", []string{"CVE-2023-38408", "CVE-2024-6387"}},
			{"cpe:2.3:a:openbsd:openssh:9.3p2:*:*:*:*:*:*:*", []string{"CVE-2024-6387"}},
			{"cpe:2.3:a:openbsd:openssh:9.8p1:*:*:*:*:*:*:*", nil},
			{"cpe:2.3:a:openbsd:openssh:8.4p1:*:*:*:*:*:*:*", []string{"CVE-2023-38408"}},
			{"cpe:2.3:a:openbsd:openssh:4.3p2:*:*:*:*:*:*:*", []string{"CVE-2023-38408", "CVE-2024-6387"}},
			{"cpe:2.3:a:openbsd:openssh:4.4p1:*:*:*:*:*:*:*", []string{"CVE-2023-38408"}},
			{"cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*", nil},
			{"cpe:2.3:a:openbsd:openssh", nil},
			{"cpe:2.3:o:fedoraproject:fedora:38:*:*:*:*:*:*:*", nil}, // a platform, not vulnerable
			{"cpe:2.3:a:apache:http_server:2.4.49:*:*:*:*:*:*:*", []string{"CVE-2021-42013", "CVE-2023-25690", "CVE-2021-41773"}},
			{"cpe:2.3:a:apache:http_server:2.4.50:*:*:*:*:*:*:*", []string{"CVE-2021-42013", "CVE-2023-25690"}},
			{"cpe:2.3:a:apache:http_server:2.4.55:*:*:*:*:*:*:*", []string{"CVE-2023-25690"}},
			{"cpe:2.3:a:apache:http_server:2.4.57:*:*:*:*:*:*:*", nil},
			{"cpe:2.3:a:apache:http_server:2.2.34:*:*:*:*:*:*:*", nil},
			{"cpe:2.3:a:example:widget:1.0:*:*:*:*:*:*:*", nil},
			{"cpe:2.3:a:example:widget:1.5:*:*:*:*:*:*:*", []string{"CVE-2099-0001"}},
			{"cpe:2.3:h:example:gadget:*:*:*:*:*:*:*:*", []string{"CVE-2099-0002"}},
			{"cpe:2.3:*:example:gadget:7:*:*:*:*:*:*:*", []string{"CVE-2099-0002"}},
			{"cpe:2.3:a:example:gadget:7:*:*:*:*:*:*:*", nil}, // part differs
			{"cpe:2.3:o:example:gadget_os:2.0sp1:*:*:*:*:*:*:*", []string{"CVE-2099-0002"}},
			{"cpe:2.3:o:example:gadget_os:2.0:sp1:*:*:*:*:*:*", []string{"CVE-2099-0002"}},
			{"cpe:2.3:o:example:gadget_os:2.0:*:*:*:*:*:*:*", nil},
			{"cpe:2.3:o:example:gadget_os:3.0:sp2:*:*:*:*:*:*", []string{"CVE-2099-0002"}},
			{"cpe:2.3:a:example:negated:1:*:*:*:*:*:*:*", nil},
			{"not a cpe", nil},
			{"cpe:2.3:a:*:*:1:*:*:*:*:*:*:*", nil},
		} {
			if got := ids(db.Match(tc.cpe)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%v: Match(%s) = %v, want %v", files, tc.cpe, got, tc.want)
			}
		}
		got := db.Match("cpe:2.3:a:apache:http_server:2.4.49:*:*:*:*:*:*:*")
		wantV := []Vuln{
			{ID: "CVE-2021-42013", Score: 9.8, CVSS: "3.1", KEV: true},
			{ID: "CVE-2023-25690", Score: 9.8, CVSS: "3.1"},
			{ID: "CVE-2021-41773", Score: 7.5, CVSS: "3.1", KEV: true}, // KEV from cisaExploitAdd
		}
		if !reflect.DeepEqual(got, wantV) {
			t.Errorf("%v: httpd 2.4.49: %+v, want %+v", files, got, wantV)
		}
		got = db.Match("cpe:2.3:a:example:widget:1.1:*:*:*:*:*:*:*")
		if want := []Vuln{{ID: "CVE-2099-0001", Score: 9.3, CVSS: "4.0"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("widget 1.1: %+v, want %+v", got, want)
		}
		got = db.Match("cpe:2.3:h:example:gadget:-:*:*:*:*:*:*:*")
		if want := []Vuln{{ID: "CVE-2099-0002", Score: 6.5, CVSS: "3.0", KEV: true}}; !reflect.DeepEqual(got, want) {
			t.Errorf("gadget: %+v, want %+v", got, want)
		}
	}
}

func TestBadItems(t *testing.T) {
	db, st, err := Load("testdata/bad.json")
	if err != nil {
		t.Fatal(err)
	}
	if st.Items != 5 || st.Skipped != 3 || st.SkippedMatches != 1 || st.CVEs != 2 || st.Entries != 2 {
		t.Errorf("Stats = %+v", st)
	}
	var msgs []string
	for _, p := range st.Problems {
		var ie *ItemError
		if !errors.As(p, &ie) || ie.File != "testdata/bad.json" {
			t.Errorf("problem %v is not an *ItemError of the file", p)
		}
		msgs = append(msgs, p.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"testdata/bad.json: item 0 ", "item 1 ", `criteria "cpe:2.3:a" is not a CPE`, "item 2 ", "item 3 ", "cve.id is empty"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	if got := ids(db.Match("cpe:2.3:a:good:entry:2.0:*:*:*:*:*:*:*")); !reflect.DeepEqual(got, []string{"CVE-2099-1001"}) {
		t.Errorf("good entry 2.0: %v", got)
	}
	if got := ids(db.Match("cpe:2.3:a:good:entry:1.9:*:*:*:*:*:*:*")); !reflect.DeepEqual(got, []string{"CVE-2099-1002"}) {
		t.Errorf("good entry 1.9 (after the bad items): %v", got)
	}
	if got := db.Match("cpe:2.3:a:bad:typed:1.0:*:*:*:*:*:*:*"); got != nil {
		t.Errorf("skipped item matched: %v", got)
	}
}

func TestReplace(t *testing.T) {
	db, st, err := Load("testdata/nvd.json", "testdata/modified.json")
	if err != nil {
		t.Fatal(err)
	}
	if st.CVEs != 7 || st.Entries != 11 {
		t.Errorf("Stats = %+v", st)
	}
	if got := db.Match("cpe:2.3:a:example:widget:1.1:*:*:*:*:*:*:*"); got != nil {
		t.Errorf("the replaced range still matches: %v", got)
	}
	got := db.Match("cpe:2.3:a:example:widget:2.0.5:*:*:*:*:*:*:*")
	if want := []Vuln{{ID: "CVE-2099-0001", Score: 5, CVSS: "3.1"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("the replacing range: %+v, want %+v", got, want)
	}
}

func TestFatal(t *testing.T) {
	full, err := os.ReadFile("testdata/nvd.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"truncated", string(full[:len(full)*2/3]), "truncated: item 5 "},
		{"syntax", `{"vulnerabilities": [{"cve": {"id": "CVE-1"}}, {"cve": }]}`, "syntax: item 1 "},
		{"nvd 1.1", `{"CVE_data_type": "CVE", "CVE_Items": []}`, "NVD 1.1"},
		{"not json", "hello", "invalid character"},
		{"no array", `{"format": "NVD_CVE"}`, `no "vulnerabilities" array`},
		{"string", `"x"`, "no object or array"},
		{"empty", ``, "unexpected EOF"},
	} {
		im := NewImporter()
		err := im.Add(tc.name, strings.NewReader(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.want)
		}
		var ie *ItemError
		if !errors.As(err, &ie) || ie.File != tc.name {
			t.Errorf("%s: err %v is not an *ItemError of the file", tc.name, err)
		}
	}
	// Items before the error stay.
	im := NewImporter()
	_ = im.Add("t", strings.NewReader(string(full[:len(full)*2/3])))
	if got := ids(im.DB().Match("cpe:2.3:a:openbsd:openssh:9.0:*:*:*:*:*:*:*")); len(got) != 2 {
		t.Errorf("items before the error: %v", got)
	}
	// A top-level array of items.
	db := loadString(t, "array", `[{"cveID": "CVE-2000-0001"}, {"cve": {"id": "CVE-2000-0001", "configurations": [{"nodes": [{"cpeMatch": [{"vulnerable": true, "criteria": "cpe:2.3:a:v:p:1:*:*:*:*:*:*:*"}]}]}]}}]`)
	if got := db.Match("cpe:2.3:a:v:p:1:*:*:*:*:*:*:*"); len(got) != 1 || !got[0].KEV {
		t.Errorf("array: %v", got)
	}
	// Too large an item.
	im = NewImporter()
	im.MaxItemBytes = 1 << 10
	big := `{"vulnerabilities": [{"cve": {"id": "CVE-1", "descriptions": [{"value": "` + strings.Repeat("x", 1<<20) + `"}]}}]}`
	if err := im.Add("big", strings.NewReader(big)); !errors.Is(err, ErrItemTooLarge) {
		t.Errorf("big item: %v", err)
	}
}

func TestEscapedNames(t *testing.T) {
	db := loadString(t, "esc", feed(cpeMatch{Vulnerable: true, Criteria: `cpe:2.3:a:x\:y:p\!q:1.0:*:*:*:*:*:*:*`}))
	if got := db.Match(`cpe:2.3:a:X\:Y:P\!Q:1.0:*:*:*:*:*:*:*`); len(got) != 1 {
		t.Errorf("escaped names: %v", got)
	}
	if got := db.Match(`cpe:2.3:a:x:y:p\!q:1.0:*:*:*:*:*:*:*`); got != nil {
		t.Errorf("an escaped colon is not a separator: %v", got)
	}
	im := NewImporter()
	if im.DB() != im.DB() || im.Add("late", strings.NewReader("[]")) == nil {
		t.Error("DB is not final")
	}
}
