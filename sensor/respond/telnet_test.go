package respond

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestTelnetLogin is a scripted client as a Mirai-style bot behaves: it
// waits for the prompts, answers them and tries twice.
func TestTelnetLogin(t *testing.T) {
	addr, ch := listen(t, 23, Limits{MaxRounds: 2})
	c := dial(t, addr)
	got := readUntil(t, c, "login: ")
	if !strings.HasPrefix(got, string(telnetNegotiation)) {
		t.Errorf("no option negotiation: %q", got)
	}
	// The client answers the negotiation, then the prompts; CR NUL and
	// an escaped IAC inside the password.
	c.Write([]byte{tIAC, tDO, 1, tIAC, tDO, 3, tIAC, tWILL, 31, tIAC, tSB, 31, 0, 80, 0, 24, tIAC, tSE})
	c.Write([]byte("root\r\x00"))
	readUntil(t, c, "Password: ")
	c.Write([]byte("xc3511\xff\xff\r\n"))
	readUntil(t, c, "Login incorrect\r\nlogin: ")
	c.Write([]byte("admin\r\nadmiX\x7fn\r\n"))
	readUntil(t, c, "Login incorrect")
	s := wait(t, ch, 5*time.Second)
	if s.ev.Username != "root" || s.ev.Password != "xc3511\uFFFD" {
		t.Errorf("creds %q %q", s.ev.Username, s.ev.Password)
	}
	if s.info.Facts["telnet.credentials"] != "root:xc3511\uFFFD\nadmin:admin" {
		t.Errorf("facts %q", s.info.Facts)
	}
}

func TestTelnetLineReader(t *testing.T) {
	in := "a\rb\r\nc\nd\r\x00\xff\xfa\x18\x01\xff\xf0e\r\n"
	tr := &telnetLineReader{src: bytes.NewReader([]byte(in))}
	var got []string
	for {
		l, err := tr.readLine(16)
		if err != nil {
			break
		}
		got = append(got, string(l))
	}
	if strings.Join(got, "|") != "a|b|c|d|e" {
		t.Errorf("got %q", got)
	}
}
