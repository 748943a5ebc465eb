package query

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error is a query error that points into the query text.
type Error struct {
	Pos, End Pos    // byte range of the offending text (End == Pos: a point)
	Line     int    // 1-based; 0 if not located yet (see Locate)
	Column   int    // 1-based, in runes
	Msg      string // what is wrong, e.g. `unknown field "prot" (did you mean "port"?)`
	Expected string // what the parser expected there, if it knows, e.g. `")"`
}

// Error renders "line:col: msg", or just msg if the error has not been
// located in a query text (errors from Compile, see Locate).
func (e *Error) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg)
}

// Locate sets Line and Column from Pos for the query text q. Parse
// returns located errors; Compile cannot (it sees only the tree), so a
// caller that compiles a tree from Parse locates its errors with the same
// text (CompileQuery does both).
func (e *Error) Locate(q string) {
	e.Line, e.Column = lineCol(q, e.Pos)
}

// Caret renders the line of q that holds the error and, under it, a caret
// at the error's column with "~" under the rest of its span:
//
//	port:22 prot:80
//	        ^~~~
//
// Tabs in the line are kept in the padding so the caret lines up.
func (e *Error) Caret(q string) string {
	pos := clampPos(q, e.Pos)
	end := clampPos(q, e.End)
	ls := strings.LastIndexByte(q[:pos], '\n') + 1
	le := strings.IndexByte(q[pos:], '\n')
	if le < 0 {
		le = len(q)
	} else {
		le += int(pos)
	}
	if int(end) > le {
		end = Pos(le)
	}
	var b strings.Builder
	b.WriteString(q[ls:le])
	b.WriteByte('\n')
	for _, r := range q[ls:pos] {
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	b.WriteByte('^')
	if n := utf8.RuneCountInString(q[pos:end]); n > 1 {
		b.WriteString(strings.Repeat("~", n-1))
	}
	return b.String()
}

func clampPos(q string, p Pos) Pos {
	if p < 0 {
		return 0
	}
	if int(p) > len(q) {
		return Pos(len(q))
	}
	for p > 0 && int(p) < len(q) && !utf8.RuneStart(q[p]) {
		p--
	}
	return p
}

// lineCol converts a byte offset into a 1-based line and rune column.
func lineCol(q string, p Pos) (line, col int) {
	p = clampPos(q, p)
	line, col = 1, 1
	for _, r := range q[:p] {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func errorf(pos, end Pos, format string, args ...any) *Error {
	if end < pos {
		end = pos
	}
	return &Error{Pos: pos, End: end, Msg: fmt.Sprintf(format, args...)}
}
