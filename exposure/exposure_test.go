package exposure

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/eol"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/vuln"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json and the weights tables in docs/exposure.md")

var now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

var ip = netip.MustParseAddr("192.0.2.10")

func svc(port uint16, proto string, f ...func(*record.Service)) record.Service {
	s := record.Service{IP: ip, Port: port, Transport: "tcp", State: "open", Protocol: proto, Time: now.Add(-time.Hour)}
	for _, g := range f {
		g(&s)
	}
	return s
}

func data(kv ...string) func(*record.Service) {
	return func(s *record.Service) {
		if s.Data == nil {
			s.Data = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Data[kv[i]] = kv[i+1]
		}
	}
}

func product(p, v string, cpe ...string) func(*record.Service) {
	return func(s *record.Service) { s.Product, s.Version, s.CPE = p, v, cpe }
}

func goodTLS(s *record.Service) {
	s.TLS = &record.TLS{Version: "TLS 1.3", Subject: "CN=www.example.com", Issuer: "CN=R11,O=Let's Encrypt,C=US",
		NotBefore: now.AddDate(0, -1, 0), NotAfter: now.AddDate(0, 2, 0)}
}

// vulnDB is a stand-in for vuln.DB.Match.
func vulnDB(m map[string][]vuln.Vuln) func(string) []vuln.Vuln {
	return func(cpe string) []vuln.Vuln { return m[cpe] }
}

// checkInvariants: parts sorted by points, the score redone from them,
// level and formula agree.
func checkInvariants(t *testing.T, r Result) {
	t.Helper()
	if r.Parts == nil {
		t.Error("Parts is nil, want an empty list")
	}
	sum := 0.0
	for i, p := range r.Parts {
		if i > 0 && p.Points > r.Parts[i-1].Points {
			t.Errorf("parts not sorted by points: %v after %v", p, r.Parts[i-1])
		}
		if p.Points != math.Round(p.Points*10)/10 || p.Points < 0 {
			t.Errorf("part %v: points not rounded to one decimal", p)
		}
		if !slices.Contains([]string{KindPort, KindCVE, KindKEV, KindEOL, KindProtection}, p.Kind) || p.What == "" || p.Why == "" || p.Port == 0 || p.Transport == "" {
			t.Errorf("part %+v incomplete", p)
		}
		sum += p.Points
	}
	if want := min(100, int(math.Round(sum))); r.Score != want {
		t.Errorf("score %d, parts sum to %v (want %d)", r.Score, sum, want)
	}
	if lv, _ := levelOf(r.Score); lv != r.Level {
		t.Errorf("level %q for %d, want %q", r.Level, r.Score, lv)
	}
	if !strings.Contains(r.Formula, fmt.Sprintf("= %d;", r.Score)) || strings.Contains(r.Formula, "\n") {
		t.Errorf("formula %q does not show the score on one line", r.Formula)
	}
}

func kinds(r Result) []string {
	var k []string
	for _, p := range r.Parts {
		k = append(k, p.Kind)
	}
	return k
}

func TestScore(t *testing.T) {
	telnetKEV := vulnDB(map[string][]vuln.Vuln{
		"cpe:2.3:a:gnu:inetutils:1.9.4:*:*:*:*:*:*:*": {
			{ID: "CVE-2020-10188", Score: 9.8, CVSS: "3.1", KEV: true},
			{ID: "CVE-2019-0053", Score: 7.8, CVSS: "3.1"},
		},
	})
	telnet := svc(23, "telnet", product("GNU inetutils telnetd", "1.9.4", "cpe:2.3:a:gnu:inetutils:1.9.4:*:*:*:*:*:*:*"))
	cases := []struct {
		name      string
		services  []record.Service
		vulns     func(string) []vuln.Vuln
		eol       *eol.Table
		score     int
		level     string
		wantKinds []string
	}{
		{"no services", nil, nil, nil, 0, "none", nil},
		{"only closed", []record.Service{svc(23, "telnet", func(s *record.Service) { s.State = "closed" })}, nil, nil, 0, "none", nil},
		{"bare https", []record.Service{svc(443, "http", goodTLS, func(s *record.Service) { s.HTTP = &record.HTTP{Status: 200} })}, nil, nil, 2, "low", []string{"port"}},
		{"web and ssh", []record.Service{
			svc(22, "ssh", product("OpenSSH", "9.6p1", "cpe:2.3:a:openbsd:openssh:9.6p1:*:*:*:*:*:*:*")),
			svc(80, "http"), svc(443, "http", goodTLS),
		}, vulnDB(nil), eol.Default(), 10, "low", []string{"port", "port", "port"}},
		{"telnet and KEV", []record.Service{telnet}, telnetKEV, nil, 100, "critical", []string{"port", "kev", "cve", "protection"}},
		{"telnet without vulns", []record.Service{telnet}, nil, nil, 50, "high", []string{"port", "protection"}},
		{"nil vulns and nil eol ignore CPEs", []record.Service{
			svc(80, "http", product("Apache httpd", "2.2.34", "cpe:2.3:a:apache:http_server:2.2.34:*:*:*:*:*:*:*")),
		}, nil, nil, 3, "low", []string{"port"}},
		{"eol", []record.Service{
			svc(80, "http", product("Apache httpd", "2.2.34", "cpe:2.3:a:apache:http_server:2.2.34:*:*:*:*:*:*:*", "cpe:2.3:a:php:php:7.4.33:*:*:*:*:*:*:*")),
		}, nil, eol.Default(), 23, "medium", []string{"eol", "eol", "port"}},
		{"unknown protocol on telnet's port", []record.Service{svc(23, "")}, nil, nil, 40, "medium", []string{"port"}},
		{"unknown port", []record.Service{svc(31337, "")}, nil, nil, 3, "low", []string{"port"}},
		{"protocol unknown on rdp's port", []record.Service{svc(3389, "unknown")}, nil, nil, 30, "medium", []string{"port"}},
		{"silent is not a service", []record.Service{svc(3389, "", func(s *record.Service) { s.State = "silent" })}, nil, nil, 0, "none", nil},
		{"unweighted protocol", []record.Service{svc(8883, "amqp")}, nil, nil, 3, "low", []string{"port"}},
		{"udp port", []record.Service{svc(123, "", func(s *record.Service) { s.Transport = "UDP" })}, nil, nil, 5, "low", []string{"port"}},
		{"newest observation wins", []record.Service{
			svc(6379, "redis", product("Redis", "7.2.4"), data("redis.version", "7.2.4"), func(s *record.Service) { s.Time = now.Add(-48 * time.Hour) }),
			svc(6379, "redis", product("Redis", ""), data("redis.auth", "required", "redis.error", "NOAUTH Authentication required.")),
		}, nil, nil, 30, "medium", []string{"port"}},
		{"cve cap", []record.Service{svc(80, "http", product("x", "1", "cpe:/a:x:x:1"))}, func(string) []vuln.Vuln {
			var vs []vuln.Vuln
			for i := range 30 {
				vs = append(vs, vuln.Vuln{ID: fmt.Sprintf("CVE-2024-%04d", i), Score: 10, CVSS: "3.1"})
			}
			return vs
		}, nil, 28, "medium", []string{"cve", "port"}},
		{"cve without score", []record.Service{svc(80, "http", product("x", "1", "cpe:/a:x:x:1"))}, vulnDB(map[string][]vuln.Vuln{
			"cpe:/a:x:x:1": {{ID: "CVE-2000-0001"}, {ID: "CVE-2000-0002"}},
		}), nil, 4, "low", []string{"port", "cve"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Score(c.services, c.vulns, c.eol, now)
			checkInvariants(t, r)
			if r.Score != c.score || r.Level != c.level {
				t.Errorf("score %d %s, want %d %s\n%s", r.Score, r.Level, c.score, c.level, dump(r))
			}
			if got := kinds(r); !slices.Equal(got, c.wantKinds) {
				t.Errorf("kinds %v, want %v\n%s", got, c.wantKinds, dump(r))
			}
		})
	}
}

func dump(r Result) string {
	b, _ := json.MarshalIndent(r, "", "  ")
	return string(b)
}

// TestProtections: each protection the code checks, shown by a record
// the grabbers could have written, and a near miss that must not count.
func TestProtections(t *testing.T) {
	expired := func(s *record.Service) {
		goodTLS(s)
		s.TLS.NotAfter = now.Add(-time.Second)
	}
	selfSigned := func(s *record.Service) {
		goodTLS(s)
		s.TLS.Issuer = s.TLS.Subject
	}
	basic := func(s *record.Service) {
		s.HTTP = &record.HTTP{Status: 401, Headers: []record.Header{{Name: "www-authenticate", Value: `Basic realm="router"`}}}
	}
	es := func(status int) func(*record.Service) {
		return func(s *record.Service) {
			s.Product, s.Version = "Elasticsearch", "7.10.2"
			s.HTTP = &record.HTTP{Status: status}
		}
	}
	cases := []struct {
		key      string
		hit, not record.Service
	}{
		{"telnet_cleartext", svc(23, "telnet"), svc(992, "telnet", goodTLS)},
		{"ftp_no_tls", svc(21, "ftp", data("ftp.features", "MDTM, REST STREAM, SIZE")), svc(21, "ftp", data("ftp.features", "AUTH TLS, PBSZ, PROT, SIZE"))},
		{"http_auth_cleartext", svc(80, "http", basic), svc(443, "http", goodTLS, basic)},
		{"mail_no_starttls", svc(25, "smtp", data("smtp.ehlo", "PIPELINING, SIZE 10240000, 8BITMIME")), svc(25, "smtp", data("smtp.ehlo", "PIPELINING, STARTTLS, 8BITMIME"))},
		{"mail_no_starttls", svc(143, "imap", data("imap.capabilities", "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE AUTH=PLAIN")), svc(143, "imap", data("imap.capabilities", "IMAP4rev1 STARTTLS LOGINDISABLED"))},
		{"mail_no_starttls", svc(110, "pop3", data("pop3.capabilities", "TOP, UIDL, USER")), svc(110, "pop3", data("pop3.capabilities", "TOP, UIDL, STLS"))},
		{"db_no_tls", svc(3306, "mysql", data("mysql.ssl", "no")), svc(3306, "mysql", data("mysql.ssl", "yes"))},
		{"db_no_tls", svc(5432, "postgres", data("postgres.ssl", "N")), svc(5432, "postgres", data("postgres.ssl", "S"))},
		{"tls_expired", svc(443, "http", expired), svc(443, "http", goodTLS)},
		{"tls_self_signed", svc(443, "http", selfSigned), svc(443, "http", goodTLS)},
		{"rdp_no_nla", svc(3389, "rdp", data("rdp.protocols", "ssl,hybrid")), svc(3389, "rdp", data("rdp.protocols", "hybrid,hybrid_ex"))},
		{"rdp_no_nla", svc(3389, "rdp", data("rdp.protocols", "rdp")), svc(3389, "rdp", data("rdp.failure", "HYBRID_REQUIRED_BY_SERVER"))},
		{"smb_signing_not_required", svc(445, "smb", data("smb.version", "2", "smb.signing", "enabled")), svc(445, "smb", data("smb.version", "3", "smb.signing", "required"))},
		{"smbv1", svc(445, "smb", data("smb.version", "1")), svc(445, "smb", data("smb.version", "2", "smb.signing", "required"))},
		{"redis_no_auth", svc(6379, "redis", product("Redis", "7.2.4"), data("redis.version", "7.2.4", "redis.mode", "standalone")), svc(6379, "redis", product("Redis", ""), data("redis.error", "DENIED Redis is running in protected mode", "redis.auth", "protected mode"))},
		{"memcached_no_auth", svc(11211, "memcached", product("memcached", "1.6.21")), svc(11211, "memcached", data("memcached.error", "CLIENT_ERROR unauthenticated"))},
		{"elasticsearch_no_auth", svc(9200, "http", es(200)), svc(9200, "http", es(401))},
		{"vnc_no_auth", svc(5900, "vnc", data("vnc.security", "None, VNC")), svc(5900, "vnc", data("vnc.security", "VNC, Tight"))},
		{"postgres_trust", svc(5432, "postgres", data("postgres.auth", "trust")), svc(5432, "postgres", data("postgres.auth", "scram-sha-256"))},
		{"imap_preauth", svc(143, "imap", data("imap.preauth", "yes")), svc(143, "imap")},
		{"mqtt_no_auth", svc(1883, "mqtt", data("mqtt.connack", "accepted")), svc(1883, "mqtt", data("mqtt.connack", "not authorized"))},
		{"dns_open_resolver", svc(53, "dns", data("dns.recursion", "yes")), svc(53, "dns", data("dns.recursion", "no"))},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.key] = true
		t.Run(c.key, func(t *testing.T) {
			has := func(s record.Service) bool {
				for _, f := range missing(s, now) {
					if f.key == c.key {
						return true
					}
				}
				return false
			}
			if !has(c.hit) {
				t.Errorf("not found in %+v", c.hit)
			}
			if has(c.not) {
				t.Errorf("found in %+v", c.not)
			}
			r := Score([]record.Service{c.hit}, nil, nil, now)
			checkInvariants(t, r)
			if !slices.ContainsFunc(r.Parts, func(p Part) bool { return p.Kind == KindProtection && p.Points == w.Protections[c.key].Points }) {
				t.Errorf("no protection part in\n%s", dump(r))
			}
		})
	}
	for _, k := range protectionKeys {
		if !covered[k] {
			t.Errorf("protection %q has no test case", k)
		}
	}
}

func TestOrderDeterministic(t *testing.T) {
	services := []record.Service{
		svc(8080, "http"), svc(80, "http"), svc(21, "ftp"), svc(443, "http", goodTLS), svc(22, "ssh"), svc(2222, "ssh"),
	}
	first := Score(services, nil, nil, now)
	checkInvariants(t, first)
	slices.Reverse(services)
	again := Score(services, nil, nil, now)
	if dump(first) != dump(again) {
		t.Errorf("order of services changed the result:\n%s\n%s", dump(first), dump(again))
	}
	var ports []uint16
	for _, p := range first.Parts {
		ports = append(ports, p.Port)
	}
	if want := []uint16{21, 22, 2222, 80, 8080, 443}; !slices.Equal(ports, want) {
		t.Errorf("ports in order %v, want %v (points, then port)", ports, want)
	}
}

func TestLevels(t *testing.T) {
	for _, c := range []struct {
		score int
		level string
	}{{0, "none"}, {1, "low"}, {19, "low"}, {20, "medium"}, {44, "medium"}, {45, "high"}, {69, "high"}, {70, "critical"}, {100, "critical"}} {
		if lv, _ := levelOf(c.score); lv != c.level {
			t.Errorf("%d: %s, want %s", c.score, lv, c.level)
		}
	}
}

func TestWeightsErrors(t *testing.T) {
	var base map[string]any
	if err := json.Unmarshal(weightsData, &base); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(weightsData, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"unknown field", mutate(func(m map[string]any) { m["extra"] = 1 }), "unknown field"},
		{"unchecked protection", mutate(func(m map[string]any) {
			m["protections"].(map[string]any)["made_up"] = map[string]any{"points": 1, "why": "x"}
		}), `"made_up" is not checked`},
		{"missing protection", mutate(func(m map[string]any) { delete(m["protections"].(map[string]any), "smbv1") }), `"smbv1" missing`},
		{"port to nowhere", mutate(func(m map[string]any) { m["ports"].(map[string]any)["1/tcp"] = "gopher" }), `"gopher" is not in exposed`},
		{"bad port key", mutate(func(m map[string]any) { m["ports"].(map[string]any)["23"] = "telnet" }), `want port/transport`},
		{"no why", mutate(func(m map[string]any) { m["exposed"].(map[string]any)["ssh"] = map[string]any{"points": 5} }), `exposed ssh: no why`},
		{"levels", mutate(func(m map[string]any) { m["levels"] = []any{map[string]any{"level": "low", "min": 1}} }), `start at 0`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadWeights(bytes.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

// complexHost has something of every kind.
func complexHost() ([]record.Service, func(string) []vuln.Vuln) {
	apache := "cpe:2.3:a:apache:http_server:2.2.15:*:*:*:*:*:*:*"
	php := "cpe:2.3:a:php:php:7.4.33:*:*:*:*:*:*:*"
	openssh := "cpe:2.3:a:openbsd:openssh:7.4:p1:*:*:*:*:*:*"
	services := []record.Service{
		svc(22, "ssh", product("OpenSSH", "7.4p1", openssh)),
		svc(80, "http", product("Apache httpd", "2.2.15", apache, php, "cpe:2.3:o:canonical:ubuntu_linux:*:*:*:*:*:*:*:*"),
			func(s *record.Service) { s.HTTP = &record.HTTP{Status: 200, Server: "Apache/2.2.15"} }),
		svc(443, "http", product("Apache httpd", "2.2.15", apache), func(s *record.Service) {
			s.HTTP = &record.HTTP{Status: 200}
			s.TLS = &record.TLS{Version: "TLS 1.2", Subject: "CN=localhost.localdomain,O=SomeOrganization", Issuer: "CN=localhost.localdomain,O=SomeOrganization",
				NotBefore: time.Date(2014, 3, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2015, 3, 1, 0, 0, 0, 0, time.UTC)}
		}),
		svc(445, "smb", data("smb.version", "2", "smb.dialect", "2.1", "smb.signing", "enabled")),
		svc(3306, "mysql", product("MySQL", "5.7.44", "cpe:2.3:a:oracle:mysql:5.7.44:*:*:*:*:*:*:*"), data("mysql.ssl", "no")),
		svc(3389, "rdp", data("rdp.selected", "hybrid", "rdp.protocols", "ssl,hybrid")),
		svc(6379, "redis", product("Redis", "5.0.7", "cpe:2.3:a:redis:redis:5.0.7:*:*:*:*:*:*:*"), data("redis.version", "5.0.7")),
		svc(9999, ""),
	}
	db := vulnDB(map[string][]vuln.Vuln{
		apache: {
			{ID: "CVE-2017-9798", Score: 7.5, CVSS: "3.1"},
			{ID: "CVE-2017-7679", Score: 9.8, CVSS: "3.1"},
			{ID: "CVE-2016-5387", Score: 8.1, CVSS: "3.0"},
		},
		php: {
			{ID: "CVE-2024-4577", Score: 9.8, CVSS: "3.1", KEV: true},
		},
		openssh: {
			{ID: "CVE-2023-38408", Score: 9.8, CVSS: "3.1"},
			{ID: "CVE-2024-6387", Score: 8.1, CVSS: "3.1"},
		},
		"cpe:2.3:a:redis:redis:5.0.7:*:*:*:*:*:*:*": {
			{ID: "CVE-2022-0543", Score: 10, CVSS: "3.1", KEV: true},
			{ID: "CVE-2021-32675", Score: 7.5, CVSS: "3.1"},
		},
	})
	return services, db
}

func TestGolden(t *testing.T) {
	services, db := complexHost()
	r := Score(services, db, eol.Default(), now)
	checkInvariants(t, r)
	got, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const path = "testdata/complex.golden.json"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("result differs from %s (go test -update rewrites it):\n%s", path, got)
	}
	var back Result
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, back)
}

const (
	docPath  = "../docs/exposure.md"
	docBegin = "<!-- weights:begin (generated from exposure/data/weights.json by go test ./exposure -update) -->\n"
	docEnd   = "<!-- weights:end -->\n"
)

// TestDoc: docs/exposure.md holds the tables rendered from weights.json,
// so it lists every protocol, port, protection and level with its points.
func TestDoc(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(doc, []byte(docBegin))
	j := bytes.Index(doc, []byte(docEnd))
	if i < 0 || j < i {
		t.Fatalf("%s: no generated block between %q and %q", docPath, docBegin, docEnd)
	}
	tables := renderWeights()
	if *update {
		var b bytes.Buffer
		b.Write(doc[:i+len(docBegin)])
		b.WriteString(tables)
		b.Write(doc[j:])
		if err := os.WriteFile(docPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		doc = b.Bytes()
		j = bytes.Index(doc, []byte(docEnd))
	}
	block := string(doc[i+len(docBegin) : j])
	if block != tables {
		t.Errorf("%s: the weights tables are out of date with weights.json (go test ./exposure -update rewrites them)", docPath)
	}
	for k := range w.Exposed {
		if !strings.Contains(block, "| `"+k+"` |") {
			t.Errorf("%s does not list protocol %q", docPath, k)
		}
	}
	for k := range w.Protections {
		if !strings.Contains(block, "| `"+k+"` |") {
			t.Errorf("%s does not list protection %q", docPath, k)
		}
	}
}

func renderWeights() string {
	var b strings.Builder
	num := func(f float64) string { return fmt.Sprint(f) }
	keys := func(m map[string]weight) []string {
		var k []string
		for x := range m {
			k = append(k, x)
		}
		slices.SortFunc(k, func(a, c string) int {
			if m[a].Points != m[c].Points {
				if m[a].Points > m[c].Points {
					return -1
				}
				return 1
			}
			return strings.Compare(a, c)
		})
		return k
	}
	b.WriteString("\n#### Reachable services (`port` parts)\n\n| protocol | points | why |\n|---|---:|---|\n")
	for _, k := range keys(w.Exposed) {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k, num(w.Exposed[k].Points), w.Exposed[k].Why)
	}
	b.WriteString("\n`https` is protocol `http` over TLS. A product named below counts as its entry, whatever the protocol:\n\n| product | counts as |\n|---|---|\n")
	var prods []string
	for p := range w.Products {
		prods = append(prods, p)
	}
	slices.Sort(prods)
	for _, p := range prods {
		fmt.Fprintf(&b, "| %s | `%s` |\n", p, w.Products[p])
	}
	b.WriteString("\nWhen the protocol was not identified, a well-known port counts as its protocol; any other open port is `unidentified`:\n\n| port | counts as |\n|---|---|\n")
	var ports []string
	for p := range w.Ports {
		ports = append(ports, p)
	}
	slices.SortFunc(ports, func(a, c string) int {
		pa, ta, _ := parsePortKey(a)
		pc, tc, _ := parsePortKey(c)
		if pa != pc {
			return int(pa) - int(pc)
		}
		return strings.Compare(ta, tc)
	})
	for _, p := range ports {
		fmt.Fprintf(&b, "| %s | `%s` |\n", p, w.Ports[p])
	}
	c := w.CVE
	b.WriteString("\n#### Vulnerabilities and end of life\n\n| part | points | why |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| `cve` | min(%s, %s × highest CVSS + min(%s, %s × further CVEs)) | %s |\n",
		num(c.ServiceCap), num(c.PerCVSSPoint), num(c.FurtherCap), num(c.PerFurtherCVE), c.Why)
	fmt.Fprintf(&b, "| `kev` | %s | %s |\n", num(w.KEV.Points), w.KEV.Why)
	fmt.Fprintf(&b, "| `eol` | %s | %s |\n", num(w.EOL.Points), w.EOL.Why)
	b.WriteString("\n#### Missing protections (`protection` parts)\n\n| protection | points | why |\n|---|---:|---|\n")
	for _, k := range keys(w.Protections) {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k, num(w.Protections[k].Points), w.Protections[k].Why)
	}
	b.WriteString("\n#### Levels\n\n| level | score |\n|---|---|\n")
	for i := range w.Levels {
		lv, rng := levelOf(w.Levels[i].Min)
		fmt.Fprintf(&b, "| %s | %s |\n", lv, rng)
	}
	b.WriteString("\n")
	return b.String()
}
