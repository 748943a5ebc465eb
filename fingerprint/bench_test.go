package fingerprint

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// benchServices is a mix of what a scan grabs: greetings, HTTP responses
// with a full-size body, a binary handshake, an unknown service.
func benchServices() []struct {
	protocol string
	fields   map[string]string
} {
	page := func(extra string) string {
		var b strings.Builder
		b.WriteString("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Example Corp</title>")
		b.WriteString(extra)
		b.WriteString("</head><body>")
		for b.Len() < 64<<10 {
			b.WriteString("<div class=\"row\"><p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p><a href=\"/products/item?id=42\">More</a></div>\n")
		}
		b.WriteString("</body></html>")
		return b.String()
	}
	return []struct {
		protocol string
		fields   map[string]string
	}{
		{"ssh", map[string]string{"banner": "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6"}},
		{"ssh", map[string]string{"banner": "SSH-2.0-dropbear_2022.83"}},
		{"http", map[string]string{
			"banner":  "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nContent-Type: text/html\r\n",
			"server":  "nginx/1.24.0",
			"title":   "Example Corp",
			"headers": "Server: nginx/1.24.0\nContent-Type: text/html\nX-Frame-Options: DENY\n",
			"body":    page(""),
		}},
		{"http", map[string]string{
			"banner":       "HTTP/1.1 200 OK\r\nServer: Apache/2.4.57 (Debian)\r\n",
			"server":       "Apache/2.4.57 (Debian)",
			"x-powered-by": "PHP/8.2.7",
			"title":        "Example Corp",
			"headers":      "Server: Apache/2.4.57 (Debian)\nX-Powered-By: PHP/8.2.7\nLink: <https://example.com/wp-json/>; rel=\"https://api.w.org/\"\n",
			"body":         page(`<meta name="generator" content="WordPress 6.4.2" />`),
		}},
		{"http", map[string]string{
			"banner":  "HTTP/1.1 404 Not Found\r\nServer: CustomServer\r\n",
			"server":  "CustomServer",
			"headers": "Server: CustomServer\nContent-Length: 0\n",
			"body":    page(""),
		}},
		{"ftp", map[string]string{"banner": "220 (vsFTPd 3.0.3)\r\n"}},
		{"smtp", map[string]string{"banner": "220 mail.example.com ESMTP Postfix (Ubuntu)\r\n"}},
		{"mysql", map[string]string{"banner": "J\x00\x00\x00\x0a8.0.35\x00*\x00\x00\x00:]\x1f~b+A\x0c\x00\xff\xff\xff\x02\x00\xff\xdf\x15"}},
		{"redis", map[string]string{"banner": "# Server\r\nredis_version:7.0.11\r\nredis_mode:standalone\r\nos:Linux 5.15.0 x86_64\r\n"}},
		{"telnet", map[string]string{"banner": "\xff\xfd\x18\xff\xfd\x20Ubuntu 22.04.3 LTS\r\nhost login: "}},
		{"dns", map[string]string{"banner": "9.18.19-1~deb12u1-Debian"}},
		{"unknown", map[string]string{"banner": "\x00\x00\x00\x1cSome proprietary hello v1.2\r\n"}},
	}
}

var (
	nmapOnce sync.Once
	nmapDB   *DB
)

// mergedNmap is our rules followed by nmap's, when nmap is installed.
func mergedNmap(tb testing.TB) *DB {
	nmapOnce.Do(func() {
		f, err := os.Open(nmapProbes)
		if err != nil {
			return
		}
		defer f.Close()
		imported, _, err := ImportNmap(f, "nmap-service-probes")
		if err != nil {
			tb.Fatal(err)
		}
		nmapDB, err = Default().Merge(imported)
		if err != nil {
			tb.Fatal(err)
		}
	})
	return nmapDB
}

// BenchmarkIdentify compares Identify (protocol/field index plus literal
// prefilter) with the index alone (every regexp of the protocol runs) and
// with no index at all (every rule's regexp runs), on the built-in rules
// and on the built-in rules merged with nmap's. regexps/op is how many
// regular expressions ran per service (for the prefilter, an upper bound:
// the candidates).
func BenchmarkIdentify(b *testing.B) {
	services := benchServices()
	dbs := []struct {
		name string
		db   *DB
	}{{"builtin", Default()}}
	if m := mergedNmap(b); m != nil {
		dbs = append(dbs, struct {
			name string
			db   *DB
		}{"builtin+nmap", m})
	}
	for _, d := range dbs {
		b.Run(d.name+"/prefilter", func(b *testing.B) {
			runs := 0
			for _, s := range services {
				runs += d.db.candidates(s.protocol, s.fields)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := services[i%len(services)]
				d.db.Identify(s.protocol, s.fields)
			}
			b.ReportMetric(float64(runs)/float64(len(services)), "regexps/op")
		})
		for _, mode := range []struct {
			name string
			mode scanMode
		}{{"index-only", modeIndexOnly}, {"all-rules", modeAllRules}} {
			b.Run(d.name+"/"+mode.name, func(b *testing.B) {
				if d.name != "builtin" && mode.mode == modeAllRules && testing.Short() {
					b.Skip("slow")
				}
				runs := 0
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					s := services[i%len(services)]
					_, _, n := d.db.identifySlow(s.protocol, s.fields, mode.mode)
					runs += n
				}
				b.ReportMetric(float64(runs)/float64(b.N), "regexps/op")
			})
		}
	}
}

// TestIdentifyAllocs: a service no rule matches costs no allocation; a
// match costs only its result.
func TestIdentifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	db := Default()
	miss := map[string]string{"banner": "SSH-2.0-SomethingElse", "server": "x"}
	if n := testing.AllocsPerRun(100, func() { db.Identify("ssh", miss) }); n != 0 {
		t.Errorf("no match: %v allocations, want 0", n)
	}
	hit := map[string]string{"banner": "SSH-2.0-OpenSSH_9.7"}
	n := testing.AllocsPerRun(100, func() { db.Identify("ssh", hit) })
	t.Logf("match: %v allocations", n)
	if n > 8 {
		t.Errorf("match: %v allocations", n)
	}
}

func ExampleIdentify() {
	m, ok := Identify("ssh", map[string]string{"banner": "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"})
	fmt.Println(ok, m.Product, m.Version, m.OS)
	fmt.Println(m.CPE[0])
	// Output:
	// true OpenSSH 9.2p1 Debian GNU/Linux 12
	// cpe:2.3:a:openbsd:openssh:9.2:p1:*:*:*:*:*:*
}
