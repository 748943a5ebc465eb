package fingerprint

import (
	"os"
	"strings"
	"testing"
)

func TestImportRecog(t *testing.T) {
	db, rep := importFile(t, "testdata/recog/ssh_banners.xml", func(f *os.File) (*DB, Report, error) {
		return ImportRecog(f, "ssh_banners")
	})
	if rep.Total != 6 || rep.Imported != 3 || rep.Skipped["lookahead"] != 1 || rep.Skipped["no product"] != 1 || rep.Skipped["bad template"] != 1 {
		t.Errorf("report %+v", rep)
	}
	for _, tc := range []struct {
		banner string
		m      Match
	}{
		// Recog matches the text after "SSH-2.0-"; the importer puts it back.
		{"SSH-2.0-ExampleSSH_1.2 beta", Match{RuleID: "ssh_banners:4", Product: "ExampleSSH", Vendor: "Example Inc.", Version: "1.2",
			CPE: []string{"cpe:2.3:a:example:examplessh:1.2:*:*:*:*:*:*:*"}, Extra: map[string]string{"examplessh.comment": "beta"}}},
		{"SSH-2.0-WidgetSSHD-00fF", Match{RuleID: "ssh_banners:13", Product: "Widget sshd", Version: "00fF", OS: "Widget Widget OS",
			Device: "Router", CPE: []string{"cpe:2.3:o:widget:widget_os:-:*:*:*:*:*:*:*"}}},
		{"SSH-2.0-OnlyOS_7", Match{RuleID: "ssh_banners:23", Product: "Acme AcmeOS", OS: "Acme AcmeOS 7"}},
	} {
		m, ok := db.Identify("ssh", map[string]string{"banner": tc.banner})
		if !ok || m.RuleID != tc.m.RuleID || m.Product != tc.m.Product || m.Vendor != tc.m.Vendor || m.Version != tc.m.Version ||
			m.OS != tc.m.OS || m.Device != tc.m.Device || strings.Join(m.CPE, " ") != strings.Join(tc.m.CPE, " ") || len(m.Extra) != len(tc.m.Extra) {
			t.Errorf("%q: got %+v, want %+v", tc.banner, m, tc.m)
		}
		for k, v := range tc.m.Extra {
			if m.Extra[k] != v {
				t.Errorf("%q: extra %s = %q", tc.banner, k, m.Extra[k])
			}
		}
	}

	db, rep = importFile(t, "testdata/recog/http_servers.xml", func(f *os.File) (*DB, Report, error) {
		return ImportRecog(f, "http_servers")
	})
	if rep.Imported != 1 {
		t.Fatalf("report %+v", rep)
	}
	m, ok := db.Identify("http", map[string]string{"server": "examplehttpd/2.0 (Unix)"})
	if !ok || m.Version != "2.0" || m.Extra["service.info"] != "Unix" {
		t.Errorf("http: %+v", m)
	}

	_, rep = importFile(t, "testdata/recog/snmp_sysdescr.xml", func(f *os.File) (*DB, Report, error) {
		return ImportRecog(f, "snmp")
	})
	if rep.Skipped["unmapped matches key"] != 1 || rep.Imported != 0 {
		t.Errorf("report %+v", rep)
	}

	if _, _, err := ImportRecog(strings.NewReader("<fingerprints><fingerprint"), "broken"); err == nil {
		t.Error("broken XML: no error")
	}
}
