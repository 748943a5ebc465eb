package grab

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// cmdLog keeps the commands a fake server received.
type cmdLog struct {
	mu   sync.Mutex
	cmds []string
}

func (l *cmdLog) add(c string) {
	l.mu.Lock()
	l.cmds = append(l.cmds, c)
	l.mu.Unlock()
}

func (l *cmdLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string{}, l.cmds...)
}

// A fake FTP server, written from RFC 959 and RFC 2389: it greets,
// answers FEAT with feat (or 500 when empty), QUIT with 221, and
// anything else with 500 or 530.
type fakeFTP struct {
	greeting string
	feat     string
	hangUp   bool // after the greeting
	log      cmdLog
}

func (f *fakeFTP) serve(c net.Conn) {
	c.Write([]byte(f.greeting))
	if f.hangUp {
		return
	}
	greetLines(c, func(line string) (string, bool) {
		f.log.add(line)
		verb, _, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "FEAT":
			if f.feat == "" {
				return "500 Unknown command.\r\n", false
			}
			return f.feat, false
		case "QUIT":
			return "221 Goodbye.\r\n", true
		case "USER", "PASS":
			return "530 Not today.\r\n", false
		}
		return "500 Unknown command.\r\n", false
	})
}

const (
	vsftpdFeat       = "211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n211 End\r\n"
	pureFTPdGreeting = "220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\r\n" +
		"220-You are user number 1 of 50 allowed.\r\n" +
		"220-Local time is now 12:00. Server port: 21.\r\n" +
		"220 You will be disconnected after 15 minutes of inactivity.\r\n"
)

func TestFTPGrab(t *testing.T) {
	tests := []struct {
		name  string
		srv   *fakeFTP
		port  uint16 // the port the target says it is on; 0 for the listener's
		proto string
		// expected
		protocol, banner, features string
		cmds                       []string
	}{
		{
			name: "vsftpd named", proto: "ftp",
			srv:      &fakeFTP{greeting: "220 (vsFTPd 3.0.3)\r\n", feat: vsftpdFeat},
			protocol: "ftp", banner: "220 (vsFTPd 3.0.3)",
			features: "EPRT, EPSV, MDTM, PASV, REST STREAM, SIZE, TVFS, UTF8",
			cmds:     []string{"FEAT", "QUIT"},
		},
		{
			name:     "vsftpd on another port",
			srv:      &fakeFTP{greeting: "220 (vsFTPd 3.0.3)\r\n", feat: vsftpdFeat},
			protocol: "ftp", banner: "220 (vsFTPd 3.0.3)",
			features: "EPRT, EPSV, MDTM, PASV, REST STREAM, SIZE, TVFS, UTF8",
			cmds:     []string{"FEAT", "QUIT"},
		},
		{
			name:     "multi-line greeting, LF only",
			srv:      &fakeFTP{greeting: strings.ReplaceAll(pureFTPdGreeting, "\r\n", "\n"), feat: "211-Extensions supported:\n EPRT\n MLST size*;type*;modify*;\n211 End.\n"},
			protocol: "ftp", banner: strings.TrimSpace(strings.ReplaceAll(pureFTPdGreeting, "\r\n", "\n")),
			features: "EPRT, MLST size*;type*;modify*;",
			cmds:     []string{"FEAT", "QUIT"},
		},
		{
			name: "RFC 959 multi-line with text lines",
			srv: &fakeFTP{greeting: "220-Welcome to the archive\r\nThis server is logged.\r\n 220 this line does not end it\r\n220 Ready\r\n",
				feat: "211 No features\r\n"},
			port: 21, protocol: "ftp",
			banner: "220-Welcome to the archive\r\nThis server is logged.\r\n 220 this line does not end it\r\n220 Ready",
			cmds:   []string{"FEAT", "QUIT"},
		},
		{
			name:     "a blank line first",
			srv:      &fakeFTP{greeting: "\r\n220 FTP server ready\r\n", feat: "211 no-features\r\n"},
			protocol: "ftp", banner: "220 FTP server ready",
			cmds: []string{"FEAT", "QUIT"},
		},
		{
			name:     "greets and hangs up",
			srv:      &fakeFTP{greeting: "220 Microsoft FTP Service\r\n", hangUp: true},
			protocol: "ftp", banner: "220 Microsoft FTP Service",
		},
		{
			name:     "too many connections",
			srv:      &fakeFTP{greeting: "421 Too many connections (8) from this IP\r\n", hangUp: true},
			port:     21,
			protocol: "ftp", banner: "421 Too many connections (8) from this IP",
		},
		{
			name:     "ambiguous greeting on FTP's port",
			srv:      &fakeFTP{greeting: "220 files.example.org ready\r\n", feat: vsftpdFeat},
			port:     21,
			protocol: "ftp", banner: "220 files.example.org ready",
			features: "EPRT, EPSV, MDTM, PASV, REST STREAM, SIZE, TVFS, UTF8",
			cmds:     []string{"FEAT", "QUIT"},
		},
		{
			name:     "an FTP server on SMTP's port",
			srv:      &fakeFTP{greeting: "220 ProFTPD Server (Debian) [::ffff:192.0.2.1]\r\n", feat: vsftpdFeat},
			port:     25,
			protocol: "ftp", banner: "220 ProFTPD Server (Debian) [::ffff:192.0.2.1]",
			features: "EPRT, EPSV, MDTM, PASV, REST STREAM, SIZE, TVFS, UTF8",
			cmds:     []string{"FEAT", "QUIT"},
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
			if svc.Data["ftp.features"] != tt.features {
				t.Errorf("features %q", svc.Data["ftp.features"])
			}
			time.Sleep(20 * time.Millisecond) // let the server log the QUIT
			if got := tt.srv.log.list(); strings.Join(got, "|") != strings.Join(tt.cmds, "|") {
				t.Errorf("server got %q", got)
			}
		})
	}
}

// A greeting that names neither protocol, on a port neither owns, goes
// to FTP; a mail server answers FEAT with an enhanced status code, and
// FTP hands the connection to SMTP.
func TestFTPHandsOverToSMTP(t *testing.T) {
	srv := &fakeSMTP{greeting: "220 Service ready\r\n", ehlo: postfixEHLO, unknown: "502 5.5.2 Error: command not recognized\r\n"}
	addr := fakeServer(t, srv.serve)
	svc, err, _ := greetGrab(t, addr, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if svc.Protocol != "smtp" || string(svc.Banner) != "220 Service ready" || svc.Data["smtp.ehlo"] == "" {
		t.Fatalf("got %s %q %v", svc.Protocol, svc.Banner, svc.Data)
	}
	time.Sleep(20 * time.Millisecond)
	if got := srv.log.list(); strings.Join(got, "|") != "FEAT|EHLO vantage.invalid|QUIT" {
		t.Errorf("server got %q", got)
	}
}

func TestFTPHostile(t *testing.T) {
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"endless greeting line", func(c net.Conn) {
			c.Write([]byte("220 "))
			chunk := bytes.Repeat([]byte("x"), 4096)
			for i := 0; i < 1000; i++ {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}},
		{"endless multi-line greeting", func(c net.Conn) {
			for i := 0; i < 100000; i++ {
				if _, err := c.Write([]byte("220-FTP and more\r\n")); err != nil {
					return
				}
			}
		}},
		{"endless FEAT", func(c net.Conn) {
			c.Write([]byte("220 FTP ready\r\n"))
			buf := make([]byte, 64)
			c.Read(buf)
			c.Write([]byte("211-Features:\r\n"))
			for i := 0; i < 100000; i++ {
				if _, err := c.Write([]byte(" FEATURE\r\n")); err != nil {
					return
				}
			}
		}},
		{"slow drip", func(c net.Conn) {
			for _, b := range []byte("220 FTP ready\r\n") {
				c.Write([]byte{b})
				time.Sleep(10 * time.Millisecond)
			}
			buf := make([]byte, 64)
			c.Read(buf)
			for _, b := range []byte(vsftpdFeat) {
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
			svc, _, took := greetGrab(t, addr, 0, "ftp")
			if took > 4*time.Second {
				t.Errorf("took %v", took)
			}
			if svc.Protocol != "ftp" || !bytes.HasPrefix(svc.Banner, []byte("220")) {
				t.Errorf("got %s %q", svc.Protocol, clip(svc.Banner, 60))
			}
			if svc.Data["ftp.features"] != "" {
				t.Errorf("features %q", clip([]byte(svc.Data["ftp.features"]), 60))
			}
		})
	}
}

func TestFTPClaims(t *testing.T) {
	tests := []struct {
		g         string
		ftp, smtp bool
	}{
		{"220 (vsFTPd 3.0.3)\r\n", true, false},
		{"\r\n220 (vsFTPd 3.0.3)\r\n", true, false},
		{"\n220 mail.example.com ESMTP\n", false, true},
		{"220 ProFTPD 1.3.8 Server (Debian)\r\n", true, false},
		{pureFTPdGreeting, true, false},
		{"220-FileZilla Server 1.7.0\r\n220 Please visit https://filezilla-project.org/\r\n", true, true},
		{"220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n", false, true},
		{"220-mx.example.net ESMTP Exim 4.96 Mon, 01 Jan 2024 00:00:00 +0000\r\n220 ready\r\n", false, true},
		{"421 4.3.2 Service not available\r\n", false, true},
		{"554 No SMTP service here\r\n", false, true},
		{"421 Too many users\r\n", true, true},
		{"120 Service ready in 5 minutes\r\n", true, false},
		{"220 Service ready\r\n", true, true},
		{"220\r\n", true, true},
		{"220FTP\r\n", false, false},
		{"200 news.example.com InterNetNews server INN 2.7 ready\r\n", false, false},
		{"SSH-2.0-OpenSSH_9.2\r\n", false, false},
		{"+OK POP3 ready\r\n", false, false},
		{"22", false, false},
	}
	for _, tt := range tests {
		if got := ftpClaims([]byte(tt.g)); got != tt.ftp {
			t.Errorf("ftpClaims(%q) = %v", tt.g, got)
		}
		if got := smtpClaims([]byte(tt.g)); got != tt.smtp {
			t.Errorf("smtpClaims(%q) = %v", tt.g, got)
		}
	}
}

func TestGreetingLeans(t *testing.T) {
	tests := []struct{ g, want string }{
		{"220 (vsFTPd 3.0.3)\r\n", "ftp"},
		{"220-FileZilla Server 1.7.0\r\n", "ftp"},
		{"220 Serv-U Ready\r\n", "ftp"},
		{"220 mail.example.com\r\n", "smtp"},
		{"220 [192.0.2.1] ready\r\n", "smtp"},
		{"220 mx1.example.org Microsoft ESMTP MAIL Service ready\r\n", "smtp"},
		{"220 Welcome to the mail gateway\r\n", "smtp"},
		{"220 192.0.2.1 ready\r\n", ""},
		{"220 Service ready\r\n", ""},
		{"220 FTP to SMTP gateway\r\n", ""},
	}
	for _, tt := range tests {
		if got := cmdGreetingLeans([]byte(tt.g)); got != tt.want {
			t.Errorf("cmdGreetingLeans(%q) = %q", tt.g, got)
		}
	}
}

func TestCmdReply(t *testing.T) {
	tests := []struct {
		in    string
		code  int
		lines int
		ok    bool
		text  string
	}{
		{"220 ready\r\n", 220, 1, true, "ready"},
		{"220\r\n", 220, 1, true, ""},
		{"250-a.example\r\n250-SIZE 100\r\n250 HELP\r\n", 250, 3, true, "a.example\nSIZE 100\nHELP"},
		{"211-Features:\n MDTM\n211 End\n", 211, 3, true, "Features:\n MDTM\nEnd"},
		{"220-a\r\n221 b\r\n220 c\r\n", 220, 3, true, "a\n221 b\nc"},
		{"220-never ends\r\n", 220, 1, false, ""},
		{"hello\r\n", 0, 0, false, ""},
		{"", 0, 0, false, ""},
	}
	for _, tt := range tests {
		r, err := parseCmdReply([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("%q: err %v", tt.in, err)
			continue
		}
		if !tt.ok {
			continue
		}
		if r.code != tt.code || len(r.lines) != tt.lines || r.text() != tt.text {
			t.Errorf("%q: %d %q %q", tt.in, r.code, r.lines, r.text())
		}
	}
	if cmdEnhancedCode("500 Unknown command") || !cmdEnhancedCode("502 5.5.2 Error") || cmdEnhancedCode("220 1.2.3.4") {
		t.Error("cmdEnhancedCode")
	}
}

// FuzzCmdReply drives the FTP/SMTP reply parser and the greeting
// classifiers with what a server might send.
func FuzzCmdReply(f *testing.F) {
	f.Add([]byte(pureFTPdGreeting))
	f.Fuzz(func(t *testing.T, data []byte) {
		ftpClaims(data)
		smtpClaims(data)
		cmdGreetingLeans(data)
		r, err := parseCmdReply(data)
		if err != nil {
			return
		}
		if len(r.lines) == 0 || len(r.lines) > cmdMaxLines || r.code < 100 || r.code > 599 {
			t.Fatalf("reply %d %q", r.code, r.lines)
		}
		r.text()
		r.banner()
		r.enhanced()
		ftpFeatures(r)
		smtpExtensions(r)
	})
}
