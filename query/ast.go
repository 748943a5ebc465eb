package query

// Pos is a byte offset into the query text.
type Pos int

// Node is a node of a parsed query: *And, *Or, *Not, *Term or *Text.
type Node interface {
	// String prints the node as a canonical query that parses back to an
	// equal node (see Equal).
	String() string
	// Span is the byte range [start, end) of the query text the node was
	// parsed from (the tree keeps no parentheses: a group's span is that
	// of what is inside them).
	Span() (start, end Pos)
	node()
}

// And matches what both sides match. Terms written next to each other
// are an implicit AND (Implicit is true); "a AND b" is explicit.
type And struct {
	LHS, RHS Node
	OpPos    Pos  // position of "AND", or of the start of RHS if implicit
	Implicit bool // written without "AND"
}

// Or matches what either side matches.
type Or struct {
	LHS, RHS Node
	OpPos    Pos // position of "OR"
}

// Not matches what X does not match. "-x" and "NOT x" mean the same;
// Minus records which was written, so that the printer keeps it.
type Not struct {
	X     Node
	OpPos Pos // position of "NOT" or "-"
	Minus bool
}

// Op is the comparison of a Term.
type Op uint8

const (
	OpEq     Op = iota // field:v or field:v1,v2 (any of the values)
	OpLt               // field:<v
	OpLe               // field:<=v
	OpGt               // field:>v
	OpGe               // field:>=v
	OpRange            // field:[lo TO hi], bounds per IncludeLo/IncludeHi
	OpExists           // _exists_:field
)

var opNames = [...]string{OpEq: "", OpLt: "<", OpLe: "<=", OpGt: ">", OpGe: ">=", OpRange: "range", OpExists: "exists"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "op?"
}

// Value is one value of a Term as the user wrote it. A quoted value is
// literal; in a bare value "*" and "?" are wildcards.
type Value struct {
	Text     string // unescaped
	Quoted   bool
	Pos, End Pos // the value in the query, including quotes
}

// Wildcard reports whether v is a bare value with "*" or "?" in it.
func (v Value) Wildcard() bool {
	return !v.Quoted && containsWildcard(v.Text)
}

// isStar reports whether v is the bare "*" (any value: the field exists,
// or an open range bound).
func (v Value) isStar() bool { return !v.Quoted && v.Text == "*" }

// Term is field:value and its variants. Field is the name as written
// (lower-cased), which may be an alias; the compiler resolves it for a
// target. For OpExists Field is the field tested and Values is empty.
// For OpRange Values holds the two bounds.
type Term struct {
	Field     string
	Op        Op
	Values    []Value
	IncludeLo bool // OpRange: "[" rather than "{"
	IncludeHi bool // OpRange: "]" rather than "}"
	Pos, End  Pos
}

// Wildcard reports whether any value of t is a wildcard pattern.
func (t *Term) Wildcard() bool {
	for _, v := range t.Values {
		if v.Wildcard() {
			return true
		}
	}
	return false
}

// Text is free text: it matches the banner (services) or the payload
// (events), case-insensitively, anywhere in it.
type Text struct {
	Value    string
	Quoted   bool
	Pos, End Pos
}

func (*And) node()  {}
func (*Or) node()   {}
func (*Not) node()  {}
func (*Term) node() {}
func (*Text) node() {}

func (n *And) Span() (Pos, Pos) { return span2(n.LHS, n.RHS) }
func (n *Or) Span() (Pos, Pos)  { return span2(n.LHS, n.RHS) }
func (n *Not) Span() (Pos, Pos) {
	_, e := n.X.Span()
	return n.OpPos, e
}
func (n *Term) Span() (Pos, Pos) { return n.Pos, n.End }
func (n *Text) Span() (Pos, Pos) { return n.Pos, n.End }

func span2(a, b Node) (Pos, Pos) {
	s, _ := a.Span()
	_, e := b.Span()
	return s, e
}

// Equal reports whether a and b are the same query, ignoring positions.
func Equal(a, b Node) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case *And:
		b, ok := b.(*And)
		return ok && a.Implicit == b.Implicit && Equal(a.LHS, b.LHS) && Equal(a.RHS, b.RHS)
	case *Or:
		b, ok := b.(*Or)
		return ok && Equal(a.LHS, b.LHS) && Equal(a.RHS, b.RHS)
	case *Not:
		b, ok := b.(*Not)
		return ok && a.Minus == b.Minus && Equal(a.X, b.X)
	case *Text:
		b, ok := b.(*Text)
		return ok && a.Value == b.Value && a.Quoted == b.Quoted
	case *Term:
		b, ok := b.(*Term)
		if !ok || a.Field != b.Field || a.Op != b.Op || len(a.Values) != len(b.Values) {
			return false
		}
		if a.Op == OpRange && (a.IncludeLo != b.IncludeLo || a.IncludeHi != b.IncludeHi) {
			return false
		}
		for i := range a.Values {
			if a.Values[i].Text != b.Values[i].Text || a.Values[i].Quoted != b.Values[i].Quoted {
				return false
			}
		}
		return true
	}
	return false
}

// Inspect walks the tree depth-first, calling f for each node; if f
// returns false the node's children are skipped.
func Inspect(n Node, f func(Node) bool) {
	if n == nil || !f(n) {
		return
	}
	switch n := n.(type) {
	case *And:
		Inspect(n.LHS, f)
		Inspect(n.RHS, f)
	case *Or:
		Inspect(n.LHS, f)
		Inspect(n.RHS, f)
	case *Not:
		Inspect(n.X, f)
	}
}
