package grab

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

// A fake POP3 server, written from RFC 1939 and RFC 2449: it greets,
// answers CAPA with capa (or -ERR when empty), QUIT with +OK, and anything
// else with -ERR.
type fakePOP3 struct {
	greeting string
	capa     string
	hangUp   bool
	log      cmdLog
}

func (f *fakePOP3) serve(c net.Conn) {
	c.Write([]byte(f.greeting))
	if f.hangUp {
		return
	}
	greetLines(c, func(line string) (string, bool) {
		f.log.add(line)
		switch strings.ToUpper(line) {
		case "CAPA":
			if f.capa == "" {
				return "-ERR unknown command\r\n", false
			}
			return f.capa, false
		case "QUIT":
			return "+OK Logging out.\r\n", true
		}
		return "-ERR unknown command\r\n", false
	})
}

const dovecotCAPA = "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\n.\r\n"

func TestPOP3Grab(t *testing.T) {
	tests := []struct {
		name  string
		srv   *fakePOP3
		proto string
		// expected
		banner, caps, apop string
		cmds               []string
	}{
		{
			name: "dovecot named", proto: "pop3",
			srv:    &fakePOP3{greeting: "+OK Dovecot (Debian) ready.\r\n", capa: dovecotCAPA},
			banner: "+OK Dovecot (Debian) ready.",
			caps:   "CAPA, TOP, UIDL, RESP-CODES, PIPELINING, AUTH-RESP-CODE, STLS, USER, SASL PLAIN",
			cmds:   []string{"CAPA", "QUIT"},
		},
		{
			name:   "dovecot on another port",
			srv:    &fakePOP3{greeting: "+OK Dovecot (Debian) ready.\r\n", capa: dovecotCAPA},
			banner: "+OK Dovecot (Debian) ready.",
			caps:   "CAPA, TOP, UIDL, RESP-CODES, PIPELINING, AUTH-RESP-CODE, STLS, USER, SASL PLAIN",
			cmds:   []string{"CAPA", "QUIT"},
		},
		{
			name: "APOP timestamp, byte-stuffed line, LF only",
			srv: &fakePOP3{greeting: "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\n",
				capa: "+OK Capability list follows\nTOP\n..DOTTED\nIMPLEMENTATION Qpopper\n.\n"},
			banner: "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>",
			caps:   "TOP, .DOTTED, IMPLEMENTATION Qpopper", apop: "yes",
			cmds: []string{"CAPA", "QUIT"},
		},
		{
			name:   "no CAPA",
			srv:    &fakePOP3{greeting: "+OK\r\n"},
			banner: "+OK",
			cmds:   []string{"CAPA", "QUIT"},
		},
		{
			name:   "refuses the connection",
			srv:    &fakePOP3{greeting: "-ERR [SYS/TEMP] too many connections\r\n", hangUp: true},
			banner: "-ERR [SYS/TEMP] too many connections",
		},
		{
			name:   "a blank line first",
			srv:    &fakePOP3{greeting: "\r\n+OK ready\r\n", capa: dovecotCAPA},
			banner: "+OK ready",
			caps:   "CAPA, TOP, UIDL, RESP-CODES, PIPELINING, AUTH-RESP-CODE, STLS, USER, SASL PLAIN",
			cmds:   []string{"CAPA", "QUIT"},
		},
		{
			name:   "greets and hangs up",
			srv:    &fakePOP3{greeting: "+OK POP3 ready\r\n", hangUp: true},
			banner: "+OK POP3 ready",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.srv.serve)
			svc, err, _ := greetGrab(t, addr, 0, tt.proto)
			if err != nil {
				t.Fatal(err)
			}
			if svc.Protocol != "pop3" || string(svc.Banner) != tt.banner {
				t.Fatalf("got %s %q", svc.Protocol, svc.Banner)
			}
			if svc.Data["pop3.capabilities"] != tt.caps || svc.Data["pop3.apop"] != tt.apop {
				t.Errorf("data %q", svc.Data)
			}
			time.Sleep(20 * time.Millisecond)
			if got := tt.srv.log.list(); strings.Join(got, "|") != strings.Join(tt.cmds, "|") {
				t.Errorf("server got %q", got)
			}
		})
	}
}

func TestPOP3Hostile(t *testing.T) {
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"endless CAPA", func(c net.Conn) {
			c.Write([]byte("+OK ready\r\n"))
			buf := make([]byte, 64)
			c.Read(buf)
			c.Write([]byte("+OK\r\n"))
			for i := 0; i < 100000; i++ {
				if _, err := c.Write([]byte("X-CAP\r\n")); err != nil {
					return
				}
			}
		}},
		{"endless CAPA line", func(c net.Conn) {
			c.Write([]byte("+OK ready\r\n"))
			buf := make([]byte, 64)
			c.Read(buf)
			c.Write([]byte("+OK\r\n"))
			chunk := bytes.Repeat([]byte("z"), 4096)
			for i := 0; i < 1000; i++ {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}},
		{"slow drip", func(c net.Conn) {
			c.Write([]byte("+OK ready\r\n"))
			buf := make([]byte, 64)
			c.Read(buf)
			for _, b := range []byte(dovecotCAPA) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.handle)
			svc, _, took := greetGrab(t, addr, 0, "pop3")
			if took > 4*time.Second {
				t.Errorf("took %v", took)
			}
			if svc.Protocol != "pop3" || string(svc.Banner) != "+OK ready" {
				t.Errorf("got %s %q", svc.Protocol, clip(svc.Banner, 60))
			}
			if svc.Data["pop3.capabilities"] != "" {
				t.Errorf("capabilities %q", clip([]byte(svc.Data["pop3.capabilities"]), 60))
			}
		})
	}
}

func TestPOP3Claims(t *testing.T) {
	tests := []struct {
		g    string
		want bool
	}{
		{"+OK Dovecot ready.\r\n", true},
		{"+OK\r\n", true},
		{"\r\n+OK ready\r\n", true},
		{"+OK", true},
		{"-ERR too many connections\r\n", true},
		{"+OKAY\r\n", false},
		{"-DENIED Redis is running in protected mode\r\n", false},
		{"* OK IMAP4rev1\r\n", false},
		{"220 ready\r\n", false},
	}
	for _, tt := range tests {
		if got := pop3Claims([]byte(tt.g)); got != tt.want {
			t.Errorf("pop3Claims(%q) = %v", tt.g, got)
		}
	}
}

// FuzzPOP3Multi drives the multi-line response parser.
func FuzzPOP3Multi(f *testing.F) {
	f.Add([]byte(strings.TrimPrefix(dovecotCAPA, "+OK\r\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		pop3Claims(data)
		pop3APOP(string(data))
		caps, _ := pop3ParseMulti(data)
		if len(caps) > pop3MaxLines+1 {
			t.Fatalf("%d lines", len(caps))
		}
		for _, c := range caps {
			if c == "" || strings.ContainsAny(c, "\n") {
				t.Fatalf("capability %q", c)
			}
		}
	})
}
