package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/triage"
)

// TestTriage: a log of every format with two malformed lines, against the
// fixture's sensors: the source no sensor saw comes first, then the
// malicious ones, the one a single sensor saw at a single address (rare),
// and the benign scanner last with its page.
func TestTriage(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	post := func(h http.Handler, body string, header map[string]string) response {
		return do(h, req{method: "POST", path: "/api/v1/triage", body: []byte(body), header: header})
	}
	log := strings.Join([]string{
		`45.33.32.156 - - [27/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 612 "-" "Mozilla/5.0"`,
		`192.0.2.200 - - [27/Nov/2026:10:00:02 +0000] "GET /admin HTTP/1.1" 404 153 "-" "curl/8.0"`,
		`192.0.2.200 - - [27/Nov/2026:10:00:03 +0000] "GET /admin2 HTTP/1.1" 404 153 "-" "curl/8.0"`,
		`Nov 27 10:01:00 gw kernel: IN=eth0 SRC=203.0.113.99 DST=198.18.0.1 PROTO=TCP SPT=1 DPT=23 SYN`,
		`Nov 27 10:02:00 host sshd[1]: Failed password for root from 185.220.101.1 port 1 ssh2`,
		`this line names no address`,
		`198.51.100.10,first,note`,
		`\x00\x01 binary junk`,
		``,
		`# a comment`,
	}, "\n")

	r := post(s, log, nil)
	if r.code != 200 {
		t.Fatal(r)
	}
	var rep triage.Report
	r.json(t, &rep)
	var got []string
	for _, row := range rep.Sources {
		got = append(got, row.Addr.String()+" "+row.Verdict)
	}
	want := "192.0.2.200 not seen, 203.0.113.99 malicious, 185.220.101.1 malicious, 198.51.100.10 rare, 45.33.32.156 benign"
	if g := strings.Join(got, ", "); g != want {
		t.Errorf("sources:\n got %s\nwant %s", g, want)
	}
	if rep.Lines != 10 || rep.Malformed != 2 || len(rep.MalformedExamples) != 2 || rep.MalformedExamples[0].Line != 6 ||
		rep.Formats["http"] != 3 || rep.Formats["firewall"] != 1 || rep.Formats["ssh"] != 1 || rep.Formats["list"] != 1 {
		t.Errorf("stats: %d lines, %d malformed %+v, formats %v", rep.Lines, rep.Malformed, rep.MalformedExamples, rep.Formats)
	}
	if len(rep.Sources) == 5 {
		if s := rep.Sources[0]; s.Hits != 2 || s.FirstLine != 2 || s.LastLine != 3 {
			t.Errorf("first source: %+v", s.Source)
		}
		if s := rep.Sources[2]; !strings.Contains(s.Why, "SSH_BRUTEFORCE") || s.Ports[0] != 22 {
			t.Errorf("brute forcer: %+v", s)
		}
		if s := rep.Sources[4]; s.Actor != "Shodan" || s.OptOut == "" || !strings.Contains(s.Why, "opt out: "+s.OptOut) || s.Sensors != 3 {
			t.Errorf("benign: %+v", s)
		}
	}

	t.Run("empty", func(t *testing.T) {
		r := post(s, "", nil)
		var rep triage.Report
		r.json(t, &rep)
		if r.code != 200 || rep.Lines != 0 || rep.Sources == nil || rep.MalformedExamples == nil {
			t.Errorf("%s", r)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		small := e.server(func(c *api.Config) { c.MaxBody = 256 })
		r := post(small, strings.Repeat("198.51.100.10\n", 100), nil)
		if r.code != http.StatusRequestEntityTooLarge {
			t.Fatal(r)
		}
		errContains("larger than 256 bytes")(t, r)
		if r := post(small, "198.51.100.10\n", nil); r.code != 200 {
			t.Errorf("a small log on the small server: %s", r)
		}
	})
	t.Run("too many sources", func(t *testing.T) {
		var b strings.Builder
		for i := range 100001 {
			fmt.Fprintf(&b, "10.%d.%d.%d\n", i>>16, i>>8&255, i&255)
		}
		r := post(s, b.String(), nil)
		if r.code != 400 {
			t.Fatal(r)
		}
		errContains("more than 100000 distinct addresses")(t, r)
	})
	t.Run("scope", func(t *testing.T) {
		closed := e.server(func(c *api.Config) { c.Anonymous = false })
		if r := post(closed, log, nil); r.code != http.StatusUnauthorized {
			t.Errorf("anonymous: %s", r)
		}
		if r := post(closed, log, bearer(e.scan)); r.code != http.StatusForbidden {
			t.Errorf("scan key: %s", r)
		}
		if r := post(closed, log, bearer(e.read)); r.code != 200 {
			t.Errorf("read key: %s", r)
		}
	})
	t.Run("get is not allowed", func(t *testing.T) {
		if r := get(s, "/api/v1/triage"); r.code/100 != 4 {
			t.Errorf("%s", r)
		}
	})
}
