package grab

import (
	"context"
	"slices"
	"strings"
)

// SMTP (RFC 5321): the greeting, one EHLO for the extensions the server
// offers, QUIT. Never MAIL or RCPT, never STARTTLS or AUTH. Port 465
// speaks TLS first and is the TLS module's; its greeting reaches Claims
// from inside the tunnel. How a "220" greeting is shared with FTP is
// described in ftp.go.
func init() {
	Register(Module{
		Name:   "smtp",
		Ports:  []uint16{25, 587, 2525},
		Claims: smtpClaims,
		Grab:   grabSMTP,
	})
}

// smtpEHLOName is the domain we give in EHLO: .invalid is reserved (RFC
// 2606), so it can never be mistaken for a real sender.
const smtpEHLOName = "vantage.invalid"

// smtpHome are the ports where a 220 greeting is taken as SMTP without
// further evidence.
var smtpHome = map[uint16]bool{25: true, 465: true, 587: true, 2525: true}

// smtpClaims accepts a greeting reply 220 (ready), 554 (no service here)
// or 421 (closing) unless it names FTP and not SMTP.
func smtpClaims(g []byte) bool {
	code, ok := cmdReplyCode(greetTrim(g))
	if !ok || (code != 220 && code != 554 && code != 421) {
		return false
	}
	return cmdGreetingSays(g) != "ftp"
}

func grabSMTP(ctx context.Context, s *Session) (*Result, error) {
	if !smtpHome[s.Target.Addr.Port()] && s.Target.Protocol != "smtp" && cmdGreetingLeans(s.Greeting) == "ftp" {
		return nil, NotMine("a file server's greeting")
	}
	greetSkipSpace(s)
	greet, err := readCmdReply(s)
	if err != nil {
		return nil, err
	}
	return smtpAfterGreeting(s, greet)
}

// smtpAfterGreeting continues an SMTP session whose greeting reply has
// been read: EHLO, then QUIT. FTP calls it when its FEAT found a mail
// server.
func smtpAfterGreeting(s *Session, greet *cmdReply) (*Result, error) {
	r := &Result{Protocol: "smtp", Banner: greet.banner()}
	switch greet.code {
	case 220:
	case 554:
		// "no SMTP service here": only QUIT is allowed (RFC 5321 §3.1)
		greetBye(s, "QUIT\r\n")
		return r, nil
	default:
		return r, nil
	}
	if err := s.Write([]byte("EHLO " + smtpEHLOName + "\r\n")); err != nil {
		return r, nil
	}
	ehlo, err := readCmdReply(s)
	if err != nil {
		return r, nil
	}
	if ehlo.code == 250 {
		r.Set("smtp.ehlo", strings.Join(smtpExtensions(ehlo), ", "))
		r.Match = map[string]string{"smtp.ehlo_reply": ehlo.text()}
	} else {
		r.Set("smtp.ehlo_refused", smtpClip(ehlo.text(), 200))
	}
	greetBye(s, "QUIT\r\n")
	return r, nil
}

// smtpExtensions are the EHLO keywords with their parameters: every line
// of a 250 reply after the first, which names the server (RFC 5321
// §4.1.1.1).
func smtpExtensions(ehlo *cmdReply) []string {
	var out []string
	if len(ehlo.lines) < 2 {
		return nil
	}
	for _, l := range ehlo.lines[1:] {
		if len(l) >= 4 && l[:3] == "250" {
			l = l[4:]
		}
		l = strings.TrimSpace(l)
		if l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

func smtpClip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
