package query

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokType uint8

const (
	tEOF    tokType = iota
	tError          // val is the message; lexing stopped here
	tWord           // bare free-text word
	tString         // quoted free text, unescaped
	tField          // "name:" (val is the lower-cased name)
	tCmp            // < <= > >= right after "name:"
	tValue          // bare value of a term
	tQValue         // quoted value of a term, unescaped
	tComma          // between values of a list
	tLBrack         // [ or { opening a range
	tRBrack         // ] or } closing a range
	tTo             // TO in a range
	tLParen
	tRParen
	tAnd
	tOr
	tNot
	tMinus // "-" negating the term right after it
)

type token struct {
	typ      tokType
	pos, end Pos
	val      string
	exp      string // tError: what was expected
}

// lex splits src into tokens. It ends with tEOF, or with tError at the
// first lexical error. The lexer knows the one context the grammar needs:
// what follows "name:" is a value (which may hold ":", "-", keywords...),
// so that `cpe:cpe:2.3:a:*` and `ip:2001:db8::1` are single values.
func lex(src string) []token {
	l := &lexer{src: src}
	l.run()
	return l.toks
}

type lexer struct {
	src  string
	pos  int
	toks []token
}

func (l *lexer) emit(typ tokType, start int, val string) {
	l.toks = append(l.toks, token{typ: typ, pos: Pos(start), end: Pos(l.pos), val: val})
}

func (l *lexer) fail(start, end int, msg, expected string) bool {
	l.toks = append(l.toks, token{typ: tError, pos: Pos(start), end: Pos(end), val: msg, exp: expected})
	return false
}

func (l *lexer) peekRune() (rune, int) {
	if l.pos >= len(l.src) {
		return -1, 0
	}
	return utf8.DecodeRuneInString(l.src[l.pos:])
}

func (l *lexer) skipSpace() {
	for {
		r, w := l.peekRune()
		if w == 0 || !unicode.IsSpace(r) {
			return
		}
		l.pos += w
	}
}

func (l *lexer) run() {
	for {
		l.skipSpace()
		start := l.pos
		r, w := l.peekRune()
		ok := true
		switch {
		case w == 0:
			l.emit(tEOF, start, "")
			return
		case r == '(':
			l.pos++
			l.emit(tLParen, start, "(")
		case r == ')':
			l.pos++
			l.emit(tRParen, start, ")")
		case r == '"':
			var s string
			if s, ok = l.quoted(); ok {
				l.emit(tString, start, s)
			}
		case r == '-':
			l.pos++
			if n, nw := l.peekRune(); nw == 0 || unicode.IsSpace(n) || n == ')' {
				ok = l.fail(start, l.pos, `expected a term after "-"`, "a term")
			} else {
				l.emit(tMinus, start, "-")
			}
		default:
			ok = l.word()
		}
		if !ok {
			return
		}
	}
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '.'
}

// wordStop reports whether r ends a bare free-text word.
func wordStop(r rune) bool {
	return unicode.IsSpace(r) || r == '(' || r == ')' || r == '"'
}

// valueStop reports whether r ends a bare value: in a list "," separates
// values; in a range "]" and "}" close it.
func valueStop(r rune, inRange bool) bool {
	if wordStop(r) {
		return true
	}
	if inRange {
		return r == ']' || r == '}'
	}
	return r == ','
}

// word lexes a keyword, a bare word, or "name:" and the value after it.
func (l *lexer) word() bool {
	src, start := l.src, l.pos
	if isIdentStart(src[start]) {
		i := start + 1
		for i < len(src) && isIdentChar(src[i]) {
			i++
		}
		if i < len(src) && src[i] == ':' {
			l.pos = i + 1
			l.emit(tField, start, strings.ToLower(src[start:i]))
			return l.value(src[start:l.pos])
		}
	}
	for {
		r, w := l.peekRune()
		if w == 0 || wordStop(r) {
			break
		}
		l.pos += w
	}
	switch w := src[start:l.pos]; w {
	case "AND":
		l.emit(tAnd, start, w)
	case "OR":
		l.emit(tOr, start, w)
	case "NOT":
		l.emit(tNot, start, w)
	default:
		l.emit(tWord, start, w)
	}
	return true
}

// value lexes what follows "name:": an optional comparison and a list of
// values, or a range.
func (l *lexer) value(field string) bool {
	start := l.pos
	if l.pos < len(l.src) {
		switch l.src[l.pos] {
		case '<', '>':
			l.pos++
			if l.pos < len(l.src) && l.src[l.pos] == '=' {
				l.pos++
			}
			op := l.src[start:l.pos]
			l.emit(tCmp, start, op)
			return l.list(field + op)
		case '[', '{':
			return l.rangeValue()
		}
	}
	return l.list(field)
}

// list lexes value ("," value)*.
func (l *lexer) list(after string) bool {
	for {
		if !l.element(after, false) {
			return false
		}
		if l.pos >= len(l.src) || l.src[l.pos] != ',' {
			return true
		}
		l.pos++
		l.emit(tComma, l.pos-1, ",")
		after = ","
	}
}

// element lexes one quoted or bare value.
func (l *lexer) element(after string, inRange bool) bool {
	start := l.pos
	if l.pos < len(l.src) && l.src[l.pos] == '"' {
		s, ok := l.quoted()
		if ok {
			l.emit(tQValue, start, s)
		}
		return ok
	}
	for {
		r, w := l.peekRune()
		if w == 0 || valueStop(r, inRange) {
			break
		}
		l.pos += w
	}
	if l.pos == start {
		return l.fail(start, start, "expected a value after "+quote(after), "a value")
	}
	l.emit(tValue, start, l.src[start:l.pos])
	return true
}

// rangeValue lexes "[" lo "TO" hi "]" (either bracket may be a brace:
// an exclusive bound).
func (l *lexer) rangeValue() bool {
	open := l.pos
	l.pos++
	l.emit(tLBrack, open, l.src[open:l.pos])
	l.skipSpace()
	if !l.element(l.src[open:open+1], true) {
		return false
	}
	l.skipSpace()
	if !strings.HasPrefix(l.src[l.pos:], "TO") || !l.stopsAt(l.pos+2) {
		return l.fail(l.pos, l.pos, `expected "TO" in the range`, `"TO"`)
	}
	l.pos += 2
	l.emit(tTo, l.pos-2, "TO")
	l.skipSpace()
	if !l.element("TO", true) {
		return false
	}
	l.skipSpace()
	if l.pos < len(l.src) && (l.src[l.pos] == ']' || l.src[l.pos] == '}') {
		l.pos++
		l.emit(tRBrack, l.pos-1, l.src[l.pos-1:l.pos])
		return true
	}
	return l.fail(l.pos, l.pos, `expected "]" or "}" to close the range opened at column `+strconv.Itoa(runeCol(l.src, open)), `"]"`)
}

// stopsAt reports whether a bare range element would end at byte i.
func (l *lexer) stopsAt(i int) bool {
	if i >= len(l.src) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(l.src[i:])
	return valueStop(r, true)
}

// quoted lexes a double-quoted string. `\"` and `\\` are escapes; any
// other backslash is kept as it is (so `"C:\Windows"` needs no escaping).
func (l *lexer) quoted() (string, bool) {
	start := l.pos
	l.pos++
	var b strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '\\' && l.pos+1 < len(l.src) && (l.src[l.pos+1] == '"' || l.src[l.pos+1] == '\\'):
			b.WriteByte(l.src[l.pos+1])
			l.pos += 2
		case c == '"':
			l.pos++
			return b.String(), true
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	return "", l.fail(start, len(l.src), "unterminated quoted string", `a closing '"'`)
}

// runeCol is the 1-based rune column of byte offset i on its line.
func runeCol(s string, i int) int {
	_, c := lineCol(s, Pos(i))
	return c
}
