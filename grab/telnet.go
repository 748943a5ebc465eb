package grab

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Telnet (RFC 854, RFC 855): the server usually opens with option
// negotiation. We refuse every option it asks for (DO → WONT, WILL →
// DONT), once per option, which RFC 854 allows any party to do, record
// what it asked for, and read its text until a prompt ("login:") or a
// quiet moment. Never a user name, never a password.
//
// A greeting that starts with IAC is telnet anywhere. Plain text is
// telnet on telnet's ports when no other module claims it, and elsewhere
// only when it ends in a login prompt. Claims takes any text, so that
// Grab, which knows the port, can decide; it steps aside (NotMine)
// before sending anything, and the grabber offers the greeting on.
func init() {
	Register(Module{
		Name:   "telnet",
		Ports:  []uint16{23},
		Claims: telnetClaims,
		Grab:   grabTelnet,
	})
}

// Telnet commands (RFC 854).
const (
	telnetSE   = 240
	telnetSB   = 250
	telnetWILL = 251
	telnetWONT = 252
	telnetDO   = 253
	telnetDONT = 254
	telnetIAC  = 255
)

const (
	telnetRounds     = 12                     // reads, each answered
	telnetQuiet      = 600 * time.Millisecond // a read that brings nothing ends it
	telnetSettle     = 80 * time.Millisecond  // what follows the first bytes closely
	telnetMaxText    = 4096                   // text kept for the banner
	telnetMaxOptions = 32                     // distinct requests recorded
	telnetMaxSB      = 512                    // a subnegotiation longer than this is cut off
)

// telnetHome are the ports where plain text is telnet (992 is telnet
// over TLS, whose greeting arrives here through the TLS module).
var telnetHome = map[uint16]bool{23: true, 992: true, 2323: true}

// telnetClaims accepts a greeting that starts with an IAC command, or
// text, with or without commands in it (grabTelnet sorts the text out).
func telnetClaims(g []byte) bool {
	if len(g) > 0 && g[0] == telnetIAC {
		// a command, or the start of one cut off by the first read
		return len(g) == 1 || g[1] >= telnetSE && g[1] < telnetIAC
	}
	text, _ := telnetSplit(g)
	return telnetIsText(text)
}

// telnetSplit parses a greeting into its text and its option commands.
func telnetSplit(g []byte) (text []byte, options int) {
	var p telnetParser
	for _, e := range p.feed(clip(g, 4096)) {
		if e.text != nil {
			text = append(text, e.text...)
		} else {
			options++
		}
	}
	return text, options
}

// telnetIsText reports whether g is terminal text: no NUL or other
// control bytes beyond line ends, tabs, bell, backspace, escape.
func telnetIsText(g []byte) bool {
	if len(bytes.TrimSpace(g)) == 0 {
		return false
	}
	for _, c := range clip(g, 1024) {
		if c < 0x20 && c != '\r' && c != '\n' && c != '\t' && c != 0x07 && c != 0x08 && c != 0x1b || c == 0x7f {
			return false
		}
	}
	return true
}

func grabTelnet(ctx context.Context, s *Session) (*Result, error) {
	g := s.Greeting
	if _, options := telnetSplit(g); options == 0 && (len(g) == 0 || g[0] != telnetIAC) {
		if err := telnetTextIsMine(s); err != nil {
			return nil, err
		}
	}
	var (
		p       telnetParser
		text    []byte
		asked   []string
		answers = map[[2]byte]bool{}
	)
	for round := 0; round < telnetRounds; round++ {
		// the first bytes as soon as they come, then what follows them
		// closely: a server's answer to one round usually comes at once
		data, err := s.ReadFor(telnetQuiet, 1)
		if len(data) == 0 {
			break
		}
		if err == nil {
			more, merr := s.ReadFor(telnetSettle, 8192)
			data = append(data, more...)
			if merr != nil && !isTimeout(merr) {
				err = merr
			}
		}
		events := p.feed(data)
		var out []byte
		for _, e := range events {
			if e.text != nil {
				if room := telnetMaxText - len(text); room > 0 {
					text = append(text, clip(e.text, room)...)
				}
				continue
			}
			name := e.String()
			if !slices.Contains(asked, name) && len(asked) < telnetMaxOptions {
				asked = append(asked, name)
			}
			if a, ok := telnetRefusal(e); ok && !answers[[2]byte{a, e.opt}] {
				answers[[2]byte{a, e.opt}] = true
				out = append(out, telnetIAC, a, e.opt)
			}
		}
		if len(out) > 0 {
			if werr := s.Write(out); werr != nil {
				break
			}
		}
		if telnetPrompt(text) || err != nil {
			break
		}
	}
	r := &Result{Protocol: "telnet"}
	if banner := telnetBanner(text); banner != "" {
		r.Banner = []byte(banner)
	}
	r.Set("telnet.options", strings.Join(asked, ", "))
	return r, nil
}

// telnetTextIsMine decides a greeting without option negotiation before
// anything is sent: on telnet's ports it is telnet unless another module
// claims it; elsewhere only a login prompt makes it telnet.
func telnetTextIsMine(s *Session) error {
	g := s.Greeting
	if !telnetIsText(g) {
		return NotMine("greeting is not text")
	}
	if s.Target.Protocol == "telnet" {
		return nil
	}
	if !telnetHome[s.Target.Addr.Port()] {
		if telnetPrompt(g) {
			return nil
		}
		return NotMine("text without a login prompt off telnet's ports")
	}
	for _, m := range Modules() {
		if m.Name != "telnet" && m.transport() == "tcp" && m.Claims != nil && m.Claims(g) {
			return NotMine("greeting claimed by %s", m.Name)
		}
	}
	return nil
}

// telnetRefusal is our answer to a request: WONT to DO, DONT to WILL.
// WONT and DONT need none, as we have every option off already.
func telnetRefusal(e telnetEvent) (byte, bool) {
	switch e.cmd {
	case telnetDO:
		return telnetWONT, true
	case telnetWILL:
		return telnetDONT, true
	}
	return 0, false
}

// telnetPrompt reports whether text ends with a prompt for a login, a
// password or a command.
func telnetPrompt(text []byte) bool {
	t := strings.TrimRight(string(telnetPlain(text)), " \t\r\n")
	if t == "" {
		return false
	}
	last := t[strings.LastIndexByte(t, '\n')+1:]
	low := strings.ToLower(last)
	if strings.HasSuffix(low, ":") {
		for _, w := range []string{"login", "user", "name", "password", "passcode", "account"} {
			if strings.Contains(low, w) {
				return true
			}
		}
		return false
	}
	return len(last) <= 64 && strings.ContainsAny(last[len(last)-1:], ">#$%")
}

// telnetBanner is the text as a banner: escape sequences and control
// bytes dropped, blank lines at either end trimmed.
func telnetBanner(text []byte) string {
	return strings.Trim(string(telnetPlain(text)), " \t\r\n")
}

// telnetPlain drops ANSI escape sequences (ESC [ ... final byte, or ESC
// and one byte) and control bytes other than tab, CR and LF.
func telnetPlain(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == 0x1b:
			if i+1 < len(b) && b[i+1] == '[' {
				i += 2
				for i < len(b) && (b[i] < 0x40 || b[i] > 0x7e) {
					i++
				}
			} else {
				i++
			}
		case c == '\t' || c == '\r' || c == '\n':
			out = append(out, c)
		case c < 0x20 || c == 0x7f || c == telnetIAC:
		default:
			out = append(out, c)
		}
	}
	return out
}

// telnetEvent is a piece of the stream: text, or a command with its
// option (WILL/WONT/DO/DONT/SB), or another command (opt unused).
type telnetEvent struct {
	text []byte
	cmd  byte
	opt  byte
}

func (e telnetEvent) String() string {
	switch e.cmd {
	case telnetWILL:
		return "WILL " + telnetOptionName(e.opt)
	case telnetWONT:
		return "WONT " + telnetOptionName(e.opt)
	case telnetDO:
		return "DO " + telnetOptionName(e.opt)
	case telnetDONT:
		return "DONT " + telnetOptionName(e.opt)
	case telnetSB:
		return "SB " + telnetOptionName(e.opt)
	}
	return fmt.Sprintf("CMD %d", e.cmd)
}

// telnetParser splits a byte stream into text and commands, keeping an
// incomplete command at the end of one read for the next.
type telnetParser struct {
	pending []byte
	inSB    bool // skipping the rest of an overlong subnegotiation
}

// feed parses data after what is pending. Text comes out with IAC IAC
// undone to 0xFF and CR NUL to CR; commands other than the option ones
// (NOP, GA, AYT, ...) are dropped; a subnegotiation is reported once by
// its option and its content skipped.
func (p *telnetParser) feed(data []byte) []telnetEvent {
	b := append(p.pending, data...)
	p.pending = nil
	if p.inSB {
		end := telnetSBEnd(b)
		if end < 0 {
			if len(b) > 0 && b[len(b)-1] == telnetIAC {
				p.pending = []byte{telnetIAC}
			}
			return nil
		}
		b, p.inSB = b[end:], false
	}
	var events []telnetEvent
	var text []byte
	flush := func() {
		if len(text) > 0 {
			events = append(events, telnetEvent{text: text})
			text = nil
		}
	}
	i := 0
	for i < len(b) {
		c := b[i]
		if c == '\r' && i+1 < len(b) && b[i+1] == 0 {
			text = append(text, '\r')
			i += 2
			continue
		}
		if c != telnetIAC {
			text = append(text, c)
			i++
			continue
		}
		if i+1 >= len(b) {
			break // IAC at the end: wait for more
		}
		cmd := b[i+1]
		incomplete := false
		switch {
		case cmd == telnetIAC:
			text = append(text, telnetIAC)
			i += 2
		case cmd >= telnetWILL && cmd <= telnetDONT:
			if i+2 >= len(b) {
				incomplete = true
				break
			}
			flush()
			events = append(events, telnetEvent{cmd: cmd, opt: b[i+2]})
			i += 3
		case cmd == telnetSB:
			if i+2 >= len(b) {
				incomplete = true
				break
			}
			end := telnetSBEnd(b[i+2:])
			if end < 0 {
				if len(b)-i > telnetMaxSB {
					// an endless subnegotiation: report it, skip it
					flush()
					events = append(events, telnetEvent{cmd: telnetSB, opt: b[i+2]})
					p.inSB = true
					if b[len(b)-1] == telnetIAC {
						p.pending = []byte{telnetIAC}
					}
					return events
				}
				incomplete = true
				break
			}
			flush()
			events = append(events, telnetEvent{cmd: telnetSB, opt: b[i+2]})
			i += 2 + end
		default:
			i += 2 // NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, SE out of place
		}
		if incomplete {
			break
		}
	}
	flush()
	if i < len(b) {
		p.pending = append([]byte{}, b[i:]...)
	}
	return events
}

// telnetSBEnd returns the length of a subnegotiation's body up to and
// including IAC SE, or -1 when it has not ended yet.
func telnetSBEnd(b []byte) int {
	for j := 0; j+1 < len(b); j++ {
		if b[j] == telnetIAC {
			if b[j+1] == telnetSE {
				return j + 2
			}
			j++ // IAC IAC inside the data
		}
	}
	return -1
}

// telnetOptionName names an option (IANA Telnet Options).
func telnetOptionName(o byte) string {
	if n, ok := telnetOptions[o]; ok {
		return n
	}
	return strconv.Itoa(int(o))
}

var telnetOptions = map[byte]string{
	0: "BINARY", 1: "ECHO", 2: "RECONNECT", 3: "SGA", 4: "AMSN", 5: "STATUS",
	6: "TIMING-MARK", 7: "RCTE", 8: "NAOL", 9: "NAOP", 10: "NAOCRD",
	11: "NAOHTS", 12: "NAOHTD", 13: "NAOFFD", 14: "NAOVTS", 15: "NAOVTD",
	16: "NAOLFD", 17: "EXTEND-ASCII", 18: "LOGOUT", 19: "BM", 20: "DET",
	21: "SUPDUP", 22: "SUPDUP-OUTPUT", 23: "SEND-LOCATION", 24: "TTYPE",
	25: "EOR", 26: "TUID", 27: "OUTMRK", 28: "TTYLOC", 29: "3270-REGIME",
	30: "X.3-PAD", 31: "NAWS", 32: "TSPEED", 33: "LFLOW", 34: "LINEMODE",
	35: "XDISPLOC", 36: "OLD-ENVIRON", 37: "AUTHENTICATION", 38: "ENCRYPT",
	39: "NEW-ENVIRON", 40: "TN3270E", 41: "XAUTH", 42: "CHARSET", 43: "RSP",
	44: "COM-PORT", 45: "SLE", 46: "START-TLS", 47: "KERMIT", 48: "SEND-URL",
	49: "FORWARD-X", 138: "PRAGMA-LOGON", 139: "SSPI-LOGON",
	140: "PRAGMA-HEARTBEAT", 255: "EXOPL",
}
