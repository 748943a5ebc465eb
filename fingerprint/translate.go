package fingerprint

import (
	"fmt"
	"strconv"
	"strings"
)

// Foreign regexps (nmap's PCRE, Recog's Ruby) are rewritten into Go's RE2
// syntax where the meaning carries over, and refused with a reason where it
// does not (backreferences, lookaround, atomic groups...). Both engines
// match bytes, not UTF-8, so translated patterns run in bytes mode (see
// Rule.Bytes) and every byte at or above 0x80 becomes an \x{..} escape.

type dialect int

const (
	dialectPCRE dialect = iota // nmap-service-probes
	dialectRuby                // Recog
)

// skipError is why a foreign rule cannot be imported. reason is a short
// fixed category for the report; detail is the specific case.
type skipError struct {
	reason string
	detail string
}

func (e *skipError) Error() string {
	if e.detail == "" {
		return e.reason
	}
	return e.reason + ": " + e.detail
}

func skip(reason, format string, args ...any) error {
	return &skipError{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// translate rewrites a foreign pattern into Go syntax for bytes mode.
func translate(src string, d dialect) (string, error) {
	var b strings.Builder
	b.Grow(len(src) + 16)
	inClass := false
	classStart := 0 // position just after "[" or "[^"
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\\':
			if i+1 >= len(src) {
				return "", skip("bad pattern", "trailing backslash")
			}
			n, err := translateEscape(&b, src, i, inClass, d)
			if err != nil {
				return "", err
			}
			i += n - 1
		case c >= 0x80:
			fmt.Fprintf(&b, `\x{%02x}`, c)
		case inClass:
			switch {
			case c == ']' && i > classStart:
				inClass = false
				b.WriteByte(c)
			case c == '[' && i+1 < len(src) && (src[i+1] == ':' || src[i+1] == '=' || src[i+1] == '.'):
				// POSIX class [:alpha:]: copy it whole.
				end := strings.Index(src[i+2:], string(src[i+1])+"]")
				if end < 0 {
					return "", skip("bad pattern", "unterminated POSIX class")
				}
				if src[i+1] != ':' {
					return "", skip("unsupported construct", "POSIX collating element %s", src[i:i+2+end+2])
				}
				b.WriteString(src[i : i+2+end+2])
				i += 2 + end + 1
			default:
				b.WriteByte(c)
			}
		case c == '[':
			inClass = true
			b.WriteByte(c)
			classStart = i + 1
			if classStart < len(src) && src[classStart] == '^' {
				b.WriteByte('^')
				i++
				classStart++
			}
		case c == '(':
			n, err := translateGroup(&b, src, i, d)
			if err != nil {
				return "", err
			}
			i += n - 1
		case c == '$' && d == dialectPCRE:
			// PCRE's $ (no m flag): end of text or before a final newline.
			b.WriteString(`(?:\n?\z)`)
		case c == '*' || c == '+' || c == '?' || c == '}':
			b.WriteByte(c)
			if i+1 < len(src) && src[i+1] == '+' {
				return "", skip("possessive quantifier", "%s", excerpt(src, i))
			}
		default:
			b.WriteByte(c)
		}
	}
	if inClass {
		return "", skip("bad pattern", "unterminated character class")
	}
	return b.String(), nil
}

// excerpt shows the pattern around i.
func excerpt(src string, i int) string {
	lo, hi := max(0, i-8), min(len(src), i+8)
	return strconv.Quote(src[lo:hi])
}

// headerLines is nmap's idiom for "any number of header lines, without
// crossing the blank line that ends the header". The negative lookahead
// only says that lines after the first are not empty, and, at the end,
// that the header does not end there, which the letter that must follow
// already ensures. So when a letter follows, it has an exact RE2 form.
const (
	headerLines   = `(?:[^\r\n]*\r\n(?!\r\n))*?`
	headerLinesGo = `(?:[^\r\n]*\r\n(?:[^\r\n]+\r\n)*?)??`
)

// translateGroup handles "(" at src[i]; it returns the bytes consumed.
func translateGroup(b *strings.Builder, src string, i int, d dialect) (int, error) {
	rest := src[i+1:]
	if strings.HasPrefix(src[i:], headerLines) {
		if n := i + len(headerLines); n < len(src) && (src[n] >= 'A' && src[n] <= 'Z' || src[n] >= 'a' && src[n] <= 'z') {
			b.WriteString(headerLinesGo)
			return len(headerLines), nil
		}
	}
	if !strings.HasPrefix(rest, "?") {
		if strings.HasPrefix(rest, "*") {
			return 0, skip("unsupported construct", "verb %s", excerpt(src, i))
		}
		b.WriteByte('(')
		return 1, nil
	}
	r := rest[1:]
	switch {
	case strings.HasPrefix(r, ":"):
		b.WriteString("(?:")
		return 3, nil
	case strings.HasPrefix(r, "="), strings.HasPrefix(r, "!"):
		return 0, skip("lookahead", "%s", excerpt(src, i))
	case strings.HasPrefix(r, "<="), strings.HasPrefix(r, "<!"):
		return 0, skip("lookbehind", "%s", excerpt(src, i))
	case strings.HasPrefix(r, ">"):
		return 0, skip("atomic group", "%s", excerpt(src, i))
	case strings.HasPrefix(r, "|"):
		return 0, skip("unsupported construct", "branch reset %s", excerpt(src, i))
	case strings.HasPrefix(r, "("):
		return 0, skip("conditional", "%s", excerpt(src, i))
	case strings.HasPrefix(r, "#"):
		end := strings.IndexByte(r, ')')
		if end < 0 {
			return 0, skip("bad pattern", "unterminated comment")
		}
		return 2 + end + 1, nil
	case strings.HasPrefix(r, "P<"), strings.HasPrefix(r, "<"), strings.HasPrefix(r, "'"):
		start := 2
		closer := byte('>')
		switch {
		case strings.HasPrefix(r, "P<"):
			start = 3
		case r[0] == '\'':
			closer = '\''
		}
		end := strings.IndexByte(r[start-1:], closer)
		if end < 0 {
			return 0, skip("bad pattern", "unterminated group name")
		}
		name := r[start-1 : start-1+end]
		b.WriteString("(?P<" + name + ">")
		return 1 + start + end + 1, nil
	case strings.HasPrefix(r, "P="), strings.HasPrefix(r, "P>"), strings.HasPrefix(r, "&"):
		return 0, skip("backreference", "%s", excerpt(src, i))
	case strings.HasPrefix(r, "R"), len(r) > 0 && (r[0] >= '0' && r[0] <= '9' || r[0] == '+' || r[0] == '-' && len(r) > 1 && r[1] >= '0' && r[1] <= '9'):
		return 0, skip("recursion", "%s", excerpt(src, i))
	}
	// Flags: (?imsx-imsx) or (?imsx-imsx:...).
	j := 0
	var flags strings.Builder
	for j < len(r) && r[j] != ')' && r[j] != ':' {
		switch f := r[j]; f {
		case 'i', '-':
			flags.WriteByte(f)
		case 's':
			flags.WriteByte('s')
		case 'm':
			if d == dialectRuby {
				flags.WriteByte('s') // Ruby's m is dot-matches-newline
			} else {
				flags.WriteByte('m')
			}
		case 'x':
			return 0, skip("extended mode", "(?x) %s", excerpt(src, i))
		case 'U':
			flags.WriteByte('U')
		default:
			return 0, skip("unsupported construct", "group flag %q in %s", f, excerpt(src, i))
		}
		j++
	}
	if j >= len(r) {
		return 0, skip("bad pattern", "unterminated group")
	}
	f := flags.String()
	if f == "" || f == "-" {
		if r[j] == ':' {
			b.WriteString("(?:")
		}
		return 2 + j + 1, nil
	}
	b.WriteString("(?" + f + string(r[j]))
	return 2 + j + 1, nil
}

// translateEscape handles "\" at src[i]; it returns the bytes consumed.
func translateEscape(b *strings.Builder, src string, i int, inClass bool, d dialect) (int, error) {
	c := src[i+1]
	hexByte := func(v int) {
		fmt.Fprintf(b, `\x{%02x}`, v)
	}
	switch {
	case c >= 0x80:
		hexByte(int(c))
		return 2, nil
	case c == 'x':
		rest := src[i+2:]
		if strings.HasPrefix(rest, "{") {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return 0, skip("bad pattern", "unterminated \\x{")
			}
			v, err := strconv.ParseUint(rest[1:end], 16, 32)
			if err != nil || v > 0xff {
				return 0, skip("unsupported escape", "\\x{%s} (bytes only)", rest[1:end])
			}
			hexByte(int(v))
			return 2 + end + 1, nil
		}
		n := 0
		for n < 2 && n < len(rest) && isHex(rest[n]) {
			n++
		}
		v := 0
		if n > 0 {
			x, _ := strconv.ParseUint(rest[:n], 16, 8)
			v = int(x)
		}
		hexByte(v)
		return 2 + n, nil
	case c == '0' || (inClass && c >= '1' && c <= '7'):
		// Octal: up to three digits in all.
		n := 1
		for n < 3 && i+1+n < len(src) && src[i+1+n] >= '0' && src[i+1+n] <= '7' {
			n++
		}
		v, _ := strconv.ParseUint(src[i+1:i+1+n], 8, 16)
		if v > 0xff {
			return 0, skip("unsupported escape", "octal \\%s", src[i+1:i+1+n])
		}
		hexByte(int(v))
		return 1 + n, nil
	case c >= '1' && c <= '9':
		return 0, skip("backreference", "\\%c in %s", c, excerpt(src, i))
	case c == 'k' || c == 'g':
		return 0, skip("backreference", "\\%c in %s", c, excerpt(src, i))
	case c == 'e':
		hexByte(0x1b)
		return 2, nil
	case c == 'a' || c == 'f' || c == 'n' || c == 'r' || c == 't':
		b.WriteString(src[i : i+2])
		return 2, nil
	case c == 'b' && inClass:
		hexByte(0x08)
		return 2, nil
	case c == 'v':
		if d == dialectRuby {
			hexByte(0x0b)
		} else {
			classOrSet(b, inClass, `\n\x{0b}\f\r\x{85}`, false)
		}
		return 2, nil
	case c == 'h' || c == 'H':
		set := `\t \x{a0}`
		if d == dialectRuby {
			set = `0-9a-fA-F`
		}
		if c == 'H' && inClass {
			return 0, skip("unsupported escape", "\\H in a class")
		}
		classOrSet(b, inClass, set, c == 'H')
		return 2, nil
	case c == 'd' || c == 'D' || c == 'w' || c == 'W' || c == 's' || c == 'S':
		b.WriteString(src[i : i+2])
		return 2, nil
	case !inClass && (c == 'b' || c == 'B' || c == 'A' || c == 'z'):
		b.WriteString(src[i : i+2])
		return 2, nil
	case !inClass && c == 'Z':
		b.WriteString(`(?:\n?\z)`)
		return 2, nil
	case !inClass && c == 'R':
		b.WriteString(`(?:\r\n|[\n\x{0b}\f\r\x{85}])`)
		return 2, nil
	case c == 'c':
		if i+2 >= len(src) {
			return 0, skip("bad pattern", "\\c at the end")
		}
		x := src[i+2]
		if x >= 'a' && x <= 'z' {
			x -= 'a' - 'A'
		}
		hexByte(int(x ^ 0x40))
		return 3, nil
	case c == 'Q':
		end := strings.Index(src[i+2:], `\E`)
		lit := src[i+2:]
		used := len(src) - i
		if end >= 0 {
			lit = lit[:end]
			used = 2 + end + 2
		}
		for k := 0; k < len(lit); k++ {
			ch := lit[k]
			switch {
			case ch >= 0x80 || ch < 0x20:
				hexByte(int(ch))
			case strings.IndexByte(`\.+*?()|[]{}^$-#&~ `, ch) >= 0:
				if ch == ' ' || ch == '#' || ch == '&' || ch == '~' {
					b.WriteByte(ch)
				} else {
					b.WriteByte('\\')
					b.WriteByte(ch)
				}
			default:
				b.WriteByte(ch)
			}
		}
		return used, nil
	case c == 'E':
		return 2, nil // stray \E: nothing
	case c == 'p' || c == 'P':
		b.WriteString(src[i : i+2])
		return 2, nil
	case c == 'G':
		return 0, skip("unsupported escape", `\G anchor`)
	case c == 'K':
		return 0, skip("unsupported escape", `\K`)
	case isAlnum(c) || c == '_':
		return 0, skip("unsupported escape", "\\%c", c)
	case c < 0x20 || c == 0x7f:
		hexByte(int(c))
		return 2, nil
	default:
		// Escaped punctuation is itself in both syntaxes.
		b.WriteString(src[i : i+2])
		return 2, nil
	}
}

// classOrSet writes a set of class items, bracketed unless already in a
// class.
func classOrSet(b *strings.Builder, inClass bool, items string, negate bool) {
	if inClass {
		b.WriteString(items)
		return
	}
	b.WriteByte('[')
	if negate {
		b.WriteByte('^')
	}
	b.WriteString(items)
	b.WriteByte(']')
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
