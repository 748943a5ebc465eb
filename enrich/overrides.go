package enrich

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SyntaxError is a bad line in an overrides or ASN file.
type SyntaxError struct {
	File  string
	Line  int
	Token string // the offending text, when there is one
	Msg   string
}

func (e *SyntaxError) Error() string {
	if e.Token == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	tok := e.Token
	if len(tok) > 80 {
		tok = tok[:80] + "..."
	}
	return fmt.Sprintf("%s:%d: %s: %q", e.File, e.Line, e.Msg, tok)
}

// Rule is one line of an overrides file, after duplicates of the same prefix
// have been merged.
type Rule struct {
	Prefix  netip.Prefix
	Country string // "" when the rule does not set it
	ASN     uint32 // 0 when the rule does not set it
	Org     string
	Label   string
	Line    int // the line that last set a field for this prefix
}

// String formats r in the overrides syntax.
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString(r.Prefix.String())
	if r.Country != "" {
		b.WriteString(" country=" + r.Country)
	}
	if r.ASN != 0 {
		b.WriteString(" asn=" + strconv.FormatUint(uint64(r.ASN), 10))
	}
	if r.Org != "" {
		b.WriteString(" org=" + quoteValue(r.Org))
	}
	if r.Label != "" {
		b.WriteString(" label=" + quoteValue(r.Label))
	}
	return b.String()
}

func quoteValue(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// Overrides are local rules applied before the databases: the most specific
// prefix that contains an address wins, field by field: a field it leaves
// empty comes from the next less specific rule that sets it, and then from
// the databases.
type Overrides struct {
	name  string
	rules []Rule
	info  []Info // per rule, with the fields inherited from enclosing rules
	v4    table4 // val: index into rules
	v6    table6
}

// Rules returns the rules, sorted by prefix (IPv4 first, then by address,
// then shorter prefixes first).
func (o *Overrides) Rules() []Rule { return slices.Clone(o.rules) }

// Len is the number of rules.
func (o *Overrides) Len() int {
	if o == nil {
		return 0
	}
	return len(o.rules)
}

// Lookup returns what the rules say about ip, and false when no rule
// covers it. IPv4-mapped IPv6 addresses are looked up as IPv4.
func (o *Overrides) Lookup(ip netip.Addr) (Info, bool) {
	if o == nil || !ip.IsValid() {
		return Info{}, false
	}
	ip = ip.Unmap()
	var v uint64
	var ok bool
	if ip.Is4() {
		v, ok = o.v4.find(uint32(b4Of(ip)))
	} else {
		v, ok = o.v6.find(u128Of(ip))
	}
	if !ok {
		return Info{}, false
	}
	return o.info[v], true
}

// ParseOverrides reads an overrides file; name is used in error messages
// (file:line: message: "token"). The format:
//
//	# comment (also after a rule)
//	CIDR  key=value ...
//
// One rule per line: an IPv4 or IPv6 prefix (or a single address), then one
// or more of
//
//	country=XX        ISO 3166-1 alpha-2 (any case; stored upper case).
//	                  User-assigned codes such as ZZ or XA-XZ are accepted.
//	asn=NNN           AS number, also written AS64512
//	org=VALUE         organisation
//	label=VALUE       free text, only ever set here (e.g. "lab farm")
//
// VALUE is bare (no spaces, quotes, '#' or '=') or in double quotes, with \"
// and \\ as the only escapes. Empty values, unknown or repeated keys, a
// prefix with host bits set (10.1.2.3/8) and zones are errors. Values must
// be valid UTF-8 without control characters, at most 256 bytes.
//
// The most specific prefix containing an address wins; fields it leaves
// empty come from enclosing prefixes (and then from the databases), so
// `10.0.0.0/8 country=DE` and `10.1.0.0/16 label=lab` give 10.1.2.3 both.
// A prefix given on several lines is merged, later lines winning field by
// field. IPv4 and IPv6 are separate: ::/0 does not cover 1.2.3.4, and an
// IPv4-mapped prefix (::ffff:10.0.0.0/104) is taken as the IPv4 one.
func ParseOverrides(r io.Reader, name string) (*Overrides, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	byPrefix := map[netip.Prefix]int{}
	var rules []Rule
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		rule, ok, err := parseOverrideLine(line)
		if err != nil {
			err.File, err.Line = name, lineNo
			return nil, err
		}
		if !ok {
			continue
		}
		rule.Line = lineNo
		i, seen := byPrefix[rule.Prefix]
		if !seen {
			byPrefix[rule.Prefix] = len(rules)
			rules = append(rules, rule)
			continue
		}
		old := &rules[i]
		old.Line = lineNo
		old.Country = cmp.Or(rule.Country, old.Country)
		old.ASN = cmp.Or(rule.ASN, old.ASN)
		old.Org = cmp.Or(rule.Org, old.Org)
		old.Label = cmp.Or(rule.Label, old.Label)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &SyntaxError{File: name, Line: lineNo + 1, Msg: fmt.Sprintf("line longer than %d bytes", maxLine)}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return newOverrides(name, rules), nil
}

func newOverrides(name string, rules []Rule) *Overrides {
	// Containment order: IPv4 first, then by first address, enclosing
	// prefixes before the ones they contain.
	slices.SortFunc(rules, func(a, b Rule) int {
		if a.Prefix.Addr().Is4() != b.Prefix.Addr().Is4() {
			if a.Prefix.Addr().Is4() {
				return -1
			}
			return 1
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits())
	})
	o := &Overrides{name: name, rules: rules, info: make([]Info, len(rules))}
	var rows4 []span[b4]
	var rows6 []span[u128]
	var stack []int // enclosing rules of the current one
	for i, r := range rules {
		for len(stack) > 0 && !contains(rules[stack[len(stack)-1]].Prefix, r.Prefix) {
			stack = stack[:len(stack)-1]
		}
		in := Info{Country: r.Country, ASN: r.ASN, Org: r.Org, Label: r.Label}
		if len(stack) > 0 {
			up := o.info[stack[len(stack)-1]]
			in.Country = cmp.Or(in.Country, up.Country)
			in.ASN = cmp.Or(in.ASN, up.ASN)
			in.Org = cmp.Or(in.Org, up.Org)
			in.Label = cmp.Or(in.Label, up.Label)
		}
		o.info[i] = in
		stack = append(stack, i)
		first, last := prefixRange(r.Prefix)
		if r.Prefix.Addr().Is4() {
			rows4 = append(rows4, span[b4]{b4Of(first), b4Of(last), uint64(i)})
		} else {
			rows6 = append(rows6, span[u128]{u128Of(first), u128Of(last), uint64(i)})
		}
	}
	o.v4, o.v6 = newTable4(rows4), newTable6(rows6)
	return o
}

// contains reports whether outer contains inner (both masked, same family).
func contains(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// prefixRange returns the first and last address of a masked prefix.
func prefixRange(p netip.Prefix) (first, last netip.Addr) {
	first = p.Addr()
	if first.Is4() {
		v := b4Of(first)
		if p.Bits() < 32 {
			v |= b4(^uint32(0) >> p.Bits())
		}
		return first, v.addr()
	}
	v := u128Of(first)
	switch n := p.Bits(); {
	case n == 0:
		v = u128{^uint64(0), ^uint64(0)}
	case n < 64:
		v.hi |= ^uint64(0) >> n
		v.lo = ^uint64(0)
	case n < 128:
		v.lo |= ^uint64(0) >> (n - 64)
	}
	return first, v.addr()
}

const maxValue = 256

// parseOverrideLine parses one line; ok is false for blank and comment
// lines. Errors carry the token and message; the caller adds file and line.
func parseOverrideLine(line []byte) (r Rule, ok bool, err *SyntaxError) {
	toks, err := tokenize(line)
	if err != nil || len(toks) == 0 {
		return r, false, err
	}
	pfx, err := parsePrefix(toks[0])
	if err != nil {
		return r, false, err
	}
	r.Prefix = pfx
	if len(toks) == 1 {
		return r, false, &SyntaxError{Token: toks[0].text, Msg: "prefix without key=value (country, asn, org, label)"}
	}
	seen := map[string]bool{}
	for _, t := range toks[1:] {
		if t.key == "" {
			return r, false, &SyntaxError{Token: t.text, Msg: "want key=value"}
		}
		if seen[t.key] {
			return r, false, &SyntaxError{Token: t.text, Msg: "key given twice"}
		}
		seen[t.key] = true
		if t.val == "" {
			return r, false, &SyntaxError{Token: t.text, Msg: "empty value"}
		}
		switch t.key {
		case "country":
			r.Country = countryCode(t.val)
			if r.Country == "" {
				return r, false, &SyntaxError{Token: t.text, Msg: "country must be two letters (ISO 3166-1 alpha-2)"}
			}
		case "asn":
			asn, aerr := parseASN([]byte(t.val))
			if aerr != nil {
				return r, false, &SyntaxError{Token: t.text, Msg: "asn must be a number 1-4294967295, or AS123"}
			}
			if asn == 0 {
				return r, false, &SyntaxError{Token: t.text, Msg: "asn 0 means unknown; leave asn out instead"}
			}
			r.ASN = asn
		case "org", "label":
			if len(t.val) > maxValue {
				return r, false, &SyntaxError{Token: t.text, Msg: fmt.Sprintf("value longer than %d bytes", maxValue)}
			}
			if !utf8.ValidString(t.val) || !isClean([]byte(t.val)) {
				return r, false, &SyntaxError{Token: t.text, Msg: "value must be UTF-8 text without control characters"}
			}
			if t.key == "org" {
				r.Org = t.val
			} else {
				r.Label = t.val
			}
		default:
			return r, false, &SyntaxError{Token: t.text, Msg: "unknown key (want country, asn, org or label)"}
		}
	}
	return r, true, nil
}

type token struct {
	text     string // as written
	key, val string // for key=value, val unquoted
}

// tokenize splits a line into whitespace-separated tokens, up to a '#'
// outside quotes.
func tokenize(line []byte) ([]token, *SyntaxError) {
	var toks []token
	i := 0
	for {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
			i++
		}
		if i == len(line) || line[i] == '#' {
			return toks, nil
		}
		start := i
		var t token
		for i < len(line) && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '#' && line[i] != '=' && line[i] != '"' {
			i++
		}
		if i < len(line) && line[i] == '=' {
			t.key = string(line[start:i])
			if t.key == "" {
				return nil, &SyntaxError{Token: string(bytes.TrimSpace(line[start:])), Msg: "missing key before '='"}
			}
			i++
			if i < len(line) && line[i] == '"' {
				v, n, err := unquote(line[i:])
				if err != nil {
					err.Token = string(line[start:])
					return nil, err
				}
				t.val = v
				i += n
			} else {
				vs := i
				for i < len(line) && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '#' {
					if line[i] == '"' || line[i] == '=' {
						return nil, &SyntaxError{Token: string(line[start:]), Msg: "quote the value (it holds '\"' or '=')"}
					}
					i++
				}
				t.val = string(line[vs:i])
			}
			if i < len(line) && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '#' {
				return nil, &SyntaxError{Token: string(line[start:]), Msg: "want a space after the value"}
			}
		} else if i < len(line) && line[i] == '"' {
			return nil, &SyntaxError{Token: string(line[start:]), Msg: "unexpected quote (values are key=\"...\")"}
		}
		t.text = string(line[start:i])
		toks = append(toks, t)
	}
}

// unquote reads a "..." value at the start of b and returns it and the
// number of bytes it took.
func unquote(b []byte) (string, int, *SyntaxError) {
	var out []byte
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '"':
			return string(out), i + 1, nil
		case '\\':
			if i+1 < len(b) && (b[i+1] == '"' || b[i+1] == '\\') {
				out = append(out, b[i+1])
				i++
				continue
			}
			return "", 0, &SyntaxError{Msg: `unknown escape (only \" and \\)`}
		default:
			out = append(out, b[i])
		}
	}
	return "", 0, &SyntaxError{Msg: "unterminated quote"}
}

// parsePrefix parses a CIDR prefix or a single address.
func parsePrefix(t token) (netip.Prefix, *SyntaxError) {
	if t.key != "" {
		return netip.Prefix{}, &SyntaxError{Token: t.text, Msg: "line must start with a CIDR prefix"}
	}
	s := t.text
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		p, err = netip.ParsePrefix(s)
		if err != nil {
			return p, &SyntaxError{Token: s, Msg: "bad CIDR prefix"}
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, &SyntaxError{Token: s, Msg: "bad CIDR prefix"}
		}
		if a.Zone() != "" {
			return p, &SyntaxError{Token: s, Msg: "address with a zone"}
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Masked() != p {
		return p, &SyntaxError{Token: s, Msg: "host bits set (did you mean " + p.Masked().String() + "?)"}
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}
