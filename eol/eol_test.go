package eol

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

const testData = `{
  "comment": "test",
  "products": [
    {"cpe": "apache:http_server", "name": "Apache HTTP Server", "source": "https://httpd.apache.org/",
     "cycles": [
       {"cycle": "2.2", "eol": "2017-07-11"},
       {"cycle": "2.0", "eol": "2013-07-10", "source": "https://archive.apache.org/dist/httpd/Announcement2.0.html", "note": "n"}
     ]},
    {"cpe": "openssl:openssl", "source": "https://openssl-library.org/policies/releasestrat/",
     "cycles": [
       {"cycle": "1.1", "eol": "2019-09-11"},
       {"cycle": "1.1.1", "eol": "2023-09-11"},
       {"cycle": "1.0.2", "eol": "2019-12-31"}
     ]},
    {"cpe": "postgresql:postgresql", "aliases": ["PostgreSQL:Postgres"], "name": "PostgreSQL", "source": "https://www.postgresql.org/support/versioning/",
     "cycles": [
       {"cycle": "9.6", "eol": "2021-11-11"},
       {"cycle": "12", "eol": "2024-11-21"}
     ]}
  ]
}`

func load(t *testing.T, s string) *Table {
	t.Helper()
	tb, err := Load(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestCheck(t *testing.T) {
	tb := load(t, testData)
	const apache = "cpe:2.3:a:apache:http_server:%s:*:*:*:*:*:*:*"
	cases := []struct {
		name  string
		cpe   string
		now   string
		ok    bool
		cycle string
		ended bool
		src   string
	}{
		{"day before EOL", "cpe:2.3:a:apache:http_server:2.2.34:*:*:*:*:*:*:*", "2017-07-10", true, "2.2", false, "https://httpd.apache.org/"},
		{"day of EOL", "cpe:2.3:a:apache:http_server:2.2.34:*:*:*:*:*:*:*", "2017-07-11", true, "2.2", true, "https://httpd.apache.org/"},
		{"day after EOL", "cpe:2.3:a:apache:http_server:2.2.34:*:*:*:*:*:*:*", "2017-07-12", true, "2.2", true, ""},
		{"exact cycle", "cpe:2.3:a:apache:http_server:2.2:*:*:*:*:*:*:*", "2020-01-01", true, "2.2", true, ""},
		{"not 2.20", "cpe:2.3:a:apache:http_server:2.20.1:*:*:*:*:*:*:*", "2020-01-01", false, "", false, ""},
		{"not 2.2 for 2", "cpe:2.3:a:apache:http_server:2:*:*:*:*:*:*:*", "2020-01-01", false, "", false, ""},
		{"not 22", "cpe:2.3:a:apache:http_server:22.1:*:*:*:*:*:*:*", "2020-01-01", false, "", false, ""},
		{"leading zero", "cpe:2.3:a:apache:http_server:2.02.1:*:*:*:*:*:*:*", "2020-01-01", true, "2.2", true, ""},
		{"dash separator", "cpe:2.3:a:apache:http_server:2.2-beta:*:*:*:*:*:*:*", "2020-01-01", true, "2.2", true, ""},
		{"cycle source", "cpe:2.3:a:apache:http_server:2.0.65:*:*:*:*:*:*:*", "2020-01-01", true, "2.0", true, "https://archive.apache.org/dist/httpd/Announcement2.0.html"},
		{"unsupported 2.4", "cpe:2.3:a:apache:http_server:2.4.57:*:*:*:*:*:*:*", "2020-01-01", false, "", false, ""},
		{"longest prefix", "cpe:2.3:a:openssl:openssl:1.1.1w:*:*:*:*:*:*:*", "2022-01-01", true, "1.1.1", false, ""},
		{"shorter prefix", "cpe:2.3:a:openssl:openssl:1.1.0l:*:*:*:*:*:*:*", "2022-01-01", true, "1.1", true, ""},
		{"letter suffix", "cpe:2.3:a:openssl:openssl:1.0.2k:*:*:*:*:*:*:*", "2019-12-30", true, "1.0.2", false, ""},
		{"not 1.0.20", "cpe:2.3:a:openssl:openssl:1.0.20:*:*:*:*:*:*:*", "2022-01-01", false, "", false, ""},
		{"one-component cycle", "cpe:2.3:a:postgresql:postgresql:12.22:*:*:*:*:*:*:*", "2024-11-20", true, "12", false, ""},
		{"one-component cycle not 120", "cpe:2.3:a:postgresql:postgresql:120.1:*:*:*:*:*:*:*", "2024-11-20", false, "", false, ""},
		{"alias, any case", "cpe:2.3:a:POSTGRESQL:postgres:9.6.24:*:*:*:*:*:*:*", "2022-01-01", true, "9.6", true, ""},
		{"escaped version", `cpe:2.3:a:apache:http_server:2\.2\.3:*:*:*:*:*:*:*`, "2020-01-01", true, "2.2", true, ""},
		{"CPE 2.2 URI", "cpe:/a:apache:http_server:2.2.15", "2020-01-01", true, "2.2", true, ""},
		{"CPE 2.2 URI percent", "cpe:/a:apache:http_server:2%2e2%2e15", "2020-01-01", true, "2.2", true, ""},
		{"CPE 2.2 URI no version", "cpe:/a:apache:http_server", "2020-01-01", false, "", false, ""},
		{"any version", "cpe:2.3:a:apache:http_server:*:*:*:*:*:*:*:*", "2020-01-01", false, "", false, ""},
		{"NA version", "cpe:2.3:a:apache:http_server:-:*:*:*:*:*:*:*", "2020-01-01", false, "", false, ""},
		{"empty version", "cpe:2.3:a:apache:http_server::*:*:*:*:*:*:*", "2020-01-01", false, "", false, ""},
		{"unknown product", "cpe:2.3:a:openbsd:openssh:7.4:p1:*:*:*:*:*:*", "2020-01-01", false, "", false, ""},
		{"vendor mismatch", "cpe:2.3:a:apache:openssl:1.1.1:*:*:*:*:*:*:*", "2020-01-01", false, "", false, ""},
		{"malformed: no prefix", "apache:http_server:2.2", "2020-01-01", false, "", false, ""},
		{"malformed: short", "cpe:2.3:a:apache", "2020-01-01", false, "", false, ""},
		{"malformed: empty", "", "2020-01-01", false, "", false, ""},
		{"malformed: wildcard vendor", "cpe:2.3:a:*:http_server:2.2:*:*:*:*:*:*:*", "2020-01-01", false, "", false, ""},
		{"malformed: bad percent", "cpe:/a:apache:http_server:2%zz", "2020-01-01", false, "", false, ""},
	}
	_ = apache
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, ok := tb.Check(c.cpe, day(c.now))
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, c.ok, st)
			}
			if !ok {
				if st != (Status{}) {
					t.Errorf("status %+v with ok=false", st)
				}
				return
			}
			if st.Cycle != c.cycle || st.Ended != c.ended {
				t.Errorf("cycle %q ended %v, want %q %v", st.Cycle, st.Ended, c.cycle, c.ended)
			}
			if c.src != "" && st.Source != c.src {
				t.Errorf("source %q, want %q", st.Source, c.src)
			}
		})
	}
}

func TestCheckStatus(t *testing.T) {
	tb := load(t, testData)
	st, ok := tb.Check("cpe:2.3:a:apache:http_server:2.0.65:*:*:*:*:*:*:*", day("2013-07-10").Add(-time.Nanosecond))
	want := Status{Product: "Apache HTTP Server", Cycle: "2.0", EOL: day("2013-07-10"), Ended: false,
		Source: "https://archive.apache.org/dist/httpd/Announcement2.0.html", Note: "n"}
	if !ok || st != want {
		t.Fatalf("got %+v %v, want %+v", st, ok, want)
	}
	st, _ = tb.Check("cpe:2.3:a:openssl:openssl:1.0.2:*:*:*:*:*:*:*", day("2020-01-01"))
	if st.Product != "openssl:openssl" {
		t.Errorf("product without name = %q, want the cpe", st.Product)
	}
	var nilTable *Table
	if _, ok := nilTable.Check("cpe:/a:apache:http_server:2.2.1", day("2020-01-01")); ok {
		t.Error("nil table matched")
	}
}

func TestLoadErrors(t *testing.T) {
	prod := func(cycles string) string {
		return `{"products": [{"cpe": "php:php", "source": "https://www.php.net/eol.php", "cycles": [` + cycles + `]}]}`
	}
	cases := []struct {
		name, data, want string
	}{
		{"not json", `{`, "unexpected EOF"},
		{"unknown field", `{"products": [], "extra": 1}`, `unknown field "extra"`},
		{"unknown cycle field", prod(`{"cycle": "7.4", "eol": "2022-11-28", "date": "x"}`), `unknown field "date"`},
		{"trailing data", `{"products": []} {}`, "data after"},
		{"no cpe", `{"products": [{"cycles": [{"cycle": "1", "eol": "2020-01-01", "source": "https://a.example/"}]}]}`, `products[0] "": cpe`},
		{"bad cpe", `{"products": [{"cpe": "php", "cycles": []}]}`, `want vendor:product`},
		{"no cycles", `{"products": [{"cpe": "php:php", "cycles": []}]}`, `products[0] "php:php": no cycles`},
		{"no cycle", prod(`{"eol": "2022-11-28"}`), `cycles[0] "": no cycle`},
		{"separator cycle", prod(`{"cycle": "..", "eol": "2022-11-28"}`), `no version components`},
		{"no date", prod(`{"cycle": "7.4"}`), `cycles[0] "7.4": no eol date`},
		{"bad date", prod(`{"cycle": "7.4", "eol": "2022-13-01"}`), `cycles[0] "7.4": eol "2022-13-01": want YYYY-MM-DD`},
		{"date format", prod(`{"cycle": "7.4", "eol": "28/11/2022"}`), `want YYYY-MM-DD`},
		{"duplicate cycle", prod(`{"cycle": "7.4", "eol": "2022-11-28"}, {"cycle": "7.04", "eol": "2022-11-28"}`), `cycles[1] "7.04": the same cycle as "7.4"`},
		{"no source", `{"products": [{"cpe": "php:php", "cycles": [{"cycle": "7.4", "eol": "2022-11-28"}]}]}`, `no source`},
		{"bad source", prod(`{"cycle": "7.4", "eol": "2022-11-28", "source": "ftp://x/"}`), `not an http(s) URL`},
		{"bad product source", `{"products": [{"cpe": "php:php", "source": "php.net", "cycles": [{"cycle": "7.4", "eol": "2022-11-28"}]}]}`, `source: "php.net" is not`},
		{"duplicate product", `{"products": [
			{"cpe": "php:php", "source": "https://a.example/", "cycles": [{"cycle": "7.4", "eol": "2022-11-28"}]},
			{"cpe": "x:y", "aliases": ["PHP:php"], "source": "https://a.example/", "cycles": [{"cycle": "1", "eol": "2022-11-28"}]}]}`,
			`products[1] "x:y": "php:php" is listed by an earlier product`},
		{"duplicate alias", `{"products": [{"cpe": "php:php", "aliases": ["php:php"], "source": "https://a.example/", "cycles": [{"cycle": "7.4", "eol": "2022-11-28"}]}]}`, `given twice`},
		{"wrong type", `{"products": [{"cpe": 1}]}`, `cannot unmarshal`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(c.data))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to say %q", err, c.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	base := load(t, testData)
	user := load(t, `{"products": [
	  {"cpe": "apache:http_server", "name": "httpd", "source": "https://example.com/policy",
	   "cycles": [{"cycle": "2.2", "eol": "2018-01-01"}, {"cycle": "2.4", "eol": "2030-01-01"}]},
	  {"cpe": "postgresql:postgres", "source": "https://example.com/pg", "cycles": [{"cycle": "9.6", "eol": "2025-01-01"}]},
	  {"cpe": "acme:widget", "source": "https://example.com/w", "cycles": [{"cycle": "1", "eol": "2020-01-01"}]}
	]}`)
	merged := base.Clone()
	merged.Merge(user)
	merged.Merge(nil)
	now := day("2020-06-01")
	check := func(tb *Table, cpe string, wantOK bool, wantEOL, wantProduct string) {
		t.Helper()
		st, ok := tb.Check(cpe, now)
		if ok != wantOK {
			t.Fatalf("%s: ok %v", cpe, ok)
		}
		if ok && (st.EOL != day(wantEOL) || st.Product != wantProduct) {
			t.Errorf("%s: %+v, want eol %s product %s", cpe, st, wantEOL, wantProduct)
		}
	}
	check(merged, "cpe:/a:apache:http_server:2.2.1", true, "2018-01-01", "httpd")         // user wins
	check(merged, "cpe:/a:apache:http_server:2.4.1", true, "2030-01-01", "httpd")         // added
	check(merged, "cpe:/a:apache:http_server:2.0.1", true, "2013-07-10", "httpd")         // kept
	check(merged, "cpe:/a:postgresql:postgresql:9.6.1", true, "2025-01-01", "PostgreSQL") // via alias
	check(merged, "cpe:/a:postgresql:postgresql:12.1", true, "2024-11-21", "PostgreSQL")
	check(merged, "cpe:/a:acme:widget:1.2", true, "2020-01-01", "acme:widget")
	// the base table is untouched
	check(base, "cpe:/a:apache:http_server:2.2.1", true, "2017-07-11", "Apache HTTP Server")
	check(base, "cpe:/a:acme:widget:1.2", false, "", "")
	if got := merged.Products(); len(got) != 4 || got[3] != "acme:widget" {
		t.Errorf("products %v", got)
	}
}

// TestDefault checks the built-in data: it loads, every product has a
// source for every cycle (Load enforces it), and a few known dates.
func TestDefault(t *testing.T) {
	tb := Default()
	if Default() != tb {
		t.Error("Default is not shared")
	}
	now := day("2026-11-01")
	for _, c := range []struct {
		cpe, cycle string
		ended      bool
	}{
		{"cpe:2.3:a:apache:http_server:2.2.34:*:*:*:*:*:*:*", "2.2", true},
		{"cpe:2.3:a:f5:nginx:1.18.0:*:*:*:*:*:*:*", "1.18", true},
		{"cpe:2.3:a:nginx:nginx:1.18.0:*:*:*:*:*:*:*", "1.18", true},
		{"cpe:2.3:a:php:php:7.4.33:*:*:*:*:*:*:*", "7.4", true},
		{"cpe:2.3:a:php:php:8.3.1:*:*:*:*:*:*:*", "8.3", false},
		{"cpe:2.3:a:openssl:openssl:1.0.2k:*:*:*:*:*:*:*", "1.0.2", true},
		{"cpe:2.3:a:oracle:mysql:5.7.44:*:*:*:*:*:*:*", "5.7", true},
		{"cpe:2.3:a:mariadb:mariadb:10.11.6:*:*:*:*:*:*:*", "10.11", false},
		{"cpe:2.3:a:mariadb:mariadb:10.1.48:*:*:*:*:*:*:*", "10.1", true},
		{"cpe:2.3:a:postgresql:postgresql:9.6.24:*:*:*:*:*:*:*", "9.6", true},
		{"cpe:2.3:a:postgresql:postgresql:16.4:*:*:*:*:*:*:*", "16", false},
		{"cpe:2.3:a:microsoft:internet_information_services:7.5:*:*:*:*:*:*:*", "7.5", true},
	} {
		st, ok := tb.Check(c.cpe, now)
		if !ok || st.Cycle != c.cycle || st.Ended != c.ended || !strings.HasPrefix(st.Source, "https://") {
			t.Errorf("%s: %+v %v, want cycle %s ended %v", c.cpe, st, ok, c.cycle, c.ended)
		}
	}
	if _, ok := tb.Check("cpe:2.3:a:openbsd:openssh:7.4:p1:*:*:*:*:*:*", now); ok {
		t.Error("OpenSSH has no EOL policy, yet matched")
	}
	raw, err := os.ReadFile("data/eol.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"openbsd:openssh"`)) || !bytes.Contains(raw, []byte("as of 2026-11")) {
		t.Error("the data file's notes should say why OpenSSH is left out, and its comment the date of the data")
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(testData))
	f.Add(defaultData)
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := Load(bytes.NewReader(data))
		if err != nil {
			if tb != nil {
				t.Fatal("table with an error")
			}
			return
		}
		now := day("2024-01-01")
		for _, p := range tb.order {
			if len(p.cycles) == 0 {
				t.Fatalf("%s: no cycles", p.key)
			}
			for _, c := range p.cycles {
				// a cycle's own version matches that cycle (or a longer
				// one with the same key, which Load refuses)
				st, ok := tb.Check("cpe:2.3:a:"+escape23(p.key)+":"+escape23Field(c.name)+":*:*:*:*:*:*:*", now)
				if !ok || st.Cycle != c.name {
					t.Fatalf("%s cycle %q: Check gave %+v %v", p.key, c.name, st, ok)
				}
				if st.Ended != !now.Before(c.eol) || st.Source == "" {
					t.Fatalf("%s cycle %q: %+v", p.key, c.name, st)
				}
			}
		}
		c := tb.Clone()
		c.Merge(tb)
		if len(c.Products()) != len(tb.Products()) {
			t.Fatalf("merging a table into its clone changed the products: %v vs %v", c.Products(), tb.Products())
		}
	})
}

// escape23 escapes vendor:product for a CPE 2.3 string, keeping the colon
// between them.
func escape23(key string) string {
	v, p, _ := strings.Cut(key, ":")
	return escape23Field(v) + ":" + escape23Field(p)
}

func escape23Field(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}
