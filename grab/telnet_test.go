package grab

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// A fake telnetd, written from RFC 854 and RFC 855: it sends its rounds
// one after another, each after reading whatever the client answered to
// the one before, and keeps every byte the client sent.
type fakeTelnet struct {
	rounds []string
	mu     sync.Mutex
	got    []byte
}

func (f *fakeTelnet) serve(c net.Conn) {
	buf := make([]byte, 1024)
	for i, r := range f.rounds {
		c.Write([]byte(r))
		if i == len(f.rounds)-1 {
			break
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _ := c.Read(buf)
		f.mu.Lock()
		f.got = append(f.got, buf[:n]...)
		f.mu.Unlock()
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := c.Read(buf)
		f.mu.Lock()
		f.got = append(f.got, buf[:n]...)
		f.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (f *fakeTelnet) received() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte{}, f.got...)
}

// inetutils telnetd asks for terminal details first, then offers echo
// and go-ahead suppression, then runs login.
var inetutilsRounds = []string{
	"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27",
	"\xff\xfb\x03\xff\xfd\x01\xff\xfd\x1f\xff\xfb\x05\xff\xfd\x21",
	"\xff\xfb\x01\r\nDebian GNU/Linux 12\r\n\x1b[1mhost\x1b[0m login: ",
}

const inetutilsOptions = "DO TTYPE, DO TSPEED, DO XDISPLOC, DO NEW-ENVIRON, WILL SGA, DO ECHO, DO NAWS, WILL STATUS, DO LFLOW, WILL ECHO"

func TestTelnetGrab(t *testing.T) {
	tests := []struct {
		name   string
		rounds []string
		port   uint16
		proto  string
		// expected
		protocol, banner, options string
		answers                   string // what we must have sent
	}{
		{
			name: "inetutils named", rounds: inetutilsRounds, proto: "telnet",
			protocol: "telnet", banner: "Debian GNU/Linux 12\r\nhost login:", options: inetutilsOptions,
			answers: "\xff\xfc\x18\xff\xfc\x20\xff\xfc\x23\xff\xfc\x27\xff\xfe\x03\xff\xfc\x01\xff\xfc\x1f\xff\xfe\x05\xff\xfc\x21\xff\xfe\x01",
		},
		{
			name: "inetutils on another port", rounds: inetutilsRounds,
			protocol: "telnet", banner: "Debian GNU/Linux 12\r\nhost login:", options: inetutilsOptions,
			answers: "\xff\xfc\x18\xff\xfc\x20\xff\xfc\x23\xff\xfc\x27\xff\xfe\x03\xff\xfc\x01\xff\xfc\x1f\xff\xfe\x05\xff\xfc\x21\xff\xfe\x01",
		},
		{
			name:     "negotiation and text at once, a request repeated",
			rounds:   []string{"\xff\xfb\x01\xff\xfb\x03\xff\xfb\x01\xff\xfd\x18\xff\xfd\x1f\r\n\r\nUser Access Verification\r\n\r\nUsername: "},
			protocol: "telnet", banner: "User Access Verification\r\n\r\nUsername:", options: "WILL ECHO, WILL SGA, DO TTYPE, DO NAWS",
			answers: "\xff\xfe\x01\xff\xfe\x03\xff\xfc\x18\xff\xfc\x1f",
		},
		{
			name:     "subnegotiation, IAC IAC, CR NUL",
			rounds:   []string{"\xff\xfa\x18\x01\xff\xf0\xff\xfa\x27\x01\xff\xff\x00\xff\xf0Router\r\x00\r\nrouter> "},
			protocol: "telnet", banner: "Router\r\r\nrouter>", options: "SB TTYPE, SB NEW-ENVIRON",
		},
		{
			name:     "plain text on telnet's port",
			rounds:   []string{"\r\nWelcome to the embedded console\r\n"},
			port:     23,
			protocol: "telnet", banner: "Welcome to the embedded console",
		},
		{
			name:     "plain text login prompt elsewhere",
			rounds:   []string{"\r\nPassword: "},
			protocol: "telnet", banner: "Password:",
		},
		{
			name:     "plain text elsewhere is not telnet",
			rounds:   []string{"Hello there, stranger\r\n"},
			protocol: "unknown", banner: "Hello there, stranger\r\n",
		},
		{
			name:     "another protocol's greeting on telnet's port",
			rounds:   []string{"+OK POP3 ready\r\n"},
			port:     23,
			protocol: "pop3", banner: "+OK POP3 ready",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &fakeTelnet{rounds: tt.rounds}
			addr := fakeServer(t, srv.serve)
			svc, err, took := greetGrab(t, addr, tt.port, tt.proto)
			if err != nil {
				t.Fatal(err)
			}
			if svc.Protocol != tt.protocol || string(svc.Banner) != tt.banner {
				t.Fatalf("got %s %q (took %v)", svc.Protocol, svc.Banner, took)
			}
			if svc.Data["telnet.options"] != tt.options {
				t.Errorf("options %q", svc.Data["telnet.options"])
			}
			time.Sleep(50 * time.Millisecond)
			if tt.protocol == "telnet" {
				if got := srv.received(); string(got) != tt.answers {
					t.Errorf("server got %q", got)
				}
			}
		})
	}
}

func TestTelnetHostile(t *testing.T) {
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"endless negotiation", func(c net.Conn) {
			go func() {
				buf := make([]byte, 1024)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
			for i := 0; i < 100000; i++ {
				if _, err := c.Write([]byte{telnetIAC, telnetDO, byte(i)}); err != nil {
					return
				}
			}
		}},
		{"endless subnegotiation", func(c net.Conn) {
			c.Write([]byte{telnetIAC, telnetSB, 24})
			chunk := bytes.Repeat([]byte{1}, 4096)
			for i := 0; i < 1000; i++ {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}},
		{"endless text", func(c net.Conn) {
			c.Write([]byte{telnetIAC, telnetWILL, 1})
			chunk := bytes.Repeat([]byte("all work and no play "), 200)
			for i := 0; i < 1000; i++ {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}},
		{"slow drip", func(c net.Conn) {
			for _, b := range []byte("\xff\xfd\x18Welcome\r\nlogin: ") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.handle)
			svc, _, took := greetGrab(t, addr, 0, "telnet")
			if took > 4*time.Second {
				t.Errorf("took %v", took)
			}
			if svc.Protocol != "telnet" {
				t.Errorf("got %s %q", svc.Protocol, clip(svc.Banner, 60))
			}
			if len(svc.Banner) > telnetMaxText || strings.Count(svc.Data["telnet.options"], ",") >= telnetMaxOptions {
				t.Errorf("banner %d bytes, options %q", len(svc.Banner), svc.Data["telnet.options"])
			}
		})
	}
}

func TestTelnetParse(t *testing.T) {
	var p telnetParser
	// a command split across reads
	ev := p.feed([]byte("ab\xff"))
	if len(ev) != 1 || string(ev[0].text) != "ab" {
		t.Fatalf("%+v", ev)
	}
	ev = p.feed([]byte("\xfd"))
	if len(ev) != 0 {
		t.Fatalf("%+v", ev)
	}
	ev = p.feed([]byte("\x1fcd\xff\xfa\x18\x01"))
	if len(ev) != 2 || ev[0].String() != "DO NAWS" || string(ev[1].text) != "cd" {
		t.Fatalf("%+v", ev)
	}
	ev = p.feed([]byte("\xff\xf0\xff\xf1\xff\xf9ef"))
	if len(ev) != 2 || ev[0].String() != "SB TTYPE" || string(ev[1].text) != "ef" {
		t.Fatalf("%+v", ev)
	}
	for _, tt := range []struct {
		text string
		want bool
	}{
		{"Debian GNU/Linux 12\r\nhost login: ", true},
		{"Username:", true},
		{"Password: ", true},
		{"router>", true},
		{"root@box:~# ", true},
		{"Welcome\r\n", false},
		{"Note: read this", false},
		{"", false},
	} {
		if got := telnetPrompt([]byte(tt.text)); got != tt.want {
			t.Errorf("telnetPrompt(%q) = %v", tt.text, got)
		}
	}
	if got := telnetPlain([]byte("\x1b[1;32mgreen\x1b[0m\x07 \x00x")); string(got) != "green x" {
		t.Errorf("telnetPlain: %q", got)
	}
	for _, tt := range []struct {
		g    string
		want bool
	}{
		{"\xff\xfd\x18", true},
		{"\xff\xfb\x01\xff\xfb\x03", true},
		{"login: ", true},
		{"\r\n\xff\xfd\x18Welcome", true},
		{"\xff\x00", false},
		{"\x00\x00\x00\x0a", false},
		{"\r\n", false},
	} {
		if got := telnetClaims([]byte(tt.g)); got != tt.want {
			t.Errorf("telnetClaims(%q) = %v", tt.g, got)
		}
	}
}

// FuzzTelnet drives the IAC parser, fed in two pieces, and the text
// helpers.
func FuzzTelnet(f *testing.F) {
	f.Add([]byte(strings.Join(inetutilsRounds, "")), 7)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		telnetClaims(data)
		if split < 0 || split > len(data) {
			split = len(data) / 2
		}
		var p telnetParser
		events := append(p.feed(data[:split]), p.feed(data[split:])...)
		text := 0
		for _, e := range events {
			if e.text != nil {
				text += len(e.text)
				continue
			}
			if e.cmd != telnetSB && (e.cmd < telnetWILL || e.cmd > telnetDONT) {
				t.Fatalf("event %+v", e)
			}
			_ = e.String()
		}
		if text > len(data) || len(p.pending) > len(data) {
			t.Fatalf("%d text bytes, %d pending, from %d", text, len(p.pending), len(data))
		}
		b := telnetBanner(data)
		if strings.IndexByte(b, 0) >= 0 || strings.IndexByte(b, 0x1b) >= 0 || strings.IndexByte(b, 0xff) >= 0 {
			t.Fatalf("banner %q", b)
		}
		telnetPrompt(data)
	})
}
