package grab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// FTP (RFC 959): the greeting reply, then FEAT (RFC 2389) for the
// features, then QUIT. Never USER, not even anonymous.
//
// FTP and SMTP both greet with "220 ...", so which module gets such a
// greeting is decided in three steps:
//
//  1. Claims rejects a greeting that names the other protocol outright:
//     FTP's rejects "SMTP"/"ESMTP" or an enhanced status code (RFC 3463,
//     "421 4.3.2 ..."), which only mail servers use; SMTP's rejects "FTP".
//     A greeting naming both, or neither, is claimed by both.
//  2. The grabber offers a greeting to the modules that own the port first
//     (ftp on 21, smtp on 25/587/2525), then to the others by name, so
//     "ftp" before "smtp" on a port neither owns. Grab, before it sends
//     anything, steps aside (NotMine) on weaker evidence for the other
//     protocol when it is not on one of its own ports and was not asked
//     for by name: for FTP that is a mail word ("mail", "Postfix", ...)
//     or a greeting that starts with a domain name, as RFC 5321 §4.2
//     requires of SMTP's; for SMTP it is a file-transfer word.
//  3. A greeting with no evidence either way on a third port goes to FTP.
//     Its FEAT then settles it: a mail server refuses it with an enhanced
//     status code ("500 5.5.1 ..."), and FTP hands the connection over to
//     the SMTP grabber (smtpAfterGreeting), which records it as smtp.
func init() {
	Register(Module{
		Name:   "ftp",
		Ports:  []uint16{21},
		Claims: ftpClaims,
		Grab:   grabFTP,
	})
}

const (
	cmdMaxLine  = 2048 // one reply line
	cmdMaxLines = 100  // lines in one multi-line reply
)

// ftpHome are the ports where a 220 greeting is taken as FTP without
// further evidence: the module's own and FTP's usual others (990 is FTP
// over TLS, whose greeting arrives here through the TLS module).
var ftpHome = map[uint16]bool{21: true, 990: true, 2121: true}

func ftpClaims(g []byte) bool {
	code, ok := cmdReplyCode(greetTrim(g))
	if !ok || (code != 220 && code != 120 && code != 421) {
		return false
	}
	return cmdGreetingSays(g) != "smtp"
}

func grabFTP(ctx context.Context, s *Session) (*Result, error) {
	if !ftpHome[s.Target.Addr.Port()] && s.Target.Protocol != "ftp" && cmdGreetingLeans(s.Greeting) == "smtp" {
		return nil, NotMine("a mail server's greeting")
	}
	greetSkipSpace(s)
	greet, err := readCmdReply(s)
	if err != nil {
		return nil, err
	}
	if greet.code == 120 {
		// "service ready in nnn minutes": the 220 follows
		if next, err := readCmdReply(s); err == nil {
			greet.raw = append(greet.raw, next.raw...)
			greet.code = next.code
		}
	}
	r := &Result{Protocol: "ftp", Banner: greet.banner()}
	if greet.code != 220 {
		// 421: service not available; nothing more to ask
		return r, nil
	}
	if err := s.Write([]byte("FEAT\r\n")); err != nil {
		return r, nil
	}
	feat, err := readCmdReply(s)
	if err != nil {
		return r, nil
	}
	if feat.code/100 == 5 && feat.enhanced() && cmdGreetingSays(s.Greeting) != "ftp" {
		// a mail server: "500 5.5.1 Command unrecognized"
		return smtpAfterGreeting(s, greet)
	}
	if feat.code == 211 {
		r.Set("ftp.features", strings.Join(ftpFeatures(feat), ", "))
	}
	greetBye(s, "QUIT\r\n")
	return r, nil
}

// greetSkipSpace consumes whitespace a server sends before its greeting
// (a blank line first is not rare), at most 512 bytes. The greeting
// modules' Claims skip it too.
func greetSkipSpace(s *Session) {
	for skipped := 0; skipped < 512; {
		b, err := s.Peek()
		if err != nil {
			return
		}
		k := min(len(b)-len(bytes.TrimLeft(b, " \t\r\n")), 512-skipped)
		if k == 0 {
			return
		}
		if _, err := s.ReadFull(k); err != nil {
			return
		}
		skipped += k
	}
}

// greetTrim is a greeting without the whitespace greetSkipSpace skips.
func greetTrim(g []byte) []byte {
	return bytes.TrimLeft(clip(g, 1024), " \t\r\n")
}

// greetBye is sent after the last question (QUIT, LOGOUT): the answer is
// waited for briefly, so that the server sees an orderly end, but a
// server that never answers does not hold the connection.
func greetBye(s *Session, cmd string) {
	if s.Write([]byte(cmd)) == nil {
		s.ReadFor(500*time.Millisecond, 1)
	}
}

// ftpFeatures are the feature lines of a FEAT reply: the lines between
// "211-..." and "211 End", each starting with a space (RFC 2389 §3.2).
func ftpFeatures(feat *cmdReply) []string {
	var out []string
	if len(feat.lines) < 3 {
		return nil
	}
	for _, l := range feat.lines[1 : len(feat.lines)-1] {
		f := strings.TrimSpace(l)
		if f != "" && !slices.Contains(out, f) && len(out) < cmdMaxLines {
			out = append(out, f)
		}
	}
	return out
}

// cmdReply is one FTP or SMTP reply: a three-digit code and its lines.
// FTP and SMTP share the format (RFC 959 §4.2, RFC 5321 §4.2): "ddd text"
// alone, or "ddd-text" lines up to one that starts "ddd " with the same
// code. FTP allows any text in between; SMTP puts the code on every line.
type cmdReply struct {
	code  int
	lines []string // as received, without line ends
	raw   []byte   // as received, with line ends
	done  bool
}

// add takes one line (with its line end, as ReadUntil gives it).
func (r *cmdReply) add(line []byte) error {
	text := strings.TrimRight(string(line), "\r\n")
	if len(r.lines) == 0 {
		code, ok := cmdReplyCode([]byte(text))
		if !ok {
			return NotMine("not a reply: %q", clip([]byte(text), 40))
		}
		r.code = code
		r.done = len(text) == 3 || text[3] == ' '
	} else if len(text) >= 3 && text[:3] == r.lines[0][:3] && (len(text) == 3 || text[3] == ' ') {
		r.done = true
	}
	if len(r.lines) >= cmdMaxLines {
		return fmt.Errorf("%w: more than %d reply lines", ErrTooLarge, cmdMaxLines)
	}
	r.lines = append(r.lines, text)
	r.raw = append(r.raw, line...)
	return nil
}

// text is the reply's text without codes, lines joined by "\n".
func (r *cmdReply) text() string {
	var b strings.Builder
	for i, l := range r.lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		if len(l) >= 3 && l[:3] == r.lines[0][:3] && (len(l) == 3 || l[3] == ' ' || l[3] == '-') {
			l = l[min(4, len(l)):]
		}
		b.WriteString(l)
	}
	return b.String()
}

// banner is the reply as received without its final line end.
func (r *cmdReply) banner() []byte {
	return bytes.TrimRight(r.raw, "\r\n")
}

// enhanced reports whether the reply carries an enhanced mail system
// status code (RFC 3463: "5.5.1" after the reply code), which only SMTP
// servers use.
func (r *cmdReply) enhanced() bool {
	return len(r.lines) > 0 && cmdEnhancedCode(r.lines[0])
}

// parseCmdReply parses one reply from the start of b; the unit the fuzz
// target drives, as readCmdReply does line by line over the session.
func parseCmdReply(b []byte) (*cmdReply, error) {
	r := &cmdReply{}
	for !r.done {
		if len(b) == 0 {
			return r, errors.New("reply: truncated")
		}
		line, rest, found := bytes.Cut(b, []byte{'\n'})
		if found {
			line = b[:len(line)+1]
		}
		if len(line) > cmdMaxLine {
			return r, ErrTooLarge
		}
		if err := r.add(line); err != nil {
			return r, err
		}
		b = rest
	}
	return r, nil
}

func readCmdReply(s *Session) (*cmdReply, error) {
	r := &cmdReply{}
	for !r.done {
		line, err := s.ReadUntil([]byte{'\n'}, cmdMaxLine)
		if err != nil {
			return r, err
		}
		if err := r.add(line); err != nil {
			return r, err
		}
	}
	return r, nil
}

// cmdReplyCode returns the code of a reply's first line: three digits
// (the first 1-5) followed by a space, a dash or the line end.
func cmdReplyCode(g []byte) (int, bool) {
	if len(g) < 3 {
		return 0, false
	}
	for i := 0; i < 3; i++ {
		if g[i] < '0' || g[i] > '9' {
			return 0, false
		}
	}
	if g[0] < '1' || g[0] > '5' {
		return 0, false
	}
	if len(g) > 3 && g[3] != ' ' && g[3] != '-' && g[3] != '\r' && g[3] != '\n' {
		return 0, false
	}
	return int(g[0]-'0')*100 + int(g[1]-'0')*10 + int(g[2]-'0'), true
}

// cmdEnhancedCode reports whether a reply line's text starts with an
// enhanced status code: class.subject.detail, class 2, 4 or 5.
func cmdEnhancedCode(line string) bool {
	if len(line) < 4 {
		return false
	}
	f := strings.Fields(line[4:])
	if len(f) == 0 {
		return false
	}
	parts := strings.Split(f[0], ".")
	if len(parts) != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// cmdGreetingSays is what a 220-style greeting names outright: "smtp" for
// SMTP/ESMTP or an enhanced status code, "ftp" for FTP, "" for neither
// or both.
func cmdGreetingSays(g []byte) string {
	g = clip(g, 1024)
	up := strings.ToUpper(string(g))
	smtp := strings.Contains(up, "SMTP")
	if !smtp {
		for _, l := range strings.Split(string(g), "\n") {
			if cmdEnhancedCode(l) {
				smtp = true
				break
			}
		}
	}
	ftp := strings.Contains(up, "FTP")
	switch {
	case smtp && !ftp:
		return "smtp"
	case ftp && !smtp:
		return "ftp"
	}
	return ""
}

// Words that suggest a mail or a file server without naming the protocol.
var (
	cmdMailWords = []string{"MAIL", "POSTFIX", "EXIM", "MDAEMON", "ZIMBRA", "HARAKA"}
	cmdFileWords = []string{"FILEZILLA", "SERV-U", "FILE TRANSFER", "FILE SERVER", "WAR-FTPD", "NCFTPD", "GLFTPD", "WU-"}
)

// cmdGreetingLeans is what a 220 greeting suggests: cmdGreetingSays, or else
// "smtp" for a mail word or a leading domain name (RFC 5321 §4.2: the
// greeting starts with the server's name), "ftp" for a file-server word.
func cmdGreetingLeans(g []byte) string {
	if k := cmdGreetingSays(g); k != "" {
		return k
	}
	g = greetTrim(g)
	up := strings.ToUpper(string(g))
	for _, w := range cmdFileWords {
		if strings.Contains(up, w) {
			return "ftp"
		}
	}
	for _, w := range cmdMailWords {
		if strings.Contains(up, w) {
			return "smtp"
		}
	}
	if len(g) > 4 {
		first, _, _ := strings.Cut(strings.TrimSpace(string(g[4:])), " ")
		first = strings.TrimRight(first, "\r\n")
		if first, _, _ = strings.Cut(first, "\r"); cmdDomainName(first) {
			return "smtp"
		}
	}
	return ""
}

// cmdDomainName reports whether s looks like a host's domain name with at
// least two labels, or an address literal "[...]".
func cmdDomainName(s string) bool {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") && len(s) > 2 {
		return true
	}
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	if len(labels) < 2 || len(s) > 253 {
		return false
	}
	letters := false
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
				letters = true
			case c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return false
			}
		}
	}
	return letters
}
