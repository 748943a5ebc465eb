package grab

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
)

// POP3 (RFC 1939): the "+OK" greeting, CAPA (RFC 2449) for the
// capabilities, QUIT. Never USER, PASS, APOP or AUTH.
func init() {
	Register(Module{
		Name:   "pop3",
		Ports:  []uint16{110},
		Claims: pop3Claims,
		Grab:   grabPOP3,
	})
}

const (
	pop3MaxLine  = 2048 // RFC 2449 allows 512 octets per response line
	pop3MaxLines = 100  // lines of a multi-line response
)

// pop3Claims accepts a greeting "+OK ..." (or "-ERR ...", a server that
// refuses the connection): status indicator, then a space or the line end.
func pop3Claims(g []byte) bool {
	g = greetTrim(g)
	for _, st := range []string{"+OK", "-ERR"} {
		if rest, ok := bytes.CutPrefix(g, []byte(st)); ok {
			return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\r' || rest[0] == '\n'
		}
	}
	return false
}

func grabPOP3(ctx context.Context, s *Session) (*Result, error) {
	greetSkipSpace(s)
	greet, err := s.ReadLine(pop3MaxLine)
	if err != nil {
		return nil, err
	}
	if !pop3Claims([]byte(greet)) {
		return nil, NotMine("greeting %q", clip([]byte(greet), 40))
	}
	r := &Result{Protocol: "pop3", Banner: []byte(greet)}
	if strings.HasPrefix(greet, "-ERR") {
		return r, nil
	}
	if pop3APOP(greet) {
		// a timestamp for APOP (RFC 1939 §7): the server offers it
		r.Set("pop3.apop", "yes")
	}
	if err := s.Write([]byte("CAPA\r\n")); err != nil {
		return r, nil
	}
	status, err := s.ReadLine(pop3MaxLine)
	if err != nil {
		return r, nil
	}
	if strings.HasPrefix(status, "+OK") {
		var lines []string
		for i := 0; i <= pop3MaxLines; i++ {
			line, err := s.ReadUntil([]byte{'\n'}, pop3MaxLine)
			if err != nil {
				return r, nil
			}
			lines = append(lines, string(line))
			if l := strings.TrimRight(string(line), "\r\n"); l == "." {
				break
			}
		}
		caps, err := pop3ParseMulti([]byte(strings.Join(lines, "")))
		if err != nil {
			return r, nil // no end to the list: not worth keeping
		}
		r.Set("pop3.capabilities", strings.Join(caps, ", "))
	}
	greetBye(s, "QUIT\r\n")
	return r, nil
}

// pop3ParseMulti parses the body of a multi-line response (the lines
// after the "+OK" status line) up to the terminating ".": byte-stuffed
// lines lose their leading dot (RFC 1939 §3), duplicates and empty lines
// are dropped.
func pop3ParseMulti(b []byte) ([]string, error) {
	var out []string
	for i := 0; i <= pop3MaxLines; i++ {
		if len(b) == 0 {
			return out, errors.New("pop3: no terminating line")
		}
		line, rest, _ := bytes.Cut(b, []byte{'\n'})
		b = rest
		l := string(bytes.TrimRight(line, "\r"))
		if l == "." {
			return out, nil
		}
		l = strings.TrimPrefix(l, ".")
		l = strings.TrimSpace(l)
		if l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out, errors.New("pop3: too many lines")
}

// pop3APOP reports whether a greeting carries an APOP timestamp, a
// msg-id "<...@...>" (RFC 1939 §7, RFC 822 msg-id).
func pop3APOP(greet string) bool {
	i := strings.IndexByte(greet, '<')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(greet[i:], '>')
	return j > 0 && strings.Contains(greet[i:i+j], "@")
}
