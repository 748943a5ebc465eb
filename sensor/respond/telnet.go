package respond

import (
	"context"
	"io"
	"strings"

	"github.com/vantagehq/vantage/record"
)

// Telnet (RFC 854, 857, 858): offers ECHO and SUPPRESS-GO-AHEAD, prompts
// "login:" and "Password:", records the first attempt's username and
// password (all attempts, bounded, as the fact "telnet.credentials") and
// answers "Login incorrect" to every attempt. Nothing is ever run.
func init() {
	Register(&Responder{Name: "telnet", Ports: []uint16{23, 2323}, ServerFirst: true,
		Detect: detectTelnet, Serve: serveTelnet})
}

const (
	tIAC  = 255
	tDONT = 254
	tDO   = 253
	tWONT = 252
	tWILL = 251
	tSB   = 250
	tSE   = 240
)

// detectTelnet claims a client that opens with option negotiation.
func detectTelnet(b []byte) bool {
	return len(b) >= 2 && b[0] == tIAC && b[1] >= tWILL && b[1] <= tDONT
}

// telnetNegotiation offers WILL ECHO, WILL SGA and asks DO NAWS.
var telnetNegotiation = []byte{tIAC, tWILL, 1, tIAC, tWILL, 3, tIAC, tDO, 31}

// telnetLineReader strips Telnet commands from the client's bytes and
// splits lines.
type telnetLineReader struct {
	src io.ByteReader
	cr  bool // the last data byte was CR: a following LF or NUL belongs to it
}

func (t *telnetLineReader) next() (byte, error) {
	for {
		b, err := t.src.ReadByte()
		if err != nil {
			return b, err
		}
		if t.cr {
			t.cr = false
			if b == '\n' || b == 0 {
				continue
			}
		}
		t.cr = b == '\r'
		return b, nil
	}
}

// readLine returns one line of data without commands and line ends;
// lines longer than max are cut (the rest is read and dropped, bounded by
// the caller's byte cap). Commands per line are bounded by the byte cap.
func (t *telnetLineReader) readLine(max int) ([]byte, error) {
	var line []byte
	for {
		b, err := t.next()
		if err != nil {
			return line, err
		}
		switch b {
		case tIAC:
			cmd, err := t.next()
			if err != nil {
				return line, err
			}
			switch {
			case cmd == tIAC:
				if len(line) < max {
					line = append(line, tIAC)
				}
			case cmd >= tWILL && cmd <= tDONT:
				if _, err := t.next(); err != nil {
					return line, err
				}
			case cmd == tSB:
				// Subnegotiation runs to IAC SE; bounded.
				prev := byte(0)
				for i := 0; ; i++ {
					x, err := t.next()
					if err != nil {
						return line, err
					}
					if prev == tIAC && x == tSE {
						break
					}
					if prev == tIAC && x == tIAC {
						x = 0
					}
					prev = x
					if i > 1024 {
						return line, ErrLimit
					}
				}
			}
		case '\r':
			// CR LF or CR NUL end a line; a bare CR too.
			return line, nil
		case '\n':
			return line, nil
		case 0:
		case 8, 127: // backspace, delete: edit as a terminal would
			if len(line) > 0 {
				line = line[:len(line)-1]
			}
		default:
			if len(line) < max {
				line = append(line, b)
			}
		}
	}
}

func serveTelnet(ctx context.Context, c *Conn, ev *record.Event) error {
	tr := &telnetLineReader{src: c}
	if err := c.Write(append(append([]byte{}, telnetNegotiation...), "\r\nlogin: "...)); err != nil {
		return err
	}
	var creds []string
	defer func() {
		if len(creds) > 0 {
			c.Fact("telnet.credentials", strings.Join(creds, "\n"))
		}
	}()
	for round := 0; round < c.Lim.MaxRounds; round++ {
		user, err := tr.readLine(128)
		if err != nil {
			return err
		}
		if len(user) == 0 {
			if err := c.Write([]byte("login: ")); err != nil {
				return err
			}
			continue
		}
		if err := c.Write([]byte("Password: ")); err != nil {
			return err
		}
		pass, err := tr.readLine(128)
		if ev.Username == "" {
			ev.Username = clean(string(user), 128)
			ev.Password = clean(string(pass), 128)
		}
		creds = append(creds, clean(string(user), 128)+":"+clean(string(pass), 128))
		if err != nil {
			return err
		}
		if err := c.Write([]byte("\r\nLogin incorrect\r\nlogin: ")); err != nil {
			return err
		}
	}
	return nil
}
