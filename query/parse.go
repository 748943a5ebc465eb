package query

import (
	"strings"
	"unicode/utf8"
)

// Limits on what Parse accepts.
const (
	MaxQueryLen = 4096 // bytes
	MaxDepth    = 64   // nested parentheses and NOTs
)

// Parse parses a query. The empty (or blank) query parses to nil, which
// Compile turns into a predicate that always holds. Errors are *Error,
// located in s.
//
// Grammar (NOT binds tighter than AND, AND tighter than OR; AND is
// implicit between adjacent terms):
//
//	query   = [ or ] EOF
//	or      = and { "OR" and }
//	and     = unary { [ "AND" ] unary }
//	unary   = ( "NOT" | "-" ) unary | primary
//	primary = "(" or ")" | term | WORD | STRING
//	term    = FIELD ":" ( [ cmp ] value { "," value } | range )
//	        | "_exists_:" FIELD
//	cmp     = "<" | "<=" | ">" | ">="
//	range   = ( "[" | "{" ) value "TO" value ( "]" | "}" )
//	value   = BARE | STRING
func Parse(s string) (Node, error) {
	n, err := parse(s)
	if err != nil {
		err.Locate(s)
		return nil, err
	}
	return n, nil
}

func parse(s string) (Node, *Error) {
	if len(s) > MaxQueryLen {
		return nil, errorf(MaxQueryLen, Pos(len(s)), "query is longer than %d bytes", MaxQueryLen)
	}
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w == 1 {
			return nil, errorf(Pos(i), Pos(i+1), "invalid UTF-8 in query")
		}
		i += w
	}
	p := &parser{src: s, toks: lex(s)}
	if p.peek().typ == tEOF {
		return nil, nil
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	switch t := p.peek(); t.typ {
	case tEOF:
		return n, nil
	case tRParen:
		e := errorf(t.pos, t.end, `unbalanced ")"`)
		return nil, e
	default:
		return nil, p.unexpected(t, "")
	}
}

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.typ != tEOF && t.typ != tError {
		p.i++
	}
	return t
}

// startsTerm reports whether t can begin a unary expression (a lexer
// error counts: parsing it reports the error).
func startsTerm(t token) bool {
	switch t.typ {
	case tWord, tString, tField, tLParen, tNot, tMinus, tError:
		return true
	}
	return false
}

func lexError(t token) *Error {
	e := errorf(t.pos, t.end, "%s", t.val)
	e.Expected = t.exp
	return e
}

// unexpected reports token t where a term was expected (after op, if set).
func (p *parser) unexpected(t token, after string) *Error {
	if t.typ == tError {
		return lexError(t)
	}
	var e *Error
	switch {
	case t.typ == tRParen && after == "":
		e = errorf(t.pos, t.end, `unbalanced ")"`)
	case after != "" && t.typ == tEOF:
		e = errorf(t.pos, t.end, "expected a term after %s", after)
	case after != "":
		e = errorf(t.pos, t.end, "expected a term after %s, found %s", after, p.describe(t))
	case t.typ == tEOF:
		e = errorf(t.pos, t.end, "expected a term")
	default:
		e = errorf(t.pos, t.end, "unexpected %s", p.describe(t))
	}
	e.Expected = "a term"
	return e
}

func (p *parser) describe(t token) string {
	switch t.typ {
	case tEOF:
		return "end of query"
	case tWord, tValue:
		return quote(t.val)
	}
	return quote(p.src[t.pos:t.end])
}

func (p *parser) enter(t token) *Error {
	p.depth++
	if p.depth > MaxDepth {
		return errorf(t.pos, t.end, "query nests deeper than %d levels", MaxDepth)
	}
	return nil
}

func (p *parser) parseOr() (Node, *Error) {
	lhs, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.peek().typ == tOr {
		op := p.next()
		if !startsTerm(p.peek()) {
			return nil, p.unexpected(p.peek(), `"OR"`)
		}
		rhs, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		lhs = &Or{LHS: lhs, RHS: rhs, OpPos: op.pos}
	}
	return lhs, nil
}

func (p *parser) parseAnd() (Node, *Error) {
	lhs, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		implicit := true
		switch {
		case t.typ == tAnd:
			p.next()
			implicit = false
			if !startsTerm(p.peek()) {
				return nil, p.unexpected(p.peek(), `"AND"`)
			}
		case !startsTerm(t):
			return lhs, nil
		}
		rhs, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		lhs = &And{LHS: lhs, RHS: rhs, OpPos: t.pos, Implicit: implicit}
	}
}

func (p *parser) parseUnary() (Node, *Error) {
	t := p.peek()
	if t.typ != tNot && t.typ != tMinus {
		return p.parsePrimary()
	}
	p.next()
	if err := p.enter(t); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if !startsTerm(p.peek()) {
		return nil, p.unexpected(p.peek(), quote(t.val))
	}
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	return &Not{X: x, OpPos: t.pos, Minus: t.typ == tMinus}, nil
}

func (p *parser) parsePrimary() (Node, *Error) {
	t := p.next()
	switch t.typ {
	case tWord:
		return &Text{Value: t.val, Pos: t.pos, End: t.end}, nil
	case tString:
		return &Text{Value: t.val, Quoted: true, Pos: t.pos, End: t.end}, nil
	case tField:
		return p.parseTerm(t)
	case tLParen:
		if err := p.enter(t); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		if p.peek().typ == tRParen {
			c := p.peek()
			e := errorf(t.pos, c.end, "empty parentheses")
			e.Expected = "a term"
			return nil, e
		}
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		c := p.next()
		switch c.typ {
		case tRParen:
			return n, nil
		case tError:
			return nil, lexError(c)
		}
		e := errorf(t.pos, t.end, `unclosed "("`)
		e.Expected = `")"`
		return nil, e
	}
	return nil, p.unexpected(t, "")
}

// parseTerm parses what follows a "name:" token.
func (p *parser) parseTerm(ft token) (Node, *Error) {
	if ft.val == "_exists_" {
		v := p.next()
		switch v.typ {
		case tError:
			return nil, lexError(v)
		case tValue, tQValue:
		default:
			return nil, errorf(v.pos, v.end, `expected a field name after "_exists_:"`)
		}
		if p.peek().typ == tComma {
			return nil, errorf(p.peek().pos, p.peek().end, "_exists_ takes one field")
		}
		name := strings.ToLower(v.val)
		f := lookupAny(name)
		if f == nil {
			return nil, unknownField(name, v.pos, v.end, allNames)
		}
		t := &Term{Field: name, Op: OpExists, Pos: ft.pos, End: v.end}
		if err := checkTerm(f, t); err != nil {
			return nil, err
		}
		return t, nil
	}
	f := lookupAny(ft.val)
	if f == nil {
		return nil, unknownField(ft.val, ft.pos, ft.end-1, allNames)
	}
	t := &Term{Field: ft.val, Pos: ft.pos, End: ft.end}
	switch p.peek().typ {
	case tCmp:
		switch p.next().val {
		case "<":
			t.Op = OpLt
		case "<=":
			t.Op = OpLe
		case ">":
			t.Op = OpGt
		default:
			t.Op = OpGe
		}
	case tLBrack:
		t.Op = OpRange
		t.IncludeLo = p.next().val == "["
		lo, err := p.value()
		if err != nil {
			return nil, err
		}
		if to := p.next(); to.typ != tTo {
			return nil, p.unexpected(to, "")
		}
		hi, err := p.value()
		if err != nil {
			return nil, err
		}
		rb := p.next()
		if rb.typ != tRBrack {
			return nil, p.unexpected(rb, "")
		}
		t.IncludeHi = rb.val == "]"
		t.Values = []Value{lo, hi}
		t.End = rb.end
		if err := checkTerm(f, t); err != nil {
			return nil, err
		}
		return t, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		t.Values = append(t.Values, v)
		t.End = v.End
		if p.peek().typ != tComma {
			break
		}
		p.next()
	}
	if err := checkTerm(f, t); err != nil {
		return nil, err
	}
	return t, nil
}

func (p *parser) value() (Value, *Error) {
	v := p.next()
	switch v.typ {
	case tValue, tQValue:
		return Value{Text: v.val, Quoted: v.typ == tQValue, Pos: v.pos, End: v.end}, nil
	case tError:
		return Value{}, lexError(v)
	}
	e := errorf(v.pos, v.end, "expected a value, found %s", p.describe(v))
	e.Expected = "a value"
	return Value{}, e
}
