// Package triage reads what a defender's edge logged and finds the source
// addresses in it, so that each can be asked about: is it Internet-wide
// noise, a known scanner, something malicious, or seen nowhere else (and
// so possibly aimed at you)? It reads, line by line and format by format:
//
//   - web server access logs (nginx and Apache "combined" and "common"):
//     the client address opens the line;
//   - iptables and nftables LOG lines: SRC= (and DPT= for the port);
//   - OpenSSH auth logs: "Failed password for ... from IP port N",
//     "Invalid user ... from IP", "Connection closed by [authenticating
//     user ...] IP port N" and the like;
//   - plain lists of addresses and CSV: the first field that is an address.
//
// Lines it cannot read are counted (the first few kept as examples), never
// fatal; lines are bounded. A Tally streams its input and keeps only
// per-source state, so its memory grows with the distinct sources of a
// log, not with the log's size. Classify and Sort (classify.go) turn the
// sensors' answers into verdicts; the CLI and the API share them.
package triage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxLine bounds one line; longer lines are skipped (counted).
const MaxLine = 64 << 10

// MaxPorts bounds the destination ports kept per source.
const MaxPorts = 64

// MaxExamples is how many malformed lines a Tally keeps as examples, and
// exampleLen how much of each.
const (
	MaxExamples = 5
	exampleLen  = 200
)

// The formats (Source.Kinds, Stats.Formats).
const (
	FormatHTTP     = "http"
	FormatFirewall = "firewall"
	FormatSSH      = "ssh"
	FormatList     = "list"
)

// ErrTooManySources is returned by Tally.Read when a log names more
// distinct sources than the tally's MaxSources.
var ErrTooManySources = errors.New("too many distinct source addresses")

// Source is one address found in the logs, and all that is kept of it.
type Source struct {
	Addr      netip.Addr `json:"ip"`
	Hits      int        `json:"hits"`            // lines that named it
	Kinds     []string   `json:"kinds"`           // http, firewall, ssh, list
	Ports     []uint16   `json:"ports,omitempty"` // destination ports, when the log says (firewall, ssh); at most MaxPorts
	File      string     `json:"file,omitempty"`  // the log of its first line (when named)
	FirstLine int        `json:"first_line"`      // 1-based, in File
	LastFile  string     `json:"last_file,omitempty"`
	LastLine  int        `json:"last_line"` // in LastFile, or File when LastFile is empty

	read int // the tally's read that saw it last
}

// Stats says how the reading went.
type Stats struct {
	Lines, Matched, Unreadable, TooLong int
	Addrs                               int            // distinct source addresses
	Formats                             map[string]int // matched lines per format
	Examples                            []Malformed    // the first MaxExamples malformed lines
}

// Malformed counts the lines that were not understood (blank lines and
// # comments are not counted).
func (s Stats) Malformed() int { return s.Unreadable + s.TooLong }

// Malformed is an example of a line that was not understood.
type Malformed struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line"`
	Text string `json:"text"` // its first 200 bytes, valid UTF-8
}

// Tally gathers the sources of one or more logs. The zero value is not
// ready: use NewTally.
type Tally struct {
	Stats          // over every log read
	MaxSources int // 0: no limit

	by    map[netip.Addr]*Source
	order []*Source
	buf   []byte
	reads int
}

// NewTally returns an empty tally.
func NewTally() *Tally {
	return &Tally{Stats: Stats{Formats: map[string]int{}}, by: map[netip.Addr]*Source{}}
}

// Sources are the sources found so far, in the order they first appeared.
func (t *Tally) Sources() []*Source { return t.order }

// Read finds the sources in one log, in the order they first appear.
func Read(r io.Reader) ([]*Source, Stats, error) {
	t := NewTally()
	st, err := t.Read("", r)
	return t.order, st, err
}

// Read streams one log (name labels its lines; "" for none) into the
// tally and returns that log's stats. An error (reading, or more sources
// than MaxSources) stops it; what was read so far stays in the tally.
func (t *Tally) Read(name string, r io.Reader) (Stats, error) {
	st := Stats{Formats: map[string]int{}}
	t.reads++
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, tooLong, err := t.readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			t.add(st)
			return st, fmt.Errorf("triage: line %d: %w", st.Lines+1, err)
		}
		if len(line) == 0 && !tooLong && errors.Is(err, io.EOF) {
			break
		}
		st.Lines++
		if tooLong {
			st.TooLong++
			t.example(&st, name, st.Lines, fmt.Sprintf("(a line longer than %d bytes)", MaxLine))
		} else if addr, kind, port, ok := parseLine(string(line)); ok {
			st.Matched++
			st.Formats[kind]++
			s := t.by[addr]
			if s == nil {
				if t.MaxSources > 0 && len(t.order) >= t.MaxSources {
					t.add(st)
					return st, fmt.Errorf("triage: line %d: %w (more than %d)", st.Lines, ErrTooManySources, t.MaxSources)
				}
				s = &Source{Addr: addr, File: name, FirstLine: st.Lines}
				t.by[addr] = s
				t.order = append(t.order, s)
			}
			s.Hits++
			if s.read != t.reads {
				s.read = t.reads
				st.Addrs++
			}
			s.LastLine = st.Lines
			if name != s.File {
				s.LastFile = name
			} else {
				s.LastFile = ""
			}
			if !slices.Contains(s.Kinds, kind) {
				s.Kinds = withKind(s.Kinds, kind)
			}
			if port != 0 && len(s.Ports) < MaxPorts && !slices.Contains(s.Ports, port) {
				s.Ports = append(s.Ports, port)
			}
		} else if trimmed := strings.TrimSpace(string(line)); trimmed != "" && !strings.HasPrefix(trimmed, "#") {
			st.Unreadable++
			t.example(&st, name, st.Lines, trimmed)
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	t.add(st)
	return st, nil
}

// example keeps a malformed line, while the tally has fewer than MaxExamples.
func (t *Tally) example(st *Stats, name string, line int, text string) {
	if len(t.Examples)+len(st.Examples) >= MaxExamples {
		return
	}
	if len(text) > exampleLen {
		text = text[:exampleLen]
		for i := 1; i < utf8.UTFMax && len(text) > 0; i++ { // do not leave half a character
			if r, size := utf8.DecodeLastRuneInString(text); r != utf8.RuneError || size != 1 {
				break
			}
			text = text[:len(text)-1]
		}
	}
	st.Examples = append(st.Examples, Malformed{File: name, Line: line, Text: strings.Clone(strings.ToValidUTF8(text, "\uFFFD"))})
}

// add adds one log's stats to the tally's.
func (t *Tally) add(st Stats) {
	t.Lines += st.Lines
	t.Matched += st.Matched
	t.Unreadable += st.Unreadable
	t.TooLong += st.TooLong
	t.Addrs = len(t.order)
	for k, n := range st.Formats {
		t.Formats[k] += n
	}
	t.Examples = append(t.Examples, st.Examples...)
}

// kindLists interns the lists of kinds (at most 65 orderings of four), so
// a source's Kinds costs no memory of its own: sources are what a tally's
// memory grows with. The lists are shared: never modify one in place.
var kindLists sync.Map // "http,ssh" -> []string{"http", "ssh"}

// withKind is kinds and kind, interned; len == cap, so an append copies.
func withKind(kinds []string, kind string) []string {
	key := strings.Join(kinds, ",") + "," + kind
	if l, ok := kindLists.Load(key); ok {
		return l.([]string)
	}
	l := slices.Clip(append(slices.Clone(kinds), kind))
	v, _ := kindLists.LoadOrStore(key, l)
	return v.([]string)
}

// readLine reads one line without its end into the tally's buffer (valid
// until the next call); a line over MaxLine is consumed and reported as
// too long.
func (t *Tally) readLine(br *bufio.Reader) ([]byte, bool, error) {
	t.buf = t.buf[:0]
	for {
		chunk, isPrefix, err := br.ReadLine()
		if len(t.buf)+len(chunk) > MaxLine {
			for isPrefix && err == nil { // drain the rest of the line
				_, isPrefix, err = br.ReadLine()
			}
			return nil, true, err
		}
		t.buf = append(t.buf, chunk...)
		if err != nil || !isPrefix {
			return t.buf, false, err
		}
	}
}

// reSSH reads an sshd line from where "sshd" starts (sshAddr finds the
// places); firewall and web lines are read by hand (firewallAddr, webAddr,
// dpt), which is several times faster than regular expressions. The
// expressions they stand for (tested against them, FuzzParseLine):
//
//	firewall  \bSRC=([0-9a-fA-F.:]+)   and   \bDPT=(\d{1,5})\b
//	ssh       \bsshd(?:-session)?\[\d+\]:.*?(?:from|by)\s+(?:invalid user \S+ |authenticating user \S+ |user \S+ )?\[?([0-9a-fA-F.:]+?)\]?(?:\s+port\s+\d+|$|\s)
//	web       ^(\S+) \S+ \S+ \[[^\]]+\] "
var reSSH = regexp.MustCompile(`^sshd(?:-session)?\[\d+\]:.*?(?:from|by)\s+(?:invalid user \S+ |authenticating user \S+ |user \S+ )?\[?([0-9a-fA-F.:]+?)\]?(?:\s+port\s+\d+|$|\s)`)

// parseLine finds the source address of one line, and the log kind.
func parseLine(line string) (netip.Addr, string, uint16, bool) {
	if src, ok := firewallAddr(line); ok {
		if a, ok := addr(src); ok {
			return a, FormatFirewall, dpt(line), true
		}
	}
	if src, ok := sshAddr(line); ok {
		if a, ok := addr(src); ok {
			return a, FormatSSH, 22, true
		}
	}
	if src, ok := webAddr(line); ok {
		if a, ok := addr(src); ok {
			return a, FormatHTTP, 0, true
		}
	}
	// a list or CSV: the first field that is an address
	for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '"' }) {
		if a, ok := addr(f); ok {
			return a, FormatList, 0, true
		}
	}
	return netip.Addr{}, "", 0, false
}

// word finds the places where key starts a word (\b before it; key
// starts with a word character), in order, until at says stop.
func word(line, key string, at func(i int) bool) {
	for off := 0; off < len(line); {
		i := strings.Index(line[off:], key)
		if i < 0 {
			return
		}
		i += off
		if (i == 0 || !isWordChar(line[i-1])) && at(i) {
			return
		}
		off = i + 1
	}
}

// firewallAddr is \bSRC=([0-9a-fA-F.:]+).
func firewallAddr(line string) (src string, ok bool) {
	word(line, "SRC=", func(i int) bool {
		j := i + len("SRC=")
		k := j
		for k < len(line) && (isHex(line[k]) || line[k] == '.' || line[k] == ':') {
			k++
		}
		src, ok = line[j:k], k > j
		return ok
	})
	return src, ok
}

// dpt is the port of \bDPT=(\d{1,5})\b, or 0.
func dpt(line string) (port uint16) {
	word(line, "DPT=", func(i int) bool {
		j := i + len("DPT=")
		k := j
		for k < len(line) && line[k] >= '0' && line[k] <= '9' {
			k++
		}
		if k == j || k-j > 5 || k < len(line) && isWordChar(line[k]) {
			return false
		}
		n, _ := strconv.Atoi(line[j:k])
		port = uint16(min(n, 65535))
		return true
	})
	return port
}

// sshAddr tries reSSH wherever a word starts with sshd.
func sshAddr(line string) (src string, ok bool) {
	word(line, "sshd", func(i int) bool {
		if m := reSSH.FindStringSubmatch(line[i:]); m != nil {
			src, ok = m[1], true
		}
		return ok
	})
	return src, ok
}

// webAddr is ^(\S+) \S+ \S+ \[[^\]]+\] ".
func webAddr(line string) (string, bool) {
	first, rest, ok := field(line)
	if !ok {
		return "", false
	}
	for range 2 {
		if _, rest, ok = field(rest); !ok {
			return "", false
		}
	}
	if len(rest) < 2 || rest[0] != '[' {
		return "", false
	}
	end := strings.IndexByte(rest[1:], ']')
	if end <= 0 || !strings.HasPrefix(rest[1+end:], `] "`) {
		return "", false
	}
	return first, true
}

// field is (\S+) followed by one space, and what follows.
func field(s string) (string, string, bool) {
	i := strings.IndexAny(s, " \t\n\f\r")
	if i <= 0 || s[i] != ' ' {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

func isWordChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// addr reads an address (IPv4, IPv6, IPv6 in brackets, with or without a
// port); zones and unspecified addresses are not sources.
func addr(s string) (netip.Addr, bool) {
	s = strings.Trim(s, "[]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	a = a.Unmap()
	if a.Zone() != "" || a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a, true
}
