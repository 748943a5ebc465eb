package respond

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vantagehq/vantage/record"
)

// fakeConn feeds a responder from a byte slice and counts what it writes.
type fakeConn struct {
	r       *bytes.Reader
	written int
}

func (f *fakeConn) Read(p []byte) (int, error)         { return f.r.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error)        { f.written += len(p); return len(p), nil }
func (f *fakeConn) Close() error                       { return nil }
func (f *fakeConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (f *fakeConn) SetDeadline(t time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(t time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(t time.Time) error { return nil }

var fuzzLimits = Limits{MaxRead: 16 << 10, MaxMessage: 8 << 10, MaxLine: 2 << 10, MaxRounds: 4}

// fuzzServe runs the named responder on data and checks the bounds.
func fuzzServe(t *testing.T, name string, data []byte) record.Event {
	lim := fuzzLimits.withDefaults()
	fc := &fakeConn{r: bytes.NewReader(data)}
	var ev record.Event
	c := newConn(fc, &ev, lim, time.Now().Add(time.Minute))
	Lookup(name).Serve(context.Background(), c, &ev)
	checkEvent(t, &ev, lim)
	if c.cr.n > lim.MaxRead {
		t.Fatalf("read %d bytes", c.cr.n)
	}
	if fc.written > 64<<10 {
		t.Fatalf("wrote %d bytes", fc.written)
	}
	return ev
}

func checkEvent(t *testing.T, ev *record.Event, lim Limits) {
	if len(ev.Payload) > lim.MaxPayload {
		t.Fatalf("payload %d bytes", len(ev.Payload))
	}
	for _, s := range []string{ev.HTTPMethod, ev.HTTPPath, ev.UserAgent, ev.SNI, ev.Username, ev.Password, ev.JA3, ev.HASSH} {
		if !utf8.ValidString(s) || len(s) > 2048 {
			t.Fatalf("bad field %q", s)
		}
	}
}

// seeds is every fuzz target's seed corpus, also written to
// testdata/fuzz by TestWriteFuzzCorpus.
var seeds = map[string][]string{
	"FuzzHTTPRequest": {
		"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\n\r\n",
		"POST /cgi-bin/luci HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET /x HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: y\r\n\r\n",
		"GET /${jndi:ldap://x/a} HTTP/1.1\r\n X-Folded: y\r\n\tmore\r\n\r\n",
		"\r\n\r\nHEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	},
	"FuzzClientHello":  {string(exampleHello(false)), string(exampleHello(true)), "\x16\x03\x01\x00\x05\x01\x00\x00\x01\x03"},
	"FuzzSSHClient":    {"SSH-2.0-Go\r\n" + string(sshServerKexInit()), "SSH-2.0-libssh2_1.9.0\r\n\x00\x00\x00\x0c\x0a\x14", "SSH-1.5-x\n"},
	"FuzzTelnetInput":  {"root\r\nxc3511\r\n", "\xff\xfd\x01\xff\xfb\x1f\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0admin\r\x00admin\r\x00", "a\x08b\x7f\n\xff\xff\n"},
	"FuzzX224":         {string(x224CR("Cookie: mstshash=Administr\r\n", 3, true)), string(x224CR("Cookie: msts=1.2.3\r\n", 0, false)), string(x224CR("", 8, true)) + string(exampleHello(true))},
	"FuzzRESP":         {"*1\r\n$4\r\nPING\r\n", "*3\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$3\r\ndir\r\n", "INFO\r\nAUTH a b\r\nQUIT\r\n", "*1\r\n$-1\r\n"},
	"FuzzSMBNegotiate": {string(smb2Negotiate(1, 0x0202, 0x0311)), string(smb1Negotiate("NT LM 0.12", "SMB 2.???")), "\x00\x00\x00\x04\xfeSMB"},
	"FuzzSIPRequest":   {sipOptions, "REGISTER sip:a SIP/2.0\r\nv: x\r\ni: y\r\nl: 2\r\n\r\nab", "INVITE sip:1@a SIP/2.0\r\nAuthorization: Digest username=\"u\"\r\n\r\n"},
	"FuzzDNSQuery":     {string(dnsQueryPacket(1, "example.com", 1)), string(dnsQueryPacket(2, "a.b", 255)), "\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"},
}

func addSeeds(f *testing.F, name string) {
	for _, s := range seeds[name] {
		f.Add([]byte(s))
	}
}

func FuzzHTTPRequest(f *testing.F) {
	addSeeds(f, "FuzzHTTPRequest")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzServe(t, "http", data)
		detectHTTP(data)
	})
}

func FuzzClientHello(f *testing.F) {
	addSeeds(f, "FuzzClientHello")
	f.Fuzz(func(t *testing.T, data []byte) {
		if ch, err := parseClientHello(data); err == nil {
			ch.JA3Hash()
		}
		ev := fuzzServe(t, "tls", data)
		if ev.JA3 != "" && len(ev.JA3) != 32 {
			t.Fatalf("JA3 %q", ev.JA3)
		}
	})
}

func FuzzSSHClient(f *testing.F) {
	addSeeds(f, "FuzzSSHClient")
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := parseKexInit(data); err == nil {
			k.HASSH()
		}
		fuzzServe(t, "ssh", data)
	})
}

func FuzzTelnetInput(f *testing.F) {
	addSeeds(f, "FuzzTelnetInput")
	f.Fuzz(func(t *testing.T, data []byte) {
		ev := fuzzServe(t, "telnet", data)
		if len(ev.Username) > 128*3 || len(ev.Password) > 128*3 {
			t.Fatal("credential too long")
		}
	})
}

func FuzzX224(f *testing.F) {
	addSeeds(f, "FuzzX224")
	f.Fuzz(func(t *testing.T, data []byte) {
		parseX224(data)
		fuzzServe(t, "rdp", data)
	})
}

func FuzzRESP(f *testing.F) {
	addSeeds(f, "FuzzRESP")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzServe(t, "redis", data)
	})
}

func FuzzSMBNegotiate(f *testing.F) {
	addSeeds(f, "FuzzSMBNegotiate")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4 {
			if n, err := parseSMBNegotiate(data[4:]); err == nil {
				smbChoose(n)
			}
		}
		fuzzServe(t, "smb", data)
	})
}

func FuzzSIPRequest(f *testing.F) {
	addSeeds(f, "FuzzSIPRequest")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzServe(t, "sip", data)
		var ev record.Event
		if r := HandlePacket(data, 5060, &ev); len(r) > len(data) {
			t.Fatalf("SIP reply %d > %d", len(r), len(data))
		}
		checkEvent(t, &ev, DefaultLimits)
	})
}

func FuzzDNSQuery(f *testing.F) {
	addSeeds(f, "FuzzDNSQuery")
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev record.Event
		r := HandlePacket(data, 53, &ev)
		if len(r) > len(data) {
			t.Fatalf("DNS reply %d > %d", len(r), len(data))
		}
		if r != nil && (len(r) < 12 || r[2]&0x80 == 0 || r[3]&0x0f != 5) {
			t.Fatalf("reply % x", r)
		}
		checkEvent(t, &ev, DefaultLimits)
	})
}
