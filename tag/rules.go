package tag

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"
)

// Categories and intentions a tag may have.
var (
	categories = map[string]bool{"actor": true, "activity": true, "tool": true, "worm": true, "exploit": true}
	intentions = map[string]bool{"benign": true, "malicious": true, "unknown": true}
)

// Limits that keep a rules file (which may come from a user) from making
// the engine slow or large.
const (
	maxTags        = 4096
	maxBlocks      = 64    // match blocks per tag
	maxListLen     = 256   // entries in any list of a block
	maxPatternLen  = 4096  // bytes of a regular expression or literal
	maxPortsIndex  = 4096  // a port range wider than this is checked, not indexed
	maxThresholdN  = 10000 // count of a threshold rule
	maxHeaderLines = 64    // header lines parsed from an HTTP payload
)

// file is the TOML layout of a rules file.
type file struct {
	Tags []tagEntry `toml:"tag"`
}

type tagEntry struct {
	Slug        string     `toml:"slug"`
	Name        string     `toml:"name"`
	Category    string     `toml:"category"`
	Intention   string     `toml:"intention"`
	CVEs        []string   `toml:"cves"`
	Description string     `toml:"description"`
	References  []string   `toml:"references"`
	Match       []cond     `toml:"match"`
	Threshold   *threshold `toml:"threshold"`
}

type threshold struct {
	Of     string `toml:"of"`
	Count  int    `toml:"count"`
	Window string `toml:"window"`
}

// cond is one match block: every key that is set must hold.
type cond struct {
	ID        string   `toml:"id"`
	Transport []string `toml:"transport"`
	Ports     []any    `toml:"ports"`
	TCPFlags  string   `toml:"tcp_flags"`
	ICMPType  *int     `toml:"icmp_type"`
	ICMPCode  *int     `toml:"icmp_code"`
	Handshake *bool    `toml:"handshake"`

	PayloadEmpty     *bool    `toml:"payload_empty"`
	PayloadMinLen    int      `toml:"payload_min_len"`
	PayloadPrefix    []string `toml:"payload_prefix"`
	PayloadPrefixHex []string `toml:"payload_prefix_hex"`
	PayloadContains  []string `toml:"payload_contains"`
	PayloadHex       []string `toml:"payload_hex"`
	PayloadAll       []string `toml:"payload_all"`
	PayloadRegex     string   `toml:"payload_regex"`
	NoCase           bool     `toml:"nocase"`
	Latin1           bool     `toml:"latin1"`

	HTTP        *bool             `toml:"http"`
	HTTPMethod  []string          `toml:"http_method"`
	HTTPPath    string            `toml:"http_path"`
	HTTPHeaders map[string]string `toml:"http_headers"`
	UserAgent   string            `toml:"user_agent"`
	JA3         []string          `toml:"ja3"`
	HASSH       []string          `toml:"hassh"`
	SNI         string            `toml:"sni"`

	TTL             []int    `toml:"ttl"`
	IPID            []int    `toml:"ip_id"`
	Window          []int    `toml:"window"`
	TCPOptions      []string `toml:"tcp_options"`
	TCPOptionsRegex string   `toml:"tcp_options_regex"`
	SeqEqualsDst    bool     `toml:"seq_equals_dst"`
	IPIDMasscan     bool     `toml:"ip_id_masscan"`

	HasUsername *bool    `toml:"has_username"`
	HasPassword *bool    `toml:"has_password"`
	SrcCIDRs    []string `toml:"src_cidrs"`
	Actor       []string `toml:"actor"`
}

// transport bits
const (
	tTCP = 1 << iota
	tUDP
	tICMP
	tOther
	tAll = tTCP | tUDP | tICMP | tOther
)

func transportBit(s string) int {
	switch s {
	case "tcp":
		return tTCP
	case "udp":
		return tUDP
	case "icmp", "icmp6", "icmpv6":
		return tICMP
	}
	return tOther
}

type portRange struct{ lo, hi uint16 }

type headerRe struct {
	name string // lower case
	re   *regexp.Regexp
}

// lit is a literal that must (or may) occur in the payload.
type lit struct {
	b    []byte // lower-cased when fold
	fold bool
}

// block is a compiled match block.
type block struct {
	tag     int
	id      string
	summary string

	transports int
	ports      []portRange
	flags      int // -1: any
	icmpType   int // -1: any
	icmpCode   int
	handshake  int8 // -1 any, 0 false, 1 true

	payloadEmpty int8
	minLen       int
	prefixes     []lit
	contains     []lit // any of
	all          []lit // all of, including literals required by regexes
	re           *regexp.Regexp
	latin1       bool

	http    int8
	methods []string
	pathRe  *regexp.Regexp
	headers []headerRe
	uaRe    *regexp.Regexp
	ja3     []string
	hassh   []string
	sniRe   *regexp.Regexp

	ttlSet         bool
	ttlMin, ttlMax int
	ipid, window   []uint16
	opts           []string
	optsRe         *regexp.Regexp
	seqDst         bool
	masscan        bool
	user, pass     int8
	src            []netip.Prefix
	actors         []string

	needsHTTP bool // uses method/path/ua/headers
}

func tri(p *bool) int8 {
	if p == nil {
		return -1
	}
	if *p {
		return 1
	}
	return 0
}

// flag letters in bit order (FIN is bit 0).
const flagLetters = "FSRPAUEC"

// parseFlags turns "S", "SA", "none" into a flag byte.
func parseFlags(s string) (int, error) {
	if s == "" {
		return -1, nil
	}
	if s == "none" {
		return 0, nil
	}
	v := 0
	for _, c := range strings.ToUpper(s) {
		i := strings.IndexRune(flagLetters, c)
		if i < 0 {
			return 0, fmt.Errorf("tcp_flags %q: unknown flag %q (use letters of %s or \"none\")", s, c, flagLetters)
		}
		v |= 1 << i
	}
	return v, nil
}

func flagString(f uint8) string {
	if f == 0 {
		return "none"
	}
	var b strings.Builder
	for i := 0; i < 8; i++ {
		if f&(1<<i) != 0 {
			b.WriteByte(flagLetters[i])
		}
	}
	return b.String()
}

func parsePorts(v []any) ([]portRange, error) {
	var out []portRange
	for _, e := range v {
		switch e := e.(type) {
		case int64:
			if e < 0 || e > 65535 {
				return nil, fmt.Errorf("port %d out of range", e)
			}
			out = append(out, portRange{uint16(e), uint16(e)})
		case string:
			lo, hi, isRange := strings.Cut(e, "-")
			a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
			if err != nil {
				return nil, fmt.Errorf("port %q: %v", e, err)
			}
			b := a
			if isRange {
				if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16); err != nil {
					return nil, fmt.Errorf("port range %q: %v", e, err)
				}
			}
			if b < a {
				return nil, fmt.Errorf("port range %q: end before start", e)
			}
			out = append(out, portRange{uint16(a), uint16(b)})
		default:
			return nil, fmt.Errorf("port %v: want a number or a \"lo-hi\" string", e)
		}
	}
	return out, nil
}

func compileRe(what, s string) (*regexp.Regexp, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > maxPatternLen {
		return nil, fmt.Errorf("%s: pattern longer than %d bytes", what, maxPatternLen)
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	return re, nil
}

// requiredLiteral returns the longest literal every match of the regular
// expression must contain, when one is easy to see (a top-level
// concatenation holding literals), so the engine can look for it with a
// plain substring search before it runs the expression.
func requiredLiteral(pattern string) (lit, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return lit{}, false
	}
	re = re.Simplify()
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	var best *syntax.Regexp
	consider := func(r *syntax.Regexp) {
		if r.Op == syntax.OpLiteral && (best == nil || len(r.Rune) > len(best.Rune)) {
			best = r
		}
	}
	switch re.Op {
	case syntax.OpLiteral:
		consider(re)
	case syntax.OpConcat:
		for _, s := range re.Sub {
			for s.Op == syntax.OpCapture {
				s = s.Sub[0]
			}
			consider(s)
		}
	}
	if best == nil || len(best.Rune) < 2 {
		return lit{}, false
	}
	for _, r := range best.Rune {
		if r >= 0x80 { // keep to ASCII: payload bytes are not necessarily UTF-8
			return lit{}, false
		}
	}
	fold := best.Flags&syntax.FoldCase != 0
	s := string(best.Rune)
	if fold {
		s = strings.ToLower(s)
	}
	return lit{b: []byte(s), fold: fold}, true
}

func mkLits(ss []string, fold bool, isHex bool) ([]lit, error) {
	if len(ss) > maxListLen {
		return nil, fmt.Errorf("more than %d literals", maxListLen)
	}
	var out []lit
	for _, s := range ss {
		if len(s) > maxPatternLen {
			return nil, fmt.Errorf("literal longer than %d bytes", maxPatternLen)
		}
		b := []byte(s)
		if isHex {
			var err error
			b, err = hex.DecodeString(strings.ReplaceAll(s, " ", ""))
			if err != nil {
				return nil, fmt.Errorf("hex literal %q: %v", s, err)
			}
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("empty literal")
		}
		if fold {
			b = lowerASCII(nil, b)
		}
		out = append(out, lit{b: b, fold: fold})
	}
	return out, nil
}

func lowerASCII(dst, b []byte) []byte {
	dst = dst[:0]
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func u16s(what string, v []int) ([]uint16, error) {
	if len(v) > maxListLen {
		return nil, fmt.Errorf("%s: more than %d values", what, maxListLen)
	}
	out := make([]uint16, 0, len(v))
	for _, x := range v {
		if x < 0 || x > 65535 {
			return nil, fmt.Errorf("%s: %d out of range", what, x)
		}
		out = append(out, uint16(x))
	}
	return out, nil
}

// compile turns a match block of tag ti into a block.
func compileBlock(ti int, slug string, n int, c *cond) (*block, error) {
	b := &block{tag: ti, id: c.ID, flags: -1, icmpType: -1, icmpCode: -1}
	if b.id == "" {
		b.id = fmt.Sprintf("%s#%d", strings.ToLower(slug), n+1)
	}
	var sum []string
	for _, t := range c.Transport {
		b.transports |= transportBit(strings.ToLower(t))
	}
	if b.transports == 0 {
		b.transports = tAll
	} else {
		sum = append(sum, strings.Join(c.Transport, "/"))
	}
	var err error
	if len(c.Ports) > maxListLen {
		return nil, fmt.Errorf("ports: more than %d entries", maxListLen)
	}
	if b.ports, err = parsePorts(c.Ports); err != nil {
		return nil, err
	}
	if len(b.ports) > 0 {
		sum = append(sum, fmt.Sprintf("dst port %v", c.Ports))
	}
	if b.flags, err = parseFlags(c.TCPFlags); err != nil {
		return nil, err
	}
	if b.flags >= 0 {
		sum = append(sum, "tcp flags "+flagString(uint8(b.flags)))
		b.transports &= tTCP
	}
	if c.ICMPType != nil {
		if *c.ICMPType < 0 || *c.ICMPType > 255 {
			return nil, fmt.Errorf("icmp_type %d out of range", *c.ICMPType)
		}
		b.icmpType = *c.ICMPType
		b.transports &= tICMP
		sum = append(sum, fmt.Sprintf("icmp type %d", b.icmpType))
	}
	if c.ICMPCode != nil {
		if *c.ICMPCode < 0 || *c.ICMPCode > 255 {
			return nil, fmt.Errorf("icmp_code %d out of range", *c.ICMPCode)
		}
		b.icmpCode = *c.ICMPCode
		b.transports &= tICMP
		sum = append(sum, fmt.Sprintf("icmp code %d", b.icmpCode))
	}
	if b.transports == 0 {
		return nil, fmt.Errorf("transport conflicts with tcp_flags/icmp_type")
	}
	b.handshake = tri(c.Handshake)
	if b.handshake == 1 {
		sum = append(sum, "handshake completed")
	} else if b.handshake == 0 {
		sum = append(sum, "no handshake")
	}
	b.payloadEmpty = tri(c.PayloadEmpty)
	if b.payloadEmpty == 1 {
		sum = append(sum, "no payload")
	}
	b.minLen = c.PayloadMinLen
	if b.prefixes, err = mkLits(c.PayloadPrefix, c.NoCase, false); err != nil {
		return nil, fmt.Errorf("payload_prefix: %v", err)
	}
	ph, err := mkLits(c.PayloadPrefixHex, false, true)
	if err != nil {
		return nil, fmt.Errorf("payload_prefix_hex: %v", err)
	}
	b.prefixes = append(b.prefixes, ph...)
	if len(b.prefixes) > 0 {
		sum = append(sum, fmt.Sprintf("payload starts with one of %q%s", append(c.PayloadPrefix, c.PayloadPrefixHex...), nocaseNote(c.NoCase)))
	}
	if b.contains, err = mkLits(c.PayloadContains, c.NoCase, false); err != nil {
		return nil, fmt.Errorf("payload_contains: %v", err)
	}
	hx, err := mkLits(c.PayloadHex, false, true)
	if err != nil {
		return nil, fmt.Errorf("payload_hex: %v", err)
	}
	b.contains = append(b.contains, hx...)
	if len(b.contains) > 0 {
		sum = append(sum, fmt.Sprintf("payload contains one of %q%s", append(c.PayloadContains, c.PayloadHex...), nocaseNote(c.NoCase)))
	}
	if b.all, err = mkLits(c.PayloadAll, c.NoCase, false); err != nil {
		return nil, fmt.Errorf("payload_all: %v", err)
	}
	if len(c.PayloadAll) > 0 {
		sum = append(sum, fmt.Sprintf("payload contains all of %q%s", c.PayloadAll, nocaseNote(c.NoCase)))
	}
	pat := c.PayloadRegex
	if pat != "" && c.NoCase && !strings.HasPrefix(pat, "(?i)") {
		pat = "(?i)" + pat
	}
	if b.re, err = compileRe("payload_regex", pat); err != nil {
		return nil, err
	}
	b.latin1 = c.Latin1
	if b.re != nil {
		if l, ok := requiredLiteral(pat); ok {
			b.all = append(b.all, l)
		}
		sum = append(sum, fmt.Sprintf("payload matches /%s/", c.PayloadRegex))
	}

	b.http = tri(c.HTTP)
	if b.http == 1 {
		sum = append(sum, "HTTP request")
	}
	for _, m := range c.HTTPMethod {
		b.methods = append(b.methods, strings.ToUpper(m))
	}
	if len(b.methods) > 0 {
		sum = append(sum, fmt.Sprintf("method %v", b.methods))
	}
	if b.pathRe, err = compileRe("http_path", c.HTTPPath); err != nil {
		return nil, err
	}
	if b.pathRe != nil {
		sum = append(sum, fmt.Sprintf("path matches /%s/", c.HTTPPath))
	}
	if len(c.HTTPHeaders) > maxListLen {
		return nil, fmt.Errorf("http_headers: too many")
	}
	for name, p := range c.HTTPHeaders {
		re, err := compileRe("http_headers."+name, p)
		if err != nil {
			return nil, err
		}
		b.headers = append(b.headers, headerRe{strings.ToLower(name), re})
		sum = append(sum, fmt.Sprintf("header %s matches /%s/", name, p))
	}
	// deterministic order
	sortHeaders(b.headers)
	if b.uaRe, err = compileRe("user_agent", c.UserAgent); err != nil {
		return nil, err
	}
	if b.uaRe != nil {
		sum = append(sum, fmt.Sprintf("user agent matches /%s/", c.UserAgent))
	}
	b.needsHTTP = b.http >= 0 || len(b.methods) > 0 || b.pathRe != nil || len(b.headers) > 0 || b.uaRe != nil
	for _, s := range c.JA3 {
		b.ja3 = append(b.ja3, strings.ToLower(s))
	}
	for _, s := range c.HASSH {
		b.hassh = append(b.hassh, strings.ToLower(s))
	}
	if len(b.ja3) > 0 {
		sum = append(sum, "ja3 in list")
	}
	if len(b.hassh) > 0 {
		sum = append(sum, "hassh in list")
	}
	if b.sniRe, err = compileRe("sni", c.SNI); err != nil {
		return nil, err
	}
	switch len(c.TTL) {
	case 0:
	case 2:
		b.ttlSet, b.ttlMin, b.ttlMax = true, c.TTL[0], c.TTL[1]
		if b.ttlMin > b.ttlMax || b.ttlMin < 0 || b.ttlMax > 255 {
			return nil, fmt.Errorf("ttl %v: want [min, max] within 0..255", c.TTL)
		}
		sum = append(sum, fmt.Sprintf("ttl %d-%d", b.ttlMin, b.ttlMax))
	default:
		return nil, fmt.Errorf("ttl %v: want [min, max]", c.TTL)
	}
	if b.ipid, err = u16s("ip_id", c.IPID); err != nil {
		return nil, err
	}
	if len(b.ipid) > 0 {
		sum = append(sum, fmt.Sprintf("ip id %v", b.ipid))
	}
	if b.window, err = u16s("window", c.Window); err != nil {
		return nil, err
	}
	if len(b.window) > 0 {
		sum = append(sum, fmt.Sprintf("window %v", b.window))
	}
	b.opts = c.TCPOptions
	if len(b.opts) > 0 {
		sum = append(sum, fmt.Sprintf("tcp options %q", b.opts))
	}
	if b.optsRe, err = compileRe("tcp_options_regex", c.TCPOptionsRegex); err != nil {
		return nil, err
	}
	if b.optsRe != nil {
		sum = append(sum, fmt.Sprintf("tcp options match /%s/", c.TCPOptionsRegex))
	}
	b.seqDst = c.SeqEqualsDst
	if b.seqDst {
		sum = append(sum, "seq == dst address")
	}
	b.masscan = c.IPIDMasscan
	if b.masscan {
		sum = append(sum, "ip id == dst ^ dport ^ seq")
	}
	b.user, b.pass = tri(c.HasUsername), tri(c.HasPassword)
	if b.user == 1 {
		sum = append(sum, "username sent")
	}
	if b.pass == 1 {
		sum = append(sum, "password sent")
	}
	if len(c.SrcCIDRs) > maxListLen {
		return nil, fmt.Errorf("src_cidrs: too many")
	}
	for _, s := range c.SrcCIDRs {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("src_cidrs: %v", err)
		}
		b.src = append(b.src, p)
	}
	if len(b.src) > 0 {
		sum = append(sum, fmt.Sprintf("source in %v", c.SrcCIDRs))
	}
	for _, a := range c.Actor {
		b.actors = append(b.actors, strings.ToUpper(a))
	}
	if len(b.actors) > 0 {
		sum = append(sum, fmt.Sprintf("actor %v", b.actors))
	}
	for _, l := range [][]string{c.Transport, c.PayloadPrefix, c.PayloadPrefixHex, c.PayloadContains, c.PayloadHex, c.PayloadAll, c.HTTPMethod, c.JA3, c.HASSH, c.TCPOptions, c.Actor} {
		if len(l) > maxListLen {
			return nil, fmt.Errorf("a list holds more than %d entries", maxListLen)
		}
	}
	b.summary = strings.Join(sum, ", ")
	if b.summary == "" {
		return nil, fmt.Errorf("empty match block (it would match everything)")
	}
	return b, nil
}

func nocaseNote(b bool) string {
	if b {
		return " (any case)"
	}
	return ""
}

func sortHeaders(h []headerRe) {
	for i := 1; i < len(h); i++ {
		for j := i; j > 0 && h[j].name < h[j-1].name; j-- {
			h[j], h[j-1] = h[j-1], h[j]
		}
	}
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseWindow(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 || d > 30*24*time.Hour {
		return 0, fmt.Errorf("window %s: want >0 and <= 720h", s)
	}
	return d, nil
}

// hasLit reports whether payload (or its lower-cased copy) holds l.
func hasLit(payload, lower []byte, l lit) bool {
	if l.fold {
		return bytes.Contains(lower, l.b)
	}
	return bytes.Contains(payload, l.b)
}

func hasPrefix(payload, lower []byte, l lit) bool {
	if l.fold {
		return bytes.HasPrefix(lower, l.b)
	}
	return bytes.HasPrefix(payload, l.b)
}
