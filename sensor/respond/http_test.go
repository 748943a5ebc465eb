package respond

import (
	"bufio"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestHTTPCurl(t *testing.T) {
	need(t, "curl")
	addr, ch := listen(t, 80, Limits{})
	out, err := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
		"-A", "vantage-test/1.0", "-H", "Host: victim.example", "http://"+addr+"/wp-login.php?x=1").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
	if !strings.HasPrefix(string(out), "404 ") {
		t.Errorf("curl got %s", out)
	}
	s := wait(t, ch, 5*time.Second)
	if s.ev.HTTPMethod != "GET" || s.ev.HTTPPath != "/wp-login.php?x=1" ||
		s.ev.UserAgent != "vantage-test/1.0" || s.ev.SNI != "victim.example" || s.info.Protocol != "http" {
		t.Errorf("event %+v", s.ev)
	}
	if !strings.HasPrefix(string(s.ev.Payload), "GET /wp-login.php?x=1 HTTP/1.1\r\n") {
		t.Errorf("payload %q", s.ev.Payload)
	}

	// POST with a body, and the 200 page.
	out, err = exec.Command("curl", "-s", "-i", "-d", "user=admin&pass=admin", "http://"+addr+"/").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "HTTP/1.1 200 OK") || !strings.Contains(string(out), "Server: nginx") {
		t.Fatalf("curl: %v %s", err, out)
	}
	s = wait(t, ch, 5*time.Second)
	if s.ev.HTTPMethod != "POST" || !strings.Contains(string(s.ev.Payload), "user=admin&pass=admin") {
		t.Errorf("event %+v %q", s.ev, s.ev.Payload)
	}
}

// TestHTTPPipelined sends several requests in one write; each gets its
// answer, in order, and the connection ends at MaxRounds.
func TestHTTPPipelined(t *testing.T) {
	addr, ch := listen(t, 8080, Limits{MaxRounds: 3})
	c := dial(t, addr)
	req := "GET / HTTP/1.1\r\nHost: a\r\n\r\n" +
		"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n" +
		"GET /z HTTP/1.1\r\nHost: a\r\n\r\n"
	c.Write([]byte(req))
	br := bufio.NewReader(c)
	for i, want := range []int{200, 404, 404} {
		resp, err := http.ReadResponse(br, &http.Request{Method: []string{"GET", "HEAD", "POST"}[i]})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("response %d: %d, want %d", i, resp.StatusCode, want)
		}
		if i == 2 && !resp.Close {
			t.Error("last round should close")
		}
	}
	s := wait(t, ch, 5*time.Second)
	if s.ev.HTTPPath != "/" || s.info.Facts["http.request.2"] != "POST /y" || s.info.Facts["http.request.3"] != "" {
		t.Errorf("%+v %v", s.ev, s.info.Facts)
	}
}

func TestHTTPBadRequest(t *testing.T) {
	addr, ch := listen(t, 80, Limits{})
	c := dial(t, addr)
	c.Write([]byte("GET /a b c HTTP/1.1\r\n\r\n"))
	got := readUntil(t, c, "\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Errorf("got %q", got)
	}
	wait(t, ch, 5*time.Second)
}
