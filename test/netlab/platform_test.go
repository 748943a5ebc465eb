package netlab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/lab"
	"github.com/vantagehq/vantage/internal/testbin"
	"github.com/vantagehq/vantage/store"
)

// geoArgs point the server at the lab's overrides (its addresses have no
// country anywhere) and at the pinned geo databases when they are present.
func geoArgs() []string {
	args := []string{"--overrides", filepath.Join("..", "..", "enrich", "testdata", "netlab.overrides")}
	if d := os.Getenv("VANTAGE_GEODATA"); d != "" {
		args = append(args, "--geo-dir", filepath.Join(d, "geo"))
	}
	return args
}

// The end-to-end proof: the scanner scans the farm into a running
// server, and search returns exactly what netlab's truth lists, with the
// right facet counts. The server runs in the scanner's namespace, so the
// scanner reaches it on loopback.
func TestScanIntoServerAndSearch(t *testing.T) {
	needLab(t)
	srv := testbin.StartServer(t, testbin.ServerOptions{Namespace: lab.NSScan, Args: geoArgs()})
	r := scan(t, nil, append([]string{"-q", "-p", "22,80,443", "-r", "0", "--server", srv.URL, "--key", srv.Key}, farmArgs...)...)
	if r.code != 0 {
		t.Fatalf("scan: exit %d: %s", r.code, r.stderr)
	}
	ctx := context.Background()
	truth := map[int]map[netip.Addr]bool{}
	for _, p := range []int{22, 80, 443} {
		set, err := theLab.Truth(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		truth[p] = set
	}
	// the API is reached from inside the namespace as well
	api := func(args ...string) string {
		out, err := lab.Command(ctx, lab.NSScan, binary, append(args, "--server", srv.URL)...).CombinedOutput()
		if err != nil {
			t.Fatalf("vantage %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	count := func(q, facets string) (int64, map[string][]store.FacetValue, error) {
		out, err := lab.Command(ctx, lab.NSScan, binary, "count", q, "--facets", facets, "--json", "--server", srv.URL).Output()
		if err != nil {
			return 0, nil, fmt.Errorf("count %q: %w", q, err)
		}
		var r struct {
			Total  int64                         `json:"total"`
			Facets map[string][]store.FacetValue `json:"facets"`
		}
		return r.Total, r.Facets, json.Unmarshal(out, &r)
	}
	want := len(truth[22]) + len(truth[80]) + len(truth[443])
	if err := testbin.Wait(ctx, time.Minute, func() (bool, error) {
		n, _, err := count("", "")
		return n == int64(want), err
	}); err != nil {
		t.Fatalf("the store never held the %d services: %v\n%s", want, err, srv.Log())
	}
	for _, p := range []int{22, 80, 443} {
		q := fmt.Sprintf("port:%d", p)
		found := map[netip.Addr]int{}
		for _, line := range splitLines(api("search", q, "--format", "jsonl")) {
			found[jsonIP(t, line)]++
		}
		missing, extra, dups := 0, 0, 0
		for a := range truth[p] {
			if found[a] == 0 {
				missing++
			}
		}
		for a, n := range found {
			if !truth[p][a] {
				extra++
			}
			if n > 1 {
				dups++
			}
		}
		t.Logf("search %s: %d results, truth %d, missing %d, extra %d, duplicates %d", q, len(found), len(truth[p]), missing, extra, dups)
		if missing+extra+dups != 0 {
			t.Errorf("search %s differs from netlab truth", q)
		}
		// facets: the overrides split the farm into XA (198.18/16) and XB (198.19/16)
		total, facets, err := count(q, "country,port")
		if err != nil {
			t.Fatal(err)
		}
		xa := 0
		for a := range truth[p] {
			if netip.MustParsePrefix("198.18.0.0/16").Contains(a) {
				xa++
			}
		}
		got := map[string]int64{}
		for _, v := range facets["country"] {
			got[v.Value] = v.Count
		}
		if total != int64(len(truth[p])) || got["XA"] != int64(xa) || got["XB"] != int64(len(truth[p])-xa) {
			t.Errorf("count %s = %d, facets %v; want %d, XA %d, XB %d", q, total, got, len(truth[p]), xa, len(truth[p])-xa)
		}
		if len(facets["port"]) != 1 || facets["port"][0].Value != fmt.Sprint(p) {
			t.Errorf("port facet of %s: %v", q, facets["port"])
		}
	}
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func jsonIP(t *testing.T, line string) netip.Addr {
	var v struct {
		IP netip.Addr `json:"ip"`
	}
	if err := json.Unmarshal([]byte(line), &v); err != nil {
		t.Fatalf("bad JSON line %q: %v", line, err)
	}
	return v.IP
}

// With the grabber: the farm scanned with --grab into a server, and
// search 'port:80 http.server:nginx*' returns exactly the hosts netlab
// says serve nginx.
func TestScanGrabIntoServerSearchNginx(t *testing.T) {
	needLab(t)
	srv := testbin.StartServer(t, testbin.ServerOptions{Namespace: lab.NSScan, Args: geoArgs()})
	r := scan(t, nil, append([]string{"-q", "-p", "80", "-r", "0", "--grab", "--grab-concurrency", "512", "--server", srv.URL, "--key", srv.Key}, farmArgs...)...)
	if r.code != 0 {
		t.Fatalf("scan --grab: exit %d: %s", r.code, r.stderr)
	}
	ctx := context.Background()
	out, err := exec.CommandContext(ctx, theLab.Script, "truth", "80", "--banner").Output()
	if err != nil {
		t.Fatalf("netlab truth 80 --banner: %v", err)
	}
	nginx := map[netip.Addr]bool{}
	all := 0
	for _, line := range splitLines(string(out)) {
		addr, banner, _ := strings.Cut(line, "\t")
		all++
		if strings.HasPrefix(strings.ToLower(banner), "nginx") {
			nginx[netip.MustParseAddr(addr)] = true
		}
	}
	if len(nginx) == 0 || len(nginx) == all {
		t.Fatalf("the farm's truth has %d nginx hosts of %d: the test would prove nothing", len(nginx), all)
	}
	search := func(q string) map[netip.Addr]int {
		out, err := lab.Command(ctx, lab.NSScan, binary, "search", q, "--format", "jsonl", "--server", srv.URL).Output()
		if err != nil {
			t.Fatalf("search %q: %v", q, err)
		}
		found := map[netip.Addr]int{}
		for _, line := range splitLines(string(out)) {
			found[jsonIP(t, line)]++
		}
		return found
	}
	if err := testbin.Wait(ctx, time.Minute, func() (bool, error) {
		return len(search("port:80 _exists_:http.server")) == all, nil
	}); err != nil {
		t.Fatalf("the store never held the %d grabbed services: %v\n%s", all, err, srv.Log())
	}
	found := search("port:80 http.server:nginx*")
	missing, extra := 0, 0
	for a := range nginx {
		if found[a] != 1 {
			missing++
		}
	}
	for a := range found {
		if !nginx[a] {
			extra++
		}
	}
	t.Logf("search port:80 http.server:nginx*: %d results, truth %d nginx hosts of %d, missing %d, extra %d", len(found), len(nginx), all, missing, extra)
	if missing+extra != 0 {
		t.Errorf("search differs from netlab truth")
	}
}
