package cli

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestInfoURL(t *testing.T) {
	src := netip.MustParseAddr("192.0.2.10")
	for _, c := range []struct {
		listen string
		want   string
	}{
		{"0.0.0.0:80", "http://192.0.2.10/"},
		{"0.0.0.0:8080", "http://192.0.2.10:8080/"},
		{"192.0.2.99:80", "http://192.0.2.99/"},
		{"[::]:8080", "http://192.0.2.10:8080/"},
		{"[2001:db8::1]:80", "http://[2001:db8::1]/"},
	} {
		if got := infoURL(netip.MustParseAddrPort(c.listen), src); got != c.want {
			t.Errorf("infoURL(%s) = %s, want %s", c.listen, got, c.want)
		}
	}
	if got := infoURL(netip.MustParseAddrPort("0.0.0.0:80"), netip.Addr{}); got != "http://localhost/" {
		t.Errorf("no source: %s", got)
	}
}

// The page says who scans, why, identification only, and how to opt out.
func TestInfoPage(t *testing.T) {
	version := uint64(4)
	p, err := startInfoPage("127.0.0.1:0", "", infoData{
		Source: "192.0.2.10", Contact: "scan-team@example.org", OptOutURL: "https://vantage.example.org/optout",
		Rate: "3000 probes/s", Ports: "80,443", ScanID: "abc123",
	}, func() uint64 { return version })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !strings.HasPrefix(p.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %s", p.URL)
	}
	resp, err := http.Get(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	page := string(body)
	for _, want := range []string{"Vantage scanner", "192.0.2.10", "scan-team@example.org", `href="https://vantage.example.org/optout"`,
		"never logs in", "never sends exploits", "3000 probes/s", "ports 80,443", "version 4", "abc123"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	resp, err = http.Get(p.URL + "nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("another path: %s", resp.Status)
	}
	// escaped: a contact cannot inject markup
	q, err := startInfoPage("127.0.0.1:0", "", infoData{Contact: "<script>x</script>"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	resp, err = http.Get(q.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "<script>x") {
		t.Error("the contact is not escaped")
	}
}

// vantage scan --info-page on loopback: the page is served during the
// scan, and the HTTP grabber's User-Agent names it (and still Vantage).
func TestScanInfoPageUserAgent(t *testing.T) {
	var mu sync.Mutex
	var agents []string
	var page string
	var infoAddr string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.UserAgent())
		ua := r.UserAgent()
		first := page == ""
		mu.Unlock()
		// follow the User-Agent to the page, as a curious admin would
		if i := strings.Index(ua, "+http://"); i >= 0 && first {
			u := strings.TrimSuffix(ua[i+1:], ")")
			if resp, err := http.Get(u); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				page, infoAddr = string(b), u
				mu.Unlock()
			}
		}
		w.Header().Set("Server", "test")
		w.Write([]byte("<title>t</title>hello"))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	code, stdout, stderr := runCLI(t, "", "scan", "--connect", "-p", strconv.Itoa(port), "--allow-reserved", "127.0.0.0/8", "-c", "0s",
		"--grab", "--grab-protocol", "http", "--info-page", "127.0.0.1:0", "--info-contact", "ops@example.org", "127.0.0.1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `"http"`) {
		t.Errorf("no HTTP service grabbed: %s", stdout)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(agents) == 0 {
		t.Fatalf("the grabber never asked: %s", stderr)
	}
	ua := agents[0]
	t.Logf("User-Agent: %s; page at %s", ua, infoAddr)
	if !strings.Contains(ua, "Vantage/") || !strings.Contains(ua, "+http://127.0.0.1:") {
		t.Errorf("User-Agent %q does not name Vantage and the info page", ua)
	}
	if !strings.Contains(page, "ops@example.org") || !strings.Contains(page, "How to opt out") {
		t.Errorf("the page behind the User-Agent: %q", page)
	}
}
