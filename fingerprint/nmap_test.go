package fingerprint

import (
	"os"
	"strings"
	"testing"
)

const nmapProbes = "/usr/share/nmap/nmap-service-probes"

func importFile(t *testing.T, name string, imp func(f *os.File) (*DB, Report, error)) (*DB, Report) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	db, rep, err := imp(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", rep)
	return db, rep
}

func TestImportNmap(t *testing.T) {
	db, rep := importFile(t, "testdata/nmap/probes.txt", func(f *os.File) (*DB, Report, error) {
		return ImportNmap(f, "probes")
	})
	if rep.Total != 17 || rep.Imported != 10 {
		t.Errorf("total %d imported %d, want 17 and 10", rep.Total, rep.Imported)
	}
	for reason, n := range map[string]int{
		"lookahead": 1, "lookbehind": 1, "backreference": 1, "unsupported template helper": 1,
		"no product (service only)": 1, "softmatch (service only, no product)": 1,
		"go regexp: invalid repeat count": 1,
	} {
		if rep.Skipped[reason] != n {
			t.Errorf("skipped[%s] = %d, want %d", reason, rep.Skipped[reason], n)
		}
	}
	if len(rep.Examples["lookahead"]) != 1 || !strings.HasPrefix(rep.Examples["lookahead"][0], "line 20: ") {
		t.Errorf("examples %q", rep.Examples["lookahead"])
	}
	for _, tc := range []struct {
		protocol string
		banner   string
		id       string
		m        Match
	}{
		{"ssh", "SSH-2.0-ExampleSSH_1.2.3\r\n", "probes:9", Match{Product: "ExampleSSH", Version: "1.2.3", Info: "protocol 2.0",
			CPE: []string{"cpe:2.3:a:example:examplessh:1.2.3:*:*:*:*:*:*:*"}}},
		{"ftp", "220 Example FTPd 4.5 ready\r\n", "probes:10", Match{Product: "Example ftpd", Version: "4.5", OS: "Linux",
			CPE: []string{"cpe:2.3:o:linux:linux_kernel:*:*:*:*:*:*:*:*"}}},
		{"telnet", "\xff\xfb\x01\xff\xfb\x03Welcome to Widget OS v2.1\r\n", "probes:11", Match{Product: "Widget telnetd", Version: "2.1", Device: "router",
			Extra: map[string]string{"hostname": "widget"}}},
		{"smtp", "220 mx.example.org EXAMPLE mta 3_1_4 ready", "probes:12", Match{Product: "Example MTA", Version: "3.1.4",
			Extra: map[string]string{"hostname": "mx.example.org"}}},
		{"pop3", "+OK Example POP3 v\x01ersion\x7f 9 ready", "probes:13", Match{Product: "Example pop3d", Info: "version 9"}},
		{"unknown", "WIDGET 42\x00", "probes:15", Match{Product: "Widget server", Version: "42",
			Extra: map[string]string{"service": "widget"}}},
		{"unknown", "\x16\x03\x01\x00\x10\x02 Widget", "probes:16", Match{Product: "Widget TLS server",
			Extra: map[string]string{"service": "widget", "tunnel": "ssl"}}},
		{"http", "HTTP/1.1 200 OK\r\nDate: today\r\nServer: ExampleHTTPd/1.0\r\n\r\n", "probes:17", Match{Product: "ExampleHTTPd", Version: "1.0",
			CPE: []string{"cpe:2.3:a:example:examplehttpd:1.0:*:*:*:*:*:*:*"}}},
		{"mysql", "\x4a\x00\x00\x00\n8.0.1-x\x00rest", "probes:18", Match{Product: "Example SQL", Version: "8.0.1-x"}},
		{"unknown", "\x01\x022.0\n", "probes:27", Match{Product: "Widget UDP", Version: "2.0", Extra: map[string]string{"service": "widget"}}},
	} {
		m, ok := db.Identify(tc.protocol, map[string]string{"banner": tc.banner})
		if !ok || m.RuleID != tc.id {
			t.Errorf("%q: got %q %v, want %s", tc.banner, m.RuleID, ok, tc.id)
			continue
		}
		if m.Product != tc.m.Product || m.Version != tc.m.Version || m.Info != tc.m.Info || m.OS != tc.m.OS ||
			m.Device != tc.m.Device || strings.Join(m.CPE, " ") != strings.Join(tc.m.CPE, " ") || len(m.Extra) != len(tc.m.Extra) {
			t.Errorf("%q: got %+v, want %+v", tc.banner, m, tc.m)
		}
		for k, v := range tc.m.Extra {
			if m.Extra[k] != v {
				t.Errorf("%q: extra %s = %q, want %q", tc.banner, k, m.Extra[k], v)
			}
		}
	}
	// Header lines stop at the blank line.
	if m, ok := db.Identify("http", map[string]string{"banner": "HTTP/1.1 200 OK\r\n\r\nServer: ExampleHTTPd/1.0\r\n"}); ok {
		t.Errorf("matched past the header: %+v", m)
	}
}

// TestImportNmapReal imports the nmap database installed on this machine,
// if any, logs the report, and checks that the result is usable behind
// our rules.
func TestImportNmapReal(t *testing.T) {
	if _, err := os.Stat(nmapProbes); err != nil {
		t.Skipf("%s not present (install nmap to run this test): %v", nmapProbes, err)
	}
	imported, rep := importFile(t, nmapProbes, func(f *os.File) (*DB, Report, error) {
		return ImportNmap(f, "nmap-service-probes")
	})
	if rep.Total < 10000 || float64(rep.Imported) < 0.9*float64(rep.Total) {
		t.Errorf("imported %d of %d", rep.Imported, rep.Total)
	}
	t.Logf("imported: %s", imported)
	db, err := Default().Merge(imported)
	if err != nil {
		t.Fatal(err)
	}
	// Our rules answer first; nmap's fill in what ours do not know.
	m, ok := db.Identify("ssh", map[string]string{"banner": "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n"})
	if !ok || !strings.HasPrefix(m.RuleID, "ssh.") {
		t.Errorf("ours first: %+v", m)
	}
	m, ok = db.Identify("ftp", map[string]string{"banner": "220 (vsFTPd 3.0.3)\r\n"})
	if !ok || m.RuleID != "ftp.vsftpd" {
		t.Errorf("vsftpd: %+v", m)
	}
	var fromNmap int
	for _, tc := range []struct{ protocol, banner string }{
		{"ssh", "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n"},
		{"ftp", "220 (vsFTPd 3.0.3)\r\n"},
		{"smtp", "220 mail.example.com ESMTP Postfix (Ubuntu)\r\n"},
		{"http", "HTTP/1.1 200 OK\r\nDate: Mon, 04 Dec 2023 10:00:00 GMT\r\nServer: Apache/2.4.41 (Ubuntu)\r\nContent-Type: text/html\r\n\r\n"},
	} {
		m, ok := imported.Identify(tc.protocol, map[string]string{"banner": tc.banner})
		t.Logf("nmap alone: %s %q -> %v %s %q %q", tc.protocol, tc.banner, ok, m.RuleID, m.Product, m.Version)
		if ok {
			fromNmap++
		}
	}
	if fromNmap < 3 {
		t.Errorf("nmap's rules identified only %d of 4 common banners", fromNmap)
	}
}
