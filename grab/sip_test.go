package grab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// sipParseRequest checks an OPTIONS request as a UAS does (RFC 3261 8.2,
// with the mandatory header fields of 8.1.1) and returns its headers.
func sipParseRequest(b []byte) (map[string]string, error) {
	head, _, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return nil, errors.New("no end of head")
	}
	lines := strings.Split(string(head), "\r\n")
	f := strings.Fields(lines[0])
	if len(f) != 3 || f[0] != "OPTIONS" || !strings.HasPrefix(f[1], "sip:") || f[2] != "SIP/2.0" {
		return nil, fmt.Errorf("request line %q", lines[0])
	}
	h := map[string]string{}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return nil, fmt.Errorf("header line %q", l)
		}
		h[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	for _, k := range []string{"via", "max-forwards", "to", "from", "call-id", "cseq", "contact", "content-length", "user-agent"} {
		if h[k] == "" {
			return nil, fmt.Errorf("no %s header", k)
		}
	}
	if !strings.Contains(h["via"], ";branch=z9hG4bK") || !strings.Contains(h["from"], ";tag=") {
		return nil, errors.New("via branch or from tag missing")
	}
	if !strings.HasSuffix(h["cseq"], " OPTIONS") || h["content-length"] != "0" {
		return nil, errors.New("cseq or content-length")
	}
	if !strings.Contains(h["user-agent"], "Vantage") {
		return nil, errors.New("user agent does not name Vantage")
	}
	return h, nil
}

// sipAnswer builds a response to the request headers h as 8.2.6.2
// prescribes (Via, From, Call-ID, CSeq copied, To tagged), plus extra
// header lines.
func sipAnswer(h map[string]string, status string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %s\r\n", status)
	fmt.Fprintf(&b, "Via: %s;received=127.0.0.1\r\n", h["via"])
	fmt.Fprintf(&b, "From: %s\r\n", h["from"])
	fmt.Fprintf(&b, "To: %s;tag=as1f2e3d4c\r\n", h["to"])
	fmt.Fprintf(&b, "Call-ID: %s\r\n", h["call-id"])
	fmt.Fprintf(&b, "CSeq: %s\r\n", h["cseq"])
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

var (
	sipAsterisk = []string{
		"Server: Asterisk PBX 20.5.0",
		"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE",
		"Supported: replaces, timer",
		"Accept: application/sdp",
	}
	sipFreeSWITCH = []string{
		"User-Agent: FreeSWITCH-mod_sofia/1.10.10-release~64bit",
		"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY",
		"k: timer, path, replaces", // compact form of Supported
	}
)

// sipUDPFake answers OPTIONS datagrams; datagrams that are no valid
// request are ignored, as a SIP UDP server does.
func sipUDPFake(t *testing.T, answer func(h map[string]string) []string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			h, err := sipParseRequest(buf[:n])
			if err != nil {
				continue
			}
			if !strings.HasPrefix(h["via"], "SIP/2.0/UDP ") {
				continue
			}
			for _, d := range answer(h) {
				pc.WriteTo([]byte(d), from)
			}
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// sipTCPRequest reads one request head from c; nil when it is no SIP.
func sipTCPRequest(c net.Conn) map[string]string {
	br := bufio.NewReader(io.LimitReader(c, 8192))
	// a SIP parser drops the connection at the first bytes that cannot
	// start a request line (another protocol's binary probe)
	start, err := br.Peek(8)
	if err != nil {
		return nil
	}
	for _, x := range start {
		if x < 0x20 || x > 0x7e {
			return nil
		}
	}
	var b []byte
	for !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return nil
		}
		b = append(b, line...)
	}
	h, err := sipParseRequest(b)
	if err != nil || !strings.HasPrefix(h["via"], "SIP/2.0/TCP ") {
		return nil
	}
	return h
}

func TestSIP(t *testing.T) {
	tests := []struct {
		name   string
		udp    func(h map[string]string) []string
		tcp    func(c net.Conn)
		blind  bool
		want   map[string]string
		server string
	}{
		{
			name: "asterisk over udp",
			udp:  func(h map[string]string) []string { return []string{sipAnswer(h, "200 OK", sipAsterisk...)} },
			want: map[string]string{
				"sip.status": "200 OK", "sip.server": "Asterisk PBX 20.5.0",
				"sip.allow": "INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE",
			},
			server: "Asterisk PBX 20.5.0",
		},
		{
			name: "provisional then final over udp, found blind",
			udp: func(h map[string]string) []string {
				return []string{sipAnswer(h, "100 Trying"), sipAnswer(h, "200 OK", sipFreeSWITCH...)}
			},
			blind: true,
			want: map[string]string{
				"sip.status": "200 OK", "sip.user_agent": "FreeSWITCH-mod_sofia/1.10.10-release~64bit",
				"sip.supported": "timer, path, replaces",
			},
			server: "FreeSWITCH-mod_sofia/1.10.10-release~64bit",
		},
		{
			name: "kamailio refusing over udp",
			udp: func(h map[string]string) []string {
				return []string{sipAnswer(h, "403 Forbidden", "Server: kamailio (5.6.3 (x86_64/linux))")}
			},
			want:   map[string]string{"sip.status": "403 Forbidden"},
			server: "kamailio (5.6.3 (x86_64/linux))",
		},
		{
			name: "asterisk over tcp, folded header",
			tcp: func(c net.Conn) {
				h := sipTCPRequest(c)
				if h == nil {
					return
				}
				io.WriteString(c, sipAnswer(h, "200 OK", "Server: Asterisk PBX", " 18.20.0", "Allow: INVITE, OPTIONS"))
				io.Copy(io.Discard, c)
			},
			want:   map[string]string{"sip.status": "200 OK", "sip.server": "Asterisk PBX 18.20.0", "sip.allow": "INVITE, OPTIONS"},
			server: "Asterisk PBX 18.20.0",
		},
		{
			name: "provisional with body then final over tcp, found blind",
			tcp: func(c net.Conn) {
				h := sipTCPRequest(c)
				if h == nil {
					return
				}
				p := strings.Replace(sipAnswer(h, "100 Trying"), "Content-Length: 0", "Content-Length: 5", 1) + "hello"
				io.WriteString(c, p+sipAnswer(h, "200 OK", "Server: OpenSIPS (3.4.2 (x86_64/linux))"))
				io.Copy(io.Discard, c)
			},
			blind:  true,
			want:   map[string]string{"sip.status": "200 OK"},
			server: "OpenSIPS (3.4.2 (x86_64/linux))",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var target Target
			if tt.udp != nil {
				target = Target{Addr: sipUDPFake(t, tt.udp), Transport: "udp", Protocol: "sip"}
			} else {
				target = Target{Addr: fakeServer(t, tt.tcp), Protocol: "sip"}
			}
			if tt.blind {
				target.Protocol = ""
			}
			svc, res, err := grabC2(t, target, Config{Timeout: time.Second})
			if err != nil {
				t.Fatalf("grab: %v", err)
			}
			if svc.Protocol != "sip" {
				t.Fatalf("protocol %q, want sip", svc.Protocol)
			}
			for k, v := range tt.want {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q", k, svc.Data[k], v)
				}
			}
			if res.Match["server"] != tt.server {
				t.Errorf("Match[server] = %q, want %q", res.Match["server"], tt.server)
			}
			if !bytes.HasPrefix(svc.Banner, []byte("SIP/2.0 ")) || !bytes.HasSuffix(svc.Banner, []byte("\r\n\r\n")) {
				t.Errorf("banner %q is not a response head", svc.Banner)
			}
		})
	}
}

func TestSIPHostile(t *testing.T) {
	tests := []struct {
		name string
		udp  func(h map[string]string) []string
		tcp  func(c net.Conn)
	}{
		{name: "udp silence", udp: func(map[string]string) []string { return nil }},
		{name: "udp not sip", udp: func(map[string]string) []string { return []string{"HTTP/1.1 400 Bad Request\r\n\r\n"} }},
		{name: "udp huge datagram", udp: func(map[string]string) []string { return []string{strings.Repeat("A", 60000)} }},
		{name: "tcp endless header", tcp: func(c net.Conn) {
			if sipTCPRequest(c) == nil {
				return
			}
			io.WriteString(c, "SIP/2.0 200 OK\r\nServer: ")
			junk := bytes.Repeat([]byte("x"), 4096)
			for {
				if _, err := c.Write(junk); err != nil {
					return
				}
			}
		}},
		{name: "tcp huge provisional body", tcp: func(c net.Conn) {
			if sipTCPRequest(c) == nil {
				return
			}
			io.WriteString(c, "SIP/2.0 100 Trying\r\nContent-Length: 4294967296\r\n\r\n")
			io.Copy(io.Discard, c)
		}},
		{name: "tcp slow drip", tcp: func(c net.Conn) {
			if sipTCPRequest(c) == nil {
				return
			}
			for _, b := range []byte("SIP/2.0 200 OK\r\nServer: drip\r\n\r\n") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}},
		{name: "tcp http server", tcp: func(c net.Conn) {
			c.Read(make([]byte, 1024))
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := Target{Protocol: "sip"}
			if tt.udp != nil {
				target.Addr, target.Transport = sipUDPFake(t, tt.udp), "udp"
			} else {
				target.Addr = fakeServer(t, tt.tcp)
			}
			start := time.Now()
			svc, _, err := grabC2(t, target, Config{Timeout: time.Second})
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			if svc.Protocol == "sip" {
				t.Errorf("recognised sip: %v", svc.Data)
			}
			if tt.name == "udp silence" && err == nil {
				t.Errorf("silence gave no error")
			}
		})
	}
}

func TestParseSIPResponse(t *testing.T) {
	in := "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\ni: abc\r\nServer: A\r\n  B\r\nAllow: INVITE\r\n\r\nv=0\r\n"
	r, err := parseSIPResponse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != 200 || r.Reason != "OK" || r.Get("via") == "" || r.Get("Call-ID") != "abc" || r.Get("server") != "A B" {
		t.Errorf("got %+v", r)
	}
	if r.HeadLen != strings.Index(in, "v=0") {
		t.Errorf("head length %d", r.HeadLen)
	}
	for _, bad := range []string{"HTTP/1.1 200 OK\r\n\r\n", "SIP/2.0 2000 OK\r\n", "SIP/2.0 abc\r\n", "SIP/2.0 099 x\r\n", ""} {
		if _, err := parseSIPResponse([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestSIPRequestIPv6(t *testing.T) {
	req := string(sipRequest("udp", "Vantage/1.0", netip.MustParseAddrPort("[2001:db8::5]:5080"), netip.MustParseAddrPort("[2001:db8::1]:40000")))
	for _, want := range []string{"OPTIONS sip:nm@[2001:db8::5]:5080 SIP/2.0\r\n", "Via: SIP/2.0/UDP [2001:db8::1]:40000;branch=z9hG4bK", "From: <sip:nm@[2001:db8::1]>;tag="} {
		if !strings.Contains(req, want) {
			t.Errorf("request lacks %q:\n%s", want, req)
		}
	}
	if _, err := sipParseRequest([]byte(req)); err != nil {
		t.Error(err)
	}
}

func FuzzSIPResponse(f *testing.F) {
	f.Add([]byte("SIP/2.0 200 OK\r\nServer: Asterisk PBX 20.5.0\r\nAllow: INVITE, OPTIONS\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("SIP/2.0 100 Trying\r\nl: 0\r\n\r\n"))
	f.Add([]byte("SIP/2.0 403 Forbidden\nUser-Agent: x\n \tfolded\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseSIPResponse(b)
		if err != nil {
			return
		}
		if r.Code < 100 || r.Code > 699 || r.HeadLen > len(b) || len(r.Headers) > sipMaxHeaders {
			t.Fatalf("bad parse %+v of %d bytes", r, len(b))
		}
	})
}
