package query

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Compile turns a parsed query into a WHERE-clause fragment for target
// in dialect d, with one bind argument per "?" in it, in order. No value
// from the query is ever put into the SQL text: every value is an
// argument. The fragment is parenthesised where it needs to be, so a
// caller can AND it with its own conditions. A nil node (the empty query)
// compiles to a predicate that always holds.
//
// now anchors relative times (last_seen:1h). Errors are *Error with the
// position of the offending term; they are not located (Line is 0) since
// Compile does not see the query text: see (*Error).Locate, or use
// CompileQuery.
func Compile(node Node, target Target, d Dialect, now time.Time) (where string, args []any, err error) {
	if d == nil {
		return "", nil, errors.New("query: no dialect")
	}
	if int(target) >= len(fieldIndex) {
		return "", nil, fmt.Errorf("query: unknown target %v", target)
	}
	if node == nil {
		return d.True(), nil, nil
	}
	c := &compiler{t: target, d: d, now: now}
	s, e := c.node(node)
	if e != nil {
		return "", nil, e
	}
	return s, c.args, nil
}

// CompileQuery parses q and compiles it (see Parse and Compile); its
// errors are located in q.
func CompileQuery(q string, target Target, d Dialect, now time.Time) (where string, args []any, err error) {
	n, err := Parse(q)
	if err != nil {
		return "", nil, err
	}
	where, args, err = Compile(n, target, d, now)
	var e *Error
	if errors.As(err, &e) {
		e.Locate(q)
	}
	return where, args, err
}

type compiler struct {
	t    Target
	d    Dialect
	now  time.Time
	args []any
}

// bind appends the values of the placeholders in pred, in order.
func (c *compiler) bind(pred string, vals ...any) string {
	for _, v := range vals {
		c.args = append(c.args, c.d.Arg(v))
	}
	return pred
}

func (c *compiler) node(n Node) (string, *Error) {
	switch n := n.(type) {
	case *And:
		return c.join(flattenAnd(n, nil), " AND ")
	case *Or:
		return c.join(flattenOr(n, nil), " OR ")
	case *Not:
		s, err := c.node(n.X)
		if err != nil {
			return "", err
		}
		return c.d.Not(s), nil
	case *Term:
		return c.term(n)
	case *Text:
		return c.text(n), nil
	}
	return "", &Error{Msg: fmt.Sprintf("unknown query node %T", n)}
}

func (c *compiler) join(ops []Node, sep string) (string, *Error) {
	parts := make([]string, len(ops))
	for i, op := range ops {
		s, err := c.node(op)
		if err != nil {
			return "", err
		}
		parts[i] = s
	}
	return "(" + strings.Join(parts, sep) + ")", nil
}

func flattenAnd(n Node, out []Node) []Node {
	if a, ok := n.(*And); ok {
		return flattenAnd(a.RHS, flattenAnd(a.LHS, out))
	}
	return append(out, n)
}

func flattenOr(n Node, out []Node) []Node {
	if o, ok := n.(*Or); ok {
		return flattenOr(o.RHS, flattenOr(o.LHS, out))
	}
	return append(out, n)
}

func other(t Target) Target {
	if t == Events {
		return Services
	}
	return Events
}

func what(t Target) string {
	if t == Events {
		return "a sensor-event field"
	}
	return "a service field"
}

// field resolves name in the compiler's target.
func (c *compiler) field(name string, pos, end Pos) (*Field, *Error) {
	if f := lookup(c.t, name); f != nil {
		return f, nil
	}
	if o := other(c.t); lookup(o, name) != nil {
		return nil, errorf(pos, end, "%s is %s; search %s instead", name, what(o), o)
	}
	return nil, unknownField(name, pos, end, targetNames[c.t])
}

func (c *compiler) term(t *Term) (string, *Error) {
	f, err := c.field(t.Field, t.Pos, t.End)
	if err != nil {
		return "", err
	}
	if err := checkTerm(f, t); err != nil {
		return "", err
	}
	if t.Op == OpExists || t.Op == OpEq && len(t.Values) == 1 && t.Values[0].isStar() {
		return c.exists(f), nil
	}
	switch t.Op {
	case OpEq:
		return c.eq(f, t)
	case OpRange:
		return c.rangeTerm(f, t)
	}
	return c.cmp(f, t.Field, t.Op, t.Values[0], true)
}

func (c *compiler) exists(f *Field) string {
	col := f.Columns[0]
	switch f.Kind {
	case KindString, KindText, KindBlob, KindVersion:
		return "(" + col + " IS NOT NULL AND " + col + " <> '')"
	case KindList:
		return c.d.ListNotEmpty(col)
	}
	return col + " IS NOT NULL"
}

func (f *Field) normalise(s string) string {
	if f.norm != nil {
		return f.norm(s)
	}
	return s
}

// eq compiles field:v1,v2,... (any of the values).
func (c *compiler) eq(f *Field, t *Term) (string, *Error) {
	plain := !t.Wildcard() && (f.Kind == KindInt || f.Kind == KindString && !f.fold)
	if plain && len(t.Values) > 1 {
		col := f.Columns[0]
		marks := make([]string, len(t.Values))
		for i, v := range t.Values {
			marks[i] = "?"
			if f.Kind == KindInt {
				n, err := parseInt(f, t.Field, v)
				if err != nil {
					return "", err
				}
				c.bind("", n)
			} else {
				c.bind("", f.normalise(v.Text))
			}
		}
		return col + " IN (" + strings.Join(marks, ", ") + ")", nil
	}
	parts := make([]string, len(t.Values))
	for i, v := range t.Values {
		s, err := c.eqValue(f, t, v)
		if err != nil {
			return "", err
		}
		parts[i] = s
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return "(" + strings.Join(parts, " OR ") + ")", nil
}

func (c *compiler) eqValue(f *Field, t *Term, v Value) (string, *Error) {
	if f.Kind == KindHas {
		return c.has(f, v)
	}
	col := f.Columns[0]
	wild := v.Wildcard()
	switch f.Kind {
	case KindString:
		switch {
		case wild && f.fold:
			return c.bind(c.d.LowerLike(col), lower(likePattern(v.Text))), nil
		case wild:
			return c.bind(c.d.Like(col), likePattern(f.normalise(v.Text))), nil
		case f.fold:
			return c.bind(c.d.LowerEqual(col), lower(v.Text)), nil
		}
		return c.bind(col+" = ?", f.normalise(v.Text)), nil
	case KindText, KindBlob:
		return c.textMatch(f, v.Text, wild, false), nil
	case KindList:
		if wild {
			return c.bind(c.d.ListLike(col), likePattern(f.normalise(v.Text))), nil
		}
		return c.bind(c.d.ListContains(col), f.normalise(v.Text)), nil
	case KindInt:
		n, err := parseInt(f, t.Field, v)
		if err != nil {
			return "", err
		}
		return c.bind(col+" = ?", n), nil
	case KindVersion:
		if wild {
			return c.bind(c.d.Like(col), likePattern(v.Text)), nil
		}
		return c.bind(f.Columns[1]+" = ?", VersionKey(v.Text)), nil
	case KindIP:
		p, err := parseIP(v)
		if err != nil {
			return "", err
		}
		lh, ll, hh, hl := PrefixRange(p)
		hi, lo := f.Columns[0], f.Columns[1]
		switch bits := mappedBits(p); {
		case bits == 128:
			return c.bind("("+hi+" = ? AND "+lo+" = ?)", lh, ll), nil
		case bits >= 64:
			return c.bind("("+hi+" = ? AND "+lo+" BETWEEN ? AND ?)", lh, ll, hl), nil
		}
		return c.bind(hi+" BETWEEN ? AND ?", lh, hh), nil
	case KindTime:
		return c.timeEq(f, v), nil
	case KindBool:
		b, _ := parseBool(v.Text)
		return c.bind(col+" = ?", b), nil
	}
	return "", errorf(v.Pos, v.End, "field %s of kind %s cannot be matched", t.Field, f.Kind)
}

// textMatch: a case-insensitive substring, or with wildcards a pattern
// over the whole value (anywhere in it for free text).
func (c *compiler) textMatch(f *Field, s string, wild, anywhere bool) string {
	col := f.Columns[0]
	if wild {
		pat := lower(likePattern(s))
		if anywhere && !strings.HasPrefix(s, "*") {
			pat = "%" + pat
		}
		if anywhere && !strings.HasSuffix(s, "*") {
			pat += "%"
		}
		if f.lowered {
			return c.bind(c.d.Like(col), pat)
		}
		return c.bind(c.d.LowerLike(col), pat)
	}
	if f.lowered {
		return c.bind(c.d.Contains(col), lower(s))
	}
	return c.bind(c.d.ContainsFold(col), lower(s))
}

func (c *compiler) text(n *Text) string {
	f := lookup(c.t, textField[c.t])
	return c.textMatch(f, n.Value, !n.Quoted && containsWildcard(n.Value), true)
}

func (c *compiler) has(f *Field, v Value) (string, *Error) {
	for _, h := range f.has {
		if strings.EqualFold(h.key, v.Text) {
			return h.pred(c.d), nil
		}
	}
	o := other(c.t)
	if of := lookup(o, "has"); of != nil {
		for _, h := range of.has {
			if strings.EqualFold(h.key, v.Text) {
				return "", errorf(v.Pos, v.End, "has:%s is for %s; search %s instead", h.key, o, o)
			}
		}
	}
	keys := make([]string, len(f.has))
	for i, h := range f.has {
		keys[i] = h.key
	}
	return "", errorf(v.Pos, v.End, "unknown has:%s (has takes one of: %s)", v.Text, strings.Join(keys, ", "))
}

// instant is the time a time value stands for: a duration counts back
// from now, or forward for a future field.
func (c *compiler) instant(f *Field, tv timeValue) time.Time {
	switch {
	case !tv.isDur:
		return tv.t
	case f.tmode == tmFuture:
		return c.now.Add(tv.dur).UTC()
	}
	return c.now.Add(-tv.dur).UTC()
}

func (c *compiler) timeEq(f *Field, v Value) string {
	tv, _ := parseTime(v.Text)
	col := f.Columns[0]
	switch {
	case f.tmode == tmAfter:
		return c.bind(col+" >= ?", c.instant(f, tv))
	case f.tmode == tmBefore:
		return c.bind(col+" < ?", c.instant(f, tv))
	case tv.isDur && f.tmode == tmFuture:
		return c.bind("("+col+" >= ? AND "+col+" <= ?)", c.now.UTC(), c.instant(f, tv))
	case tv.isDur:
		return c.bind(col+" >= ?", c.instant(f, tv))
	case tv.day:
		return c.bind("("+col+" >= ? AND "+col+" < ?)", tv.t, tv.t.AddDate(0, 0, 1))
	}
	return c.bind(col+" = ?", tv.t)
}

var opSQL = [...]string{OpLt: "<", OpLe: "<=", OpGt: ">", OpGe: ">="}

func flip(op Op) Op {
	switch op {
	case OpLt:
		return OpGt
	case OpLe:
		return OpGe
	case OpGt:
		return OpLt
	case OpGe:
		return OpLe
	}
	return op
}

// cmp compiles one comparison of an ordered field. guard: an upper bound
// on a version excludes unknown versions (a lower bound does that).
func (c *compiler) cmp(f *Field, name string, op Op, v Value, guard bool) (string, *Error) {
	col := f.Columns[0]
	switch f.Kind {
	case KindInt:
		n, err := parseInt(f, name, v)
		if err != nil {
			return "", err
		}
		return c.bind(col+" "+opSQL[op]+" ?", n), nil
	case KindVersion:
		key := f.Columns[1]
		s := c.bind(key+" "+opSQL[op]+" ?", VersionKey(v.Text))
		if guard && (op == OpLt || op == OpLe) { // an unknown version ('') is not below anything
			s = "(" + key + " <> '' AND " + s + ")"
		}
		return s, nil
	case KindTime:
		tv, _ := parseTime(v.Text)
		at := c.instant(f, tv)
		switch {
		case tv.isDur && f.tmode == tmPast: // a comparison of the age
			op = flip(op)
		case tv.day: // a date is the whole day
			switch op {
			case OpLe:
				op, at = OpLt, at.AddDate(0, 0, 1)
			case OpGt:
				op, at = OpGe, at.AddDate(0, 0, 1)
			}
		}
		return c.bind(col+" "+opSQL[op]+" ?", at), nil
	}
	return "", errorf(v.Pos, v.End, "field of kind %s cannot be compared", f.Kind)
}

func (c *compiler) rangeTerm(f *Field, t *Term) (string, *Error) {
	lo, hi := t.Values[0], t.Values[1]
	if lo.isStar() && hi.isStar() {
		return c.exists(f), nil
	}
	instant := func(v Value) bool { // a time value that is neither a duration nor a day
		tv, _ := parseTime(v.Text)
		return !tv.isDur && !tv.day
	}
	between := t.IncludeLo && t.IncludeHi && !lo.isStar() && !hi.isStar() &&
		(f.Kind != KindTime || instant(lo) && instant(hi))
	if between {
		col := f.Columns[0]
		var a, b any
		switch f.Kind {
		case KindInt:
			x, err := parseInt(f, t.Field, lo)
			if err != nil {
				return "", err
			}
			y, err := parseInt(f, t.Field, hi)
			if err != nil {
				return "", err
			}
			a, b = x, y
		case KindVersion:
			col = f.Columns[1]
			a, b = VersionKey(lo.Text), VersionKey(hi.Text)
		case KindTime:
			x, _ := parseTime(lo.Text)
			y, _ := parseTime(hi.Text)
			a, b = x.t, y.t
		}
		return c.bind(col+" BETWEEN ? AND ?", a, b), nil
	}
	var parts []string
	if !lo.isStar() {
		op := OpGt
		if t.IncludeLo {
			op = OpGe
		}
		s, err := c.cmp(f, t.Field, op, lo, true)
		if err != nil {
			return "", err
		}
		parts = append(parts, s)
	}
	if !hi.isStar() {
		op := OpLt
		if t.IncludeHi {
			op = OpLe
		}
		s, err := c.cmp(f, t.Field, op, hi, lo.isStar())
		if err != nil {
			return "", err
		}
		parts = append(parts, s)
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return "(" + strings.Join(parts, " AND ") + ")", nil
}
