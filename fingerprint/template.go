package fingerprint

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A template is a rule's output text (product, version, a CPE part...)
// with references to the pattern's capture groups, compiled once at load:
//
//	$1 .. $9          group 1 to 9 (one digit, as in nmap: "$10" is $1 then "0")
//	${12} ${name}     any group by number or by (?P<name>...) name
//	$0, ${0}          the whole match
//	$P(1)             group 1 keeping printable ASCII only (nmap's $P)
//	$SUBST(1,"_",".") group 1 with every "_" replaced by "." (nmap's $SUBST)
//	$$                a literal "$"
type template struct {
	segs []segment
}

type segKind uint8

const (
	segLit       segKind = iota // literal text
	segGroup                    // capture group as is
	segPrintable                // capture group, printable ASCII only
	segSubst                    // capture group with from replaced by to
)

type segment struct {
	kind     segKind
	lit      string
	group    int
	from, to string
}

// errHelper marks a template using a helper we do not implement (nmap's
// $I); importers count such rules under their own reason.
var errHelper = errors.New("unsupported template helper")

// groupLookup resolves a group reference for parseTemplate.
type groupLookup struct {
	n     int            // number of capture groups
	names map[string]int // named groups
}

func (g groupLookup) byNumber(n int) (int, error) {
	if n < 0 || n > g.n {
		return 0, fmt.Errorf("refers to group %d but the pattern has %d", n, g.n)
	}
	return n, nil
}

func (g groupLookup) byName(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return g.byNumber(n)
	}
	i, ok := g.names[name]
	if !ok {
		return 0, fmt.Errorf("refers to group %q which the pattern does not name", name)
	}
	return i, nil
}

// parseTemplate compiles s, checking every reference against groups.
func parseTemplate(s string, groups groupLookup) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.segs = append(t.segs, segment{kind: segLit, lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			lit.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return t, fmt.Errorf("template %q: lone $ at the end (write $$ for a dollar sign)", s)
		}
		n := s[i+1]
		switch {
		case n == '$':
			lit.WriteByte('$')
			i += 2
		case n >= '0' && n <= '9':
			g, err := groups.byNumber(int(n - '0'))
			if err != nil {
				return t, fmt.Errorf("template %q: $%c %w", s, n, err)
			}
			flush()
			t.segs = append(t.segs, segment{kind: segGroup, group: g})
			i += 2
		case n == '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return t, fmt.Errorf("template %q: unterminated ${", s)
			}
			name := s[i+2 : i+2+end]
			g, err := groups.byName(name)
			if err != nil {
				return t, fmt.Errorf("template %q: ${%s} %w", s, name, err)
			}
			flush()
			t.segs = append(t.segs, segment{kind: segGroup, group: g})
			i += 2 + end + 1
		case strings.HasPrefix(s[i+1:], "P("):
			end := strings.IndexByte(s[i+3:], ')')
			if end < 0 {
				return t, fmt.Errorf("template %q: unterminated $P(", s)
			}
			num, err := strconv.Atoi(strings.TrimSpace(s[i+3 : i+3+end]))
			if err != nil {
				return t, fmt.Errorf("template %q: $P needs a group number", s)
			}
			g, err := groups.byNumber(num)
			if err != nil {
				return t, fmt.Errorf("template %q: $P(%d) %w", s, num, err)
			}
			flush()
			t.segs = append(t.segs, segment{kind: segPrintable, group: g})
			i += 3 + end + 1
		case strings.HasPrefix(s[i+1:], "SUBST("):
			seg, used, err := parseSubst(s[i+7:], groups)
			if err != nil {
				return t, fmt.Errorf("template %q: $SUBST: %w", s, err)
			}
			flush()
			t.segs = append(t.segs, seg)
			i += 7 + used
		case n >= 'A' && n <= 'Z':
			name := s[i+1:]
			if p := strings.IndexByte(name, '('); p >= 0 {
				name = name[:p]
			}
			return t, fmt.Errorf("template %q: $%s: %w", s, name, errHelper)
		default:
			return t, fmt.Errorf("template %q: $%c is not a group reference (write $$ for a dollar sign)", s, n)
		}
	}
	flush()
	return t, nil
}

// parseSubst reads `1,"from","to")` and reports how many bytes it used.
func parseSubst(s string, groups groupLookup) (segment, int, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	num, err := strconv.Atoi(s[:i])
	if err != nil {
		return segment{}, 0, errors.New("needs a group number")
	}
	g, err := groups.byNumber(num)
	if err != nil {
		return segment{}, 0, err
	}
	space := func() {
		for i < len(s) && s[i] == ' ' {
			i++
		}
	}
	var args [2]string
	for k := range args {
		space()
		if i >= len(s) || s[i] != ',' {
			return segment{}, 0, errors.New(`want $SUBST(n,"from","to")`)
		}
		i++
		space()
		if i >= len(s) || s[i] != '"' {
			return segment{}, 0, errors.New(`want quoted arguments`)
		}
		end := strings.IndexByte(s[i+1:], '"')
		if end < 0 {
			return segment{}, 0, errors.New("unterminated argument")
		}
		args[k] = s[i+1 : i+1+end]
		i += 1 + end + 1
	}
	space()
	if i >= len(s) || s[i] != ')' {
		return segment{}, 0, errors.New("want )")
	}
	if args[0] == "" {
		return segment{}, 0, errors.New("empty search string")
	}
	return segment{kind: segSubst, group: g, from: args[0], to: args[1]}, i + 1, nil
}

// empty reports whether t produces nothing at all.
func (t template) empty() bool { return len(t.segs) == 0 }

// literal returns t's text when it refers to no group.
func (t template) literal() (string, bool) {
	switch {
	case len(t.segs) == 0:
		return "", true
	case len(t.segs) == 1 && t.segs[0].kind == segLit:
		return t.segs[0].lit, true
	}
	return "", false
}

// group returns capture group g of a match (idx from FindStringSubmatchIndex).
func group(text string, idx []int, g int) string {
	if 2*g+1 >= len(idx) || idx[2*g] < 0 {
		return ""
	}
	return text[idx[2*g]:idx[2*g+1]]
}

// expand renders t for a match; conv, when set, converts group values
// (from Latin-1 for bytes-mode rules). Literal text is written as is.
func (t template) expand(text string, idx []int, conv func(string) string) string {
	if s, ok := t.literal(); ok {
		return s
	}
	n := 0
	for _, sg := range t.segs {
		if sg.kind == segLit {
			n += len(sg.lit)
		} else {
			n += len(group(text, idx, sg.group))
		}
	}
	if n == 0 {
		return ""
	}
	var b strings.Builder
	b.Grow(n)
	t.appendTo(&b, text, idx, conv, nil)
	return b.String()
}

// appendTo writes t for a match to b; esc, when set, writes the group
// values (the CPE escaping).
func (t template) appendTo(b *strings.Builder, text string, idx []int, conv func(string) string, esc func(*strings.Builder, string)) {
	for _, sg := range t.segs {
		var v string
		switch sg.kind {
		case segLit:
			b.WriteString(sg.lit)
			continue
		case segGroup:
			v = group(text, idx, sg.group)
		case segPrintable:
			v = printable(group(text, idx, sg.group))
		case segSubst:
			v = strings.ReplaceAll(group(text, idx, sg.group), sg.from, sg.to)
		}
		if conv != nil {
			v = conv(v)
		}
		if esc != nil {
			esc(b, v)
		} else {
			b.WriteString(v)
		}
	}
}

// printable keeps the printable ASCII bytes of s.
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			b := make([]byte, 0, len(s))
			for j := 0; j < len(s); j++ {
				if s[j] >= 0x20 && s[j] <= 0x7e {
					b = append(b, s[j])
				}
			}
			return string(b)
		}
	}
	return s
}

// cpeParts is the number of colon-separated parts of a CPE 2.3 formatted
// string: "cpe", "2.3", part, vendor, product, version, update, edition,
// language, sw_edition, target_sw, target_hw, other.
const cpeParts = 13

// cpeTemplate is a CPE 2.3 template, one template per part.
type cpeTemplate struct {
	src   string
	parts [cpeParts]template
}

// parseCPE compiles a CPE 2.3 formatted-string template and checks its
// shape: 13 parts, "cpe:2.3:", a part of a/o/h, a vendor and a product.
// Literal text must already be in the bound form (lower case, special
// characters escaped with a backslash); group values are escaped when the
// rule matches, and a part that comes out empty becomes "*".
func parseCPE(s string, groups groupLookup) (cpeTemplate, error) {
	c := cpeTemplate{src: s}
	if strings.HasPrefix(s, "cpe:/") {
		return c, fmt.Errorf("cpe %q is a CPE 2.2 URI: write the CPE 2.3 formatted string (cpe:2.3:a:vendor:product:version:...)", s)
	}
	raw, err := splitCPE(s)
	if err != nil {
		return c, err
	}
	if len(raw) != cpeParts {
		return c, fmt.Errorf("cpe %q has %d parts, want %d (cpe:2.3:part:vendor:product:version:update:edition:language:sw_edition:target_sw:target_hw:other)", s, len(raw), cpeParts)
	}
	if raw[0] != "cpe" || raw[1] != "2.3" {
		return c, fmt.Errorf("cpe %q does not start with cpe:2.3:", s)
	}
	if raw[2] != "a" && raw[2] != "o" && raw[2] != "h" {
		return c, fmt.Errorf("cpe %q: part %q is not a, o or h", s, raw[2])
	}
	for i, p := range raw {
		t, err := parseTemplate(p, groups)
		if err != nil {
			return c, fmt.Errorf("cpe %q: %w", s, err)
		}
		for _, sg := range t.segs {
			if sg.kind != segLit {
				continue
			}
			if err := checkCPELiteral(sg.lit); err != nil {
				return c, fmt.Errorf("cpe %q part %d: %w", s, i+1, err)
			}
		}
		if (i == 3 || i == 4) && t.empty() {
			return c, fmt.Errorf("cpe %q: empty %s", s, [...]string{3: "vendor", 4: "product"}[i])
		}
		c.parts[i] = t
	}
	return c, nil
}

// splitCPE splits at colons not escaped by a backslash and not inside a
// template reference (${...}, $P(...), $SUBST(...)).
func splitCPE(s string) ([]string, error) {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '$':
			if i+1 < len(s) {
				var closer byte
				switch {
				case s[i+1] == '{':
					closer = '}'
				case strings.HasPrefix(s[i+1:], "P(") || strings.HasPrefix(s[i+1:], "SUBST("):
					closer = ')'
				}
				if closer != 0 {
					end := strings.IndexByte(s[i:], closer)
					if end < 0 {
						return nil, fmt.Errorf("cpe %q: unterminated template reference", s)
					}
					i += end
				}
			}
		case ':':
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:]), nil
}

// checkCPELiteral checks text written in a CPE template: lower case
// printable ASCII, no spaces, special characters escaped.
func checkCPELiteral(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.', c == '-', c == '*', c == '?':
		case c >= 'A' && c <= 'Z':
			return fmt.Errorf("%q: upper case (CPE names are lower case)", s)
		case c == '\\':
			if i+1 >= len(s) || s[i+1] <= ' ' || s[i+1] > '~' {
				return fmt.Errorf("%q: dangling backslash", s)
			}
			i++
		case c > ' ' && c <= '~':
			return fmt.Errorf("%q: %q must be escaped as \\%c", s, c, c)
		default:
			return fmt.Errorf("%q: byte %#x not allowed", s, c)
		}
	}
	return nil
}

// expand renders the CPE for a match.
func (c *cpeTemplate) expand(text string, idx []int, conv func(string) string) string {
	var b strings.Builder
	b.Grow(len(c.src) + 16)
	for i := range c.parts {
		if i > 0 {
			b.WriteByte(':')
		}
		before := b.Len()
		c.parts[i].appendTo(&b, text, idx, conv, cpeEscape)
		if b.Len() == before {
			b.WriteByte('*')
		}
	}
	return b.String()
}

// cpeEscape writes a captured value in CPE 2.3 formatted-string form:
// lower case, white space as "_", other punctuation escaped with "\",
// anything outside printable ASCII dropped.
func cpeEscape(b *strings.Builder, v string) {
	v = strings.TrimSpace(v)
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
			b.WriteByte(c)
		case c == ' ' || c == '\t':
			b.WriteByte('_')
		case c > ' ' && c <= '~':
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
}
