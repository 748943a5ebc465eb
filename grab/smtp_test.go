package grab

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

// A fake SMTP server, written from RFC 5321: it greets, answers EHLO with
// ehlo (or 500 when empty), QUIT with 221, and anything else with
// unknown (by default "500 5.5.1 Command unrecognized").
type fakeSMTP struct {
	greeting string
	ehlo     string
	unknown  string
	hangUp   bool
	log      cmdLog
}

func (f *fakeSMTP) serve(c net.Conn) {
	c.Write([]byte(f.greeting))
	if f.hangUp {
		return
	}
	greetLines(c, func(line string) (string, bool) {
		f.log.add(line)
		verb, _, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			if f.ehlo == "" {
				return "500 Command unrecognized\r\n", false
			}
			return f.ehlo, false
		case "QUIT":
			return "221 2.0.0 Bye\r\n", true
		}
		if f.unknown != "" {
			return f.unknown, false
		}
		return "500 5.5.1 Command unrecognized\r\n", false
	})
}

const (
	postfixGreeting = "220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n"
	postfixEHLO     = "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n" +
		"250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
	postfixExtensions = "PIPELINING, SIZE 10240000, VRFY, ETRN, STARTTLS, ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8, CHUNKING"
)

func TestSMTPGrab(t *testing.T) {
	tests := []struct {
		name  string
		srv   *fakeSMTP
		port  uint16
		proto string
		// expected
		protocol, banner, ehlo, refused string
		cmds                            []string
	}{
		{
			name: "postfix named", proto: "smtp",
			srv:      &fakeSMTP{greeting: postfixGreeting, ehlo: postfixEHLO},
			protocol: "smtp", banner: strings.TrimSpace(postfixGreeting), ehlo: postfixExtensions,
			cmds: []string{"EHLO vantage.invalid", "QUIT"},
		},
		{
			name:     "postfix on another port",
			srv:      &fakeSMTP{greeting: postfixGreeting, ehlo: postfixEHLO},
			protocol: "smtp", banner: strings.TrimSpace(postfixGreeting), ehlo: postfixExtensions,
			cmds: []string{"EHLO vantage.invalid", "QUIT"},
		},
		{
			name: "OpenSMTPD, LF only",
			srv: &fakeSMTP{greeting: "220 mail.example.org ESMTP OpenSMTPD\n",
				ehlo: "250-mail.example.org Hello vantage.invalid [127.0.0.1], pleased to meet you\n250-8BITMIME\n250-ENHANCEDSTATUSCODES\n250-SIZE 36700160\n250-DSN\n250 HELP\n"},
			protocol: "smtp", banner: "220 mail.example.org ESMTP OpenSMTPD",
			ehlo: "8BITMIME, ENHANCEDSTATUSCODES, SIZE 36700160, DSN, HELP",
			cmds: []string{"EHLO vantage.invalid", "QUIT"},
		},
		{
			name: "multi-line greeting",
			srv: &fakeSMTP{greeting: "220-mx.example.net ESMTP Exim 4.96 Mon, 01 Jan 2024 00:00:00 +0000\r\n220-We do not authorize the use of this system\r\n220 to transport unsolicited mail\r\n",
				ehlo: "250-mx.example.net Hello vantage.invalid [127.0.0.1]\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n250-PIPELINING\r\n250-PIPE_CONNECT\r\n250-STARTTLS\r\n250 HELP\r\n"},
			protocol: "smtp",
			banner:   "220-mx.example.net ESMTP Exim 4.96 Mon, 01 Jan 2024 00:00:00 +0000\r\n220-We do not authorize the use of this system\r\n220 to transport unsolicited mail",
			ehlo:     "SIZE 52428800, 8BITMIME, PIPELINING, PIPE_CONNECT, STARTTLS, HELP",
			cmds:     []string{"EHLO vantage.invalid", "QUIT"},
		},
		{
			name:     "a hidden banner: only the domain",
			srv:      &fakeSMTP{greeting: "220 mail.example.com\r\n", ehlo: postfixEHLO},
			protocol: "smtp", banner: "220 mail.example.com", ehlo: postfixExtensions,
			cmds: []string{"EHLO vantage.invalid", "QUIT"},
		},
		{
			name:     "no service here",
			srv:      &fakeSMTP{greeting: "554 mail.example.com No SMTP service here\r\n"},
			protocol: "smtp", banner: "554 mail.example.com No SMTP service here",
			cmds: []string{"QUIT"},
		},
		{
			name:     "EHLO refused",
			srv:      &fakeSMTP{greeting: "220 old.example.com Sendmail 5.65 ready\r\n"},
			protocol: "smtp", banner: "220 old.example.com Sendmail 5.65 ready", refused: "Command unrecognized",
			cmds: []string{"EHLO vantage.invalid", "QUIT"},
		},
		{
			name:     "greets and hangs up",
			srv:      &fakeSMTP{greeting: "220 mx.example.com ESMTP\r\n", hangUp: true},
			protocol: "smtp", banner: "220 mx.example.com ESMTP",
		},
		{
			name:     "ambiguous greeting on SMTP's port",
			srv:      &fakeSMTP{greeting: "220 Service ready\r\n", ehlo: postfixEHLO},
			port:     25,
			protocol: "smtp", banner: "220 Service ready", ehlo: postfixExtensions,
			cmds: []string{"EHLO vantage.invalid", "QUIT"},
		},
		{
			name:     "a mail server on FTP's port",
			srv:      &fakeSMTP{greeting: postfixGreeting, ehlo: postfixEHLO},
			port:     21,
			protocol: "smtp", banner: strings.TrimSpace(postfixGreeting), ehlo: postfixExtensions,
			cmds: []string{"EHLO vantage.invalid", "QUIT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.srv.serve)
			svc, err, _ := greetGrab(t, addr, tt.port, tt.proto)
			if err != nil {
				t.Fatal(err)
			}
			if svc.Protocol != tt.protocol || string(svc.Banner) != tt.banner {
				t.Fatalf("got %s %q", svc.Protocol, svc.Banner)
			}
			if svc.Data["smtp.ehlo"] != tt.ehlo || svc.Data["smtp.ehlo_refused"] != tt.refused {
				t.Errorf("data %q", svc.Data)
			}
			time.Sleep(20 * time.Millisecond)
			if got := tt.srv.log.list(); strings.Join(got, "|") != strings.Join(tt.cmds, "|") {
				t.Errorf("server got %q", got)
			}
		})
	}
}

func TestSMTPHostile(t *testing.T) {
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"endless EHLO reply", func(c net.Conn) {
			c.Write([]byte(postfixGreeting))
			buf := make([]byte, 64)
			c.Read(buf)
			for i := 0; i < 100000; i++ {
				if _, err := c.Write([]byte("250-X-EXTENSION\r\n")); err != nil {
					return
				}
			}
		}},
		{"endless EHLO line", func(c net.Conn) {
			c.Write([]byte(postfixGreeting))
			buf := make([]byte, 64)
			c.Read(buf)
			c.Write([]byte("250-"))
			chunk := bytes.Repeat([]byte("y"), 4096)
			for i := 0; i < 1000; i++ {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}},
		{"slow drip", func(c net.Conn) {
			c.Write([]byte(postfixGreeting))
			buf := make([]byte, 64)
			c.Read(buf)
			for _, b := range []byte(postfixEHLO) {
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
			svc, _, took := greetGrab(t, addr, 0, "smtp")
			if took > 4*time.Second {
				t.Errorf("took %v", took)
			}
			if svc.Protocol != "smtp" || string(svc.Banner) != strings.TrimSpace(postfixGreeting) {
				t.Errorf("got %s %q", svc.Protocol, clip(svc.Banner, 60))
			}
			if svc.Data["smtp.ehlo"] != "" {
				t.Errorf("ehlo %q", clip([]byte(svc.Data["smtp.ehlo"]), 60))
			}
		})
	}
}
