package target

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

// ErrIPv6 is returned (wrapped) for IPv6 targets, which the SYN scanner does
// not support yet.
var ErrIPv6 = errors.New("IPv6 targets are not supported by the scanner yet")

// ParseError names the input, line and token that could not be parsed.
type ParseError struct {
	Source string // file name, "-" for stdin, or "argument"
	Line   int    // 1-based; 0 when the input has no lines (a flag value)
	Token  string
	Err    error
}

func (e *ParseError) Error() string {
	where := e.Source
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.Source, e.Line)
	}
	return fmt.Sprintf("%s: %q: %v", where, e.Token, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// ParseRange parses one target token: an IPv4 address (1.2.3.4), a CIDR block
// (1.2.3.0/24; host bits are ignored), or a range (1.2.3.4-1.2.3.9, or
// 1.2.3.4-9 for a range within the last octet).
func ParseRange(tok string) (Range, error) {
	if tok == "" {
		return Range{}, errors.New("empty target")
	}
	if i := strings.IndexByte(tok, '/'); i >= 0 {
		p, err := netip.ParsePrefix(tok)
		if err != nil {
			if _, aerr := netip.ParseAddr(tok[:i]); aerr == nil {
				return Range{}, fmt.Errorf("bad prefix length %q", tok[i+1:])
			}
			return Range{}, badAddr(tok[:i])
		}
		if !p.Addr().Is4() {
			return Range{}, ErrIPv6
		}
		return RangeOf(p), nil
	}
	if i := strings.IndexByte(tok, '-'); i >= 0 {
		lo, err := parse4(tok[:i])
		if err != nil {
			return Range{}, err
		}
		rest := tok[i+1:]
		var hi uint32
		if n, err := strconv.ParseUint(rest, 10, 8); err == nil && !strings.Contains(rest, ".") {
			hi = lo&^0xff | uint32(n)
		} else if hi, err = parse4(rest); err != nil {
			return Range{}, err
		}
		if hi < lo {
			return Range{}, errors.New("range ends before it starts")
		}
		return Range{lo, hi}, nil
	}
	a, err := parse4(tok)
	if err != nil {
		return Range{}, err
	}
	return Range{a, a}, nil
}

func parse4(s string) (uint32, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return 0, badAddr(s)
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	if !a.Is4() {
		return 0, ErrIPv6
	}
	return AddrTo(a), nil
}

func badAddr(s string) error {
	if strings.Contains(s, ":") {
		return errors.New("not an IP address")
	}
	looksNumeric := s != "" && strings.Trim(s, "0123456789.") == ""
	if !looksNumeric {
		return errors.New("not an IPv4 address (host names are not resolved: give addresses)")
	}
	return errors.New("not an IPv4 address")
}

// ParseTargets reads targets or exclusions: one or more tokens per line,
// separated by spaces, tabs or commas; '#' starts a comment. source names the
// input in errors. Every token is checked; the first error is returned with
// its line and token.
func ParseTargets(r io.Reader, source string) (*Set, error) {
	s := &Set{}
	var rs []Range
	err := scanTokens(r, func(line int, tok, _ string) error {
		rg, err := ParseRange(tok)
		if err != nil {
			return &ParseError{Source: source, Line: line, Token: tok, Err: err}
		}
		rs = append(rs, rg)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.AddRanges(rs)
	return s, nil
}

// ParseTargetList parses tokens given on the command line.
func ParseTargetList(tokens []string, source string) (*Set, error) {
	s := &Set{}
	var rs []Range
	for _, arg := range tokens {
		for _, tok := range strings.FieldsFunc(arg, isSep) {
			rg, err := ParseRange(tok)
			if err != nil {
				return nil, &ParseError{Source: source, Token: tok, Err: err}
			}
			rs = append(rs, rg)
		}
	}
	s.AddRanges(rs)
	return s, nil
}

func isSep(r rune) bool { return r == ',' || r == ' ' || r == '\t' }

// scanTokens calls fn for each token with its line number and the line's
// comment (text after '#', trimmed).
func scanTokens(r io.Reader, fn func(line int, tok, comment string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text, comment, _ := strings.Cut(sc.Text(), "#")
		comment = strings.TrimSpace(comment)
		for _, tok := range strings.FieldsFunc(text, isSep) {
			if err := fn(line, tok, comment); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read line %d: %w", line+1, err)
	}
	return nil
}

// ParsePorts parses a port list such as "22,80,8000-8100". Ports are 1-65535;
// spaces are allowed around commas. The result is sorted and has no duplicates.
func ParsePorts(s string) ([]uint16, error) {
	var seen [65536 / 64]uint64
	var out []uint16
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty port list")
	}
	for _, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			return nil, &ParseError{Source: "ports", Token: tok, Err: errors.New("empty port between commas")}
		}
		lo, hi, isRange := strings.Cut(tok, "-")
		a, err := parsePort(lo)
		if err != nil {
			return nil, &ParseError{Source: "ports", Token: tok, Err: err}
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, &ParseError{Source: "ports", Token: tok, Err: err}
			}
			if b < a {
				return nil, &ParseError{Source: "ports", Token: tok, Err: errors.New("range ends before it starts")}
			}
		}
		for p := uint32(a); p <= uint32(b); p++ {
			seen[p/64] |= 1 << (p % 64)
		}
	}
	for i, w := range seen {
		for w != 0 {
			bit := w & -w
			out = append(out, uint16(i*64+bits.TrailingZeros64(bit)))
			w ^= bit
		}
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("missing port number")
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errors.New("not a port number")
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", n)
	}
	return uint16(n), nil
}
