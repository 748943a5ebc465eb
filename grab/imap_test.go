package grab

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

// A fake IMAP server, written from RFC 9051: it greets, answers
// CAPABILITY with an untagged CAPABILITY response (caps) and a tagged OK,
// LOGOUT with BYE and OK, and anything else with BAD.
type fakeIMAP struct {
	greeting string
	caps     string
	hangUp   bool
	log      cmdLog
}

func (f *fakeIMAP) serve(c net.Conn) {
	c.Write([]byte(f.greeting))
	if f.hangUp {
		return
	}
	greetLines(c, func(line string) (string, bool) {
		f.log.add(line)
		tag, cmd, _ := strings.Cut(line, " ")
		switch strings.ToUpper(cmd) {
		case "CAPABILITY":
			return "* CAPABILITY " + f.caps + "\r\n" + tag + " OK Pre-login capabilities listed, post-login capabilities have more.\r\n", false
		case "LOGOUT":
			return "* BYE Logging out\r\n" + tag + " OK Logout completed.\r\n", true
		}
		return tag + " BAD Error in IMAP command received by server.\r\n", false
	})
}

const dovecotIMAPCaps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN"

func TestIMAPGrab(t *testing.T) {
	tests := []struct {
		name  string
		srv   *fakeIMAP
		proto string
		// expected
		banner, caps, preauth string
		cmds                  []string
	}{
		{
			name: "dovecot named", proto: "imap",
			srv: &fakeIMAP{greeting: "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n",
				caps: dovecotIMAPCaps},
			banner: "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.",
			caps:   dovecotIMAPCaps,
			cmds:   []string{"a1 CAPABILITY", "a2 LOGOUT"},
		},
		{
			name:   "plain greeting on another port, LF only",
			srv:    &fakeIMAP{greeting: "* OK IMAP4rev1 Service Ready\n", caps: "IMAP4rev2 IMAP4rev1 STARTTLS LOGINDISABLED"},
			banner: "* OK IMAP4rev1 Service Ready",
			caps:   "IMAP4rev2 IMAP4rev1 STARTTLS LOGINDISABLED",
			cmds:   []string{"a1 CAPABILITY", "a2 LOGOUT"},
		},
		{
			name:   "preauthenticated",
			srv:    &fakeIMAP{greeting: "* PREAUTH IMAP4rev1 server logged in as Smith\r\n", caps: "IMAP4rev1"},
			banner: "* PREAUTH IMAP4rev1 server logged in as Smith",
			caps:   "IMAP4rev1", preauth: "yes",
			cmds: []string{"a1 CAPABILITY", "a2 LOGOUT"},
		},
		{
			name:   "refuses",
			srv:    &fakeIMAP{greeting: "* BYE Too many connections\r\n", hangUp: true},
			banner: "* BYE Too many connections",
		},
		{
			name:   "greets and hangs up",
			srv:    &fakeIMAP{greeting: "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n", hangUp: true},
			banner: "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready",
			caps:   "IMAP4rev1 STARTTLS",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.srv.serve)
			svc, err, _ := greetGrab(t, addr, 0, tt.proto)
			if err != nil {
				t.Fatal(err)
			}
			if svc.Protocol != "imap" || string(svc.Banner) != tt.banner {
				t.Fatalf("got %s %q", svc.Protocol, svc.Banner)
			}
			if svc.Data["imap.capabilities"] != tt.caps || svc.Data["imap.preauth"] != tt.preauth {
				t.Errorf("data %q", svc.Data)
			}
			time.Sleep(20 * time.Millisecond)
			if got := tt.srv.log.list(); strings.Join(got, "|") != strings.Join(tt.cmds, "|") {
				t.Errorf("server got %q", got)
			}
		})
	}
}

func TestIMAPHostile(t *testing.T) {
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"endless untagged responses", func(c net.Conn) {
			c.Write([]byte("* OK ready\r\n"))
			buf := make([]byte, 64)
			c.Read(buf)
			for i := 0; i < 100000; i++ {
				if _, err := c.Write([]byte("* NO noise\r\n")); err != nil {
					return
				}
			}
		}},
		{"endless line", func(c net.Conn) {
			c.Write([]byte("* OK ready\r\n"))
			buf := make([]byte, 64)
			c.Read(buf)
			c.Write([]byte("* CAPABILITY "))
			chunk := bytes.Repeat([]byte("IMAP4 "), 1000)
			for i := 0; i < 1000; i++ {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}},
		{"slow drip", func(c net.Conn) {
			c.Write([]byte("* OK ready\r\n"))
			buf := make([]byte, 64)
			c.Read(buf)
			for _, b := range []byte("* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\n") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.handle)
			svc, _, took := greetGrab(t, addr, 0, "imap")
			if took > 4*time.Second {
				t.Errorf("took %v", took)
			}
			if svc.Protocol != "imap" || string(svc.Banner) != "* OK ready" {
				t.Errorf("got %s %q", svc.Protocol, clip(svc.Banner, 60))
			}
			if svc.Data["imap.capabilities"] != "" {
				t.Errorf("capabilities %q", clip([]byte(svc.Data["imap.capabilities"]), 60))
			}
		})
	}
}

func TestIMAPParse(t *testing.T) {
	claims := []struct {
		g    string
		want bool
	}{
		{"* OK IMAP4rev1 ready\r\n", true},
		{"* ok [CAPABILITY IMAP4rev1] ready\r\n", true},
		{"* PREAUTH logged in\r\n", true},
		{"* BYE go away\r\n", true},
		{"* OK", true},
		{"\r\n* OK ready\r\n", true},
		{"* OKAY\r\n", false},
		{"+OK POP3\r\n", false},
		{"* NO\r\n", false},
		{"220 * OK\r\n", false},
	}
	for _, tt := range claims {
		if got := imapClaims([]byte(tt.g)); got != tt.want {
			t.Errorf("imapClaims(%q) = %v", tt.g, got)
		}
	}
	caps := []struct{ line, want string }{
		{"* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN", "IMAP4rev1 STARTTLS AUTH=PLAIN"},
		{"* capability IMAP4rev1  IDLE", "IMAP4rev1 IDLE"},
		{"* OK [CAPABILITY IMAP4rev1 LITERAL+] Dovecot ready.", "IMAP4rev1 LITERAL+"},
		{"* OK [ALERT] hello", ""},
		{"* OK [CAPABILITY IMAP4rev1", ""},
		{"* CAPABILITY IMAP4rev1 {5}", "IMAP4rev1"},
		{"a1 OK CAPABILITY completed", ""},
		{"* 1 EXISTS", ""},
	}
	for _, tt := range caps {
		if got := imapCapabilities(tt.line); got != tt.want {
			t.Errorf("imapCapabilities(%q) = %q", tt.line, got)
		}
	}
}

// FuzzIMAPLine drives the greeting and capability parsers.
func FuzzIMAPLine(f *testing.F) {
	f.Add([]byte("* OK [CAPABILITY IMAP4rev1 SASL-IR] Dovecot ready."))
	f.Fuzz(func(t *testing.T, data []byte) {
		line := string(data)
		imapClaims(data)
		imapTagged(line, "a1")
		caps := imapCapabilities(line)
		if strings.ContainsAny(caps, "\r\n\x00(){") || strings.Contains(caps, "  ") {
			t.Fatalf("capabilities %q", caps)
		}
	})
}
