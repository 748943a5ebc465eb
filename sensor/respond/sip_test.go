package respond

import (
	"strings"
	"testing"
	"time"
)

const sipOptions = "OPTIONS sip:100@198.51.100.130 SIP/2.0\r\n" +
	"Via: SIP/2.0/TCP 203.0.113.5:5060;branch=z9hG4bK-1234;rport\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: \"sipvicious\"<sip:100@1.1.1.1>;tag=6438343264\r\n" +
	"To: \"sipvicious\"<sip:100@1.1.1.1>\r\n" +
	"Call-ID: 897214560915@203.0.113.5\r\n" +
	"CSeq: 1 OPTIONS\r\n" +
	"Contact: <sip:100@203.0.113.5:5060>\r\n" +
	"Accept: application/sdp\r\n" +
	"User-Agent: friendly-scanner\r\n" +
	"Content-Length: 0\r\n\r\n"

func TestSIPTCP(t *testing.T) {
	addr, ch := listen(t, 5060, Limits{})
	c := dial(t, addr)
	c.Write([]byte(sipOptions))
	got := readUntil(t, c, "\r\n\r\n")
	for _, want := range []string{"SIP/2.0 200 OK\r\n", "Via: SIP/2.0/TCP 203.0.113.5:5060;branch=z9hG4bK-1234;rport\r\n",
		"CSeq: 1 OPTIONS\r\n", "Call-ID: 897214560915@203.0.113.5\r\n", "To: \"sipvicious\"<sip:100@1.1.1.1>;tag="} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in %q", want, got)
		}
	}
	// REGISTER: challenged, then refused; the digest username is recorded.
	c.Write([]byte("REGISTER sip:198.51.100.130 SIP/2.0\r\nv: SIP/2.0/TCP x;branch=z9hG4bK-2\r\nf: <sip:200@x>\r\nt: <sip:200@x>\r\ni: abc\r\nCSeq: 1 REGISTER\r\nl: 0\r\n\r\n"))
	got = readUntil(t, c, "\r\n\r\n")
	if !strings.HasPrefix(got, "SIP/2.0 401 Unauthorized") || !strings.Contains(got, "WWW-Authenticate: Digest") {
		t.Errorf("got %q", got)
	}
	c.Write([]byte("REGISTER sip:198.51.100.130 SIP/2.0\r\nVia: SIP/2.0/TCP x;branch=z9hG4bK-3\r\nFrom: <sip:200@x>\r\nTo: <sip:200@x>\r\nCall-ID: abc\r\nCSeq: 2 REGISTER\r\n" +
		"Authorization: Digest username=\"200\", realm=\"sip\", nonce=\"x\", uri=\"sip:x\", response=\"0\"\r\nContent-Length: 0\r\n\r\n"))
	got = readUntil(t, c, "\r\n\r\n")
	if !strings.HasPrefix(got, "SIP/2.0 403") {
		t.Errorf("got %q", got)
	}
	c.Close()
	s := wait(t, ch, 5*time.Second)
	if s.ev.HTTPMethod != "OPTIONS" || s.ev.HTTPPath != "sip:100@198.51.100.130" || s.ev.UserAgent != "friendly-scanner" || s.ev.Username != "200" {
		t.Errorf("%+v", s.ev)
	}
}
