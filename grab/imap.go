package grab

import (
	"context"
	"strings"
)

// IMAP (RFC 9051, RFC 3501): the greeting, "a1 CAPABILITY", "a2 LOGOUT".
// Never LOGIN, AUTHENTICATE or STARTTLS. A server that greets with BYE
// is recorded as it is and left alone.
func init() {
	Register(Module{
		Name:   "imap",
		Ports:  []uint16{143},
		Claims: imapClaims,
		Grab:   grabIMAP,
	})
}

const (
	imapMaxLine  = 8192 // a CAPABILITY line can be long
	imapMaxLines = 50   // untagged responses before the tagged one
)

// imapClaims accepts the three greetings of RFC 9051 §7.1: "* OK",
// "* PREAUTH" and "* BYE", in any letter case.
func imapClaims(g []byte) bool {
	_, ok := imapGreeting(string(clip(greetTrim(g), 64)))
	return ok
}

// imapGreeting returns the greeting's status (OK, PREAUTH or BYE).
func imapGreeting(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "* ")
	if !ok {
		return "", false
	}
	for _, st := range []string{"OK", "PREAUTH", "BYE"} {
		if len(rest) >= len(st) && strings.EqualFold(rest[:len(st)], st) {
			after := rest[len(st):]
			if after == "" || after[0] == ' ' || after[0] == '\r' || after[0] == '\n' {
				return st, true
			}
		}
	}
	return "", false
}

func grabIMAP(ctx context.Context, s *Session) (*Result, error) {
	greetSkipSpace(s)
	greet, err := s.ReadLine(imapMaxLine)
	if err != nil {
		return nil, err
	}
	status, ok := imapGreeting(greet)
	if !ok {
		return nil, NotMine("greeting %q", clip([]byte(greet), 40))
	}
	r := &Result{Protocol: "imap", Banner: []byte(greet)}
	caps := imapCapabilities(greet)
	if status == "BYE" {
		r.Set("imap.capabilities", caps)
		return r, nil
	}
	if status == "PREAUTH" {
		r.Set("imap.preauth", "yes")
	}
	if err := s.Write([]byte("a1 CAPABILITY\r\n")); err == nil {
		for i := 0; i < imapMaxLines; i++ {
			line, err := s.ReadLine(imapMaxLine)
			if err != nil {
				break
			}
			if c := imapCapabilities(line); c != "" {
				caps = c
			}
			if imapTagged(line, "a1") {
				break
			}
		}
	}
	r.Set("imap.capabilities", caps)
	greetBye(s, "a2 LOGOUT\r\n")
	return r, nil
}

// imapTagged reports whether line is the tagged completion for tag.
func imapTagged(line, tag string) bool {
	rest, ok := strings.CutPrefix(line, tag+" ")
	if !ok {
		return false
	}
	st, _, _ := strings.Cut(rest, " ")
	st = strings.ToUpper(st)
	return st == "OK" || st == "NO" || st == "BAD"
}

// imapCapabilities returns the capability list of an untagged CAPABILITY
// response ("* CAPABILITY IMAP4rev1 ...") or of a CAPABILITY response
// code in a status response ("* OK [CAPABILITY IMAP4rev1 ...] ready"),
// space-separated as sent; "" when line has none.
func imapCapabilities(line string) string {
	rest, ok := strings.CutPrefix(line, "* ")
	if !ok {
		return ""
	}
	word, args, _ := strings.Cut(rest, " ")
	if strings.EqualFold(word, "CAPABILITY") {
		return imapAtoms(args)
	}
	if _, ok := imapGreeting(line); !ok && !strings.EqualFold(word, "NO") && !strings.EqualFold(word, "BAD") {
		return ""
	}
	if !strings.HasPrefix(args, "[") {
		return ""
	}
	code, _, ok := strings.Cut(args[1:], "]")
	if !ok {
		return ""
	}
	word, args, _ = strings.Cut(code, " ")
	if !strings.EqualFold(word, "CAPABILITY") {
		return ""
	}
	return imapAtoms(args)
}

// imapAtoms keeps the atoms of a capability list, single-spaced, and
// stops at anything an atom cannot hold (RFC 9051 §9: no controls,
// parentheses, braces, quotes, '%', '*' or ']').
func imapAtoms(s string) string {
	var out []string
	for _, a := range strings.Fields(s) {
		if len(out) >= 200 || strings.ContainsAny(a, "(){\"%*]\\") || !imapPrintable(a) {
			break
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

func imapPrintable(a string) bool {
	for i := 0; i < len(a); i++ {
		if a[i] <= ' ' || a[i] >= 0x7f {
			return false
		}
	}
	return true
}
