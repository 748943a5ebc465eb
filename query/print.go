package query

import (
	"strings"
	"unicode/utf8"
)

// Precedence, loosest first. The tree keeps no parentheses: the printer
// adds them where precedence and associativity need them, so that the
// printed query parses back to the same tree (And and Or are left-
// associative: a right operand of the same operator needs parentheses).
const (
	precOr = iota + 1
	precAnd
	precUnary
)

func prec(n Node) int {
	switch n.(type) {
	case *Or:
		return precOr
	case *And:
		return precAnd
	}
	return precUnary
}

// write prints n into b, in parentheses if its parent (of precedence
// parent; right: n is the right operand) needs them.
func write(b *strings.Builder, n Node, parent int, right bool) {
	p := prec(n)
	paren := p < parent || right && p == parent && p != precUnary
	if paren {
		b.WriteByte('(')
	}
	switch n := n.(type) {
	case *Or:
		write(b, n.LHS, precOr, false)
		b.WriteString(" OR ")
		write(b, n.RHS, precOr, true)
	case *And:
		write(b, n.LHS, precAnd, false)
		if n.Implicit {
			b.WriteByte(' ')
		} else {
			b.WriteString(" AND ")
		}
		write(b, n.RHS, precAnd, true)
	case *Not:
		if n.Minus {
			b.WriteByte('-')
		} else {
			b.WriteString("NOT ")
		}
		write(b, n.X, precUnary, false)
	default:
		b.WriteString(n.String())
	}
	if paren {
		b.WriteByte(')')
	}
}

func printNode(n Node) string {
	var b strings.Builder
	write(&b, n, 0, false)
	return b.String()
}

func (n *Or) String() string  { return printNode(n) }
func (n *And) String() string { return printNode(n) }
func (n *Not) String() string { return printNode(n) }

func (n *Text) String() string {
	if n.Quoted || !bareWordOK(n.Value) {
		return quote(n.Value)
	}
	return n.Value
}

func (n *Term) String() string {
	if n.Op == OpExists {
		return "_exists_:" + n.Field
	}
	var b strings.Builder
	b.WriteString(n.Field)
	b.WriteByte(':')
	if n.Op == OpRange && len(n.Values) == 2 {
		b.WriteString(map[bool]string{true: "[", false: "{"}[n.IncludeLo])
		b.WriteString(rangeElem(n.Values[0]))
		b.WriteString(" TO ")
		b.WriteString(rangeElem(n.Values[1]))
		b.WriteString(map[bool]string{true: "]", false: "}"}[n.IncludeHi])
		return b.String()
	}
	if n.Op != OpEq {
		b.WriteString(n.Op.String())
	}
	for i, v := range n.Values {
		if i > 0 {
			b.WriteByte(',')
		}
		s := v.Text
		bare := !v.Quoted && bareValueOK(s, false)
		if bare && i == 0 {
			switch {
			case n.Op == OpEq && strings.ContainsAny(s[:1], "<>[{"):
				bare = false // would read as a comparison or a range
			case (n.Op == OpLt || n.Op == OpGt) && s[0] == '=':
				bare = false // "<" "=5" would read as "<=" "5"
			}
		}
		if bare {
			b.WriteString(s)
		} else {
			b.WriteString(quote(s))
		}
	}
	return b.String()
}

func rangeElem(v Value) string {
	if !v.Quoted && bareValueOK(v.Text, true) {
		return v.Text
	}
	return quote(v.Text)
}

// bareValueOK reports whether s reads back as one bare value.
func bareValueOK(s string, inRange bool) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if valueStop(r, inRange) {
			return false
		}
	}
	return true
}

// bareWordOK reports whether s reads back as one bare free-text word.
func bareWordOK(s string) bool {
	if s == "" || !utf8.ValidString(s) || s[0] == '-' || s == "AND" || s == "OR" || s == "NOT" {
		return false
	}
	for _, r := range s {
		if wordStop(r) {
			return false
		}
	}
	if isIdentStart(s[0]) { // "name:..." would read as a term
		i := 1
		for i < len(s) && isIdentChar(s[i]) {
			i++
		}
		if i < len(s) && s[i] == ':' {
			return false
		}
	}
	return true
}

// quote double-quotes s, escaping `"` and `\`.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
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
