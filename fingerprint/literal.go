package fingerprint

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Prefilter literals: a rule's regexp runs only when the text contains
// the literals the regexp cannot match without. They are derived from the
// parsed regexp as a conjunction of clauses, each clause a set of
// alternatives ("contains A or B"); every literal is kept lower case and
// compared ASCII-case-insensitively, which is a superset of both the
// case-sensitive and the (?i) behaviour, so the filter never rejects a text
// the regexp would match. (The one exception, Unicode folding ASCII k and s
// to the Kelvin and long-s signs, is handled by flagging the rule: see
// exoticFold.)

const (
	minLiteral  = 3  // shorter literals are too common to be worth a check
	maxLiteral  = 32 // longer ones are cut (any substring is also required)
	maxExactSet = 16 // cap on alternatives tracked for one node
	maxClauses  = 4  // clauses kept per rule
)

// litInfo is what literal analysis knows about a sub-expression.
type litInfo struct {
	// exact, when non-nil, is the complete set of strings the node can
	// match (lower-cased); it may contain "".
	exact []string
	// clauses must all hold for any match: each is a set of literals at
	// least one of which occurs in the matched text.
	clauses [][]string
}

// literalAnalyzer holds the per-pattern state.
type literalAnalyzer struct {
	bytes  bool // the pattern runs on Latin-1 (one rune per byte) text
	exotic bool // a (?i) literal has a letter that folds outside ASCII
}

// requiredLiterals derives the prefilter clauses of a regexp. The result
// is nil when nothing useful is required (the rule then runs whenever its
// protocol and field match). exotic reports whether the literals rely on
// ASCII folding of k or s, which Go's (?i) also matches as U+212A/U+017F.
func requiredLiterals(re *syntax.Regexp, bytesMode bool) (clauses [][]string, exotic bool) {
	a := literalAnalyzer{bytes: bytesMode}
	info := a.analyze(re.Simplify())
	all := info.clauses
	if info.exact != nil {
		all = append(all, info.exact)
	}
	for _, c := range all {
		if c = cleanClause(c); c != nil {
			clauses = append(clauses, c)
		}
	}
	clauses = dedupClauses(clauses)
	slices.SortStableFunc(clauses, func(x, y []string) int { return clauseScore(y) - clauseScore(x) })
	if len(clauses) > maxClauses {
		clauses = clauses[:maxClauses]
	}
	return clauses, a.exotic && len(clauses) > 0
}

// clauseScore ranks clauses: long shortest literal, few alternatives.
func clauseScore(c []string) int {
	m := maxLiteral
	for _, s := range c {
		m = min(m, len(s))
	}
	return m*16 - len(c)
}

// cleanClause drops clauses that cannot filter (an empty alternative, a
// too short one), cuts long literals and removes alternatives implied by
// shorter ones.
func cleanClause(c []string) []string {
	out := make([]string, 0, len(c))
	for _, s := range c {
		if len(s) < minLiteral {
			return nil
		}
		if len(s) > maxLiteral {
			s = s[:maxLiteral]
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	kept := out[:0]
	for _, s := range out {
		implied := false
		for _, k := range kept {
			if strings.Contains(s, k) {
				implied = true
				break
			}
		}
		if !implied {
			kept = append(kept, s)
		}
	}
	return kept
}

func dedupClauses(cs [][]string) [][]string {
	var out [][]string
	for _, c := range cs {
		if !slices.ContainsFunc(out, func(o []string) bool { return slices.Equal(o, c) }) {
			out = append(out, c)
		}
	}
	return out
}

func (a *literalAnalyzer) analyze(re *syntax.Regexp) litInfo {
	switch re.Op {
	case syntax.OpLiteral:
		return a.literal(re.Rune, re.Flags&syntax.FoldCase != 0)
	case syntax.OpCharClass:
		return a.charClass(re.Rune)
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine,
		syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return litInfo{exact: []string{""}}
	case syntax.OpCapture:
		return a.analyze(re.Sub[0])
	case syntax.OpQuest:
		sub := a.analyze(re.Sub[0])
		if sub.exact != nil && len(sub.exact) < maxExactSet {
			return litInfo{exact: union(sub.exact, []string{""})}
		}
		return litInfo{}
	case syntax.OpStar:
		return litInfo{}
	case syntax.OpPlus:
		return a.atLeastOnce(a.analyze(re.Sub[0]))
	case syntax.OpRepeat:
		if re.Min == 0 {
			return litInfo{}
		}
		return a.atLeastOnce(a.analyze(re.Sub[0]))
	case syntax.OpConcat:
		return a.concat(re.Sub)
	case syntax.OpAlternate:
		return a.alternate(re.Sub)
	}
	// OpAnyChar, OpAnyCharNotNL, OpNoMatch: nothing known.
	return litInfo{}
}

// atLeastOnce: what a sub-expression requires when it matches one or more
// times.
func (a *literalAnalyzer) atLeastOnce(sub litInfo) litInfo {
	out := litInfo{clauses: sub.clauses}
	if sub.exact != nil {
		out.clauses = append(out.clauses, sub.exact)
	}
	return out
}

// foldsOutsideASCII reports whether r's Unicode case orbit leaves ASCII.
func foldsOutsideASCII(r rune) bool {
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// encodable appends r as the text would hold it and reports whether the
// filter can rely on it.
func (a *literalAnalyzer) encode(b []byte, r rune) ([]byte, bool) {
	if a.bytes {
		if r > 0xff {
			return b, false
		}
		if r >= 'A' && r <= 'Z' {
			r += 'a' - 'A'
		}
		return append(b, byte(r)), true
	}
	if r == utf8.RuneError {
		// Invalid bytes in the text decode as U+FFFD without containing it.
		return b, false
	}
	if r >= 'A' && r <= 'Z' {
		r += 'a' - 'A'
	}
	return utf8.AppendRune(b, r), true
}

func (a *literalAnalyzer) literal(runes []rune, fold bool) litInfo {
	var pieces []string
	var cur []byte
	broken := false
	for _, r := range runes {
		ok := true
		if fold && r >= utf8.RuneSelf && unicode.SimpleFold(r) != r {
			ok = false // folds to other non-ASCII forms: not tracked
		}
		if ok && fold && r < utf8.RuneSelf && foldsOutsideASCII(r) {
			if a.bytes {
				// In Latin-1 text the exotic forms (U+017F, U+212A) cannot
				// occur: nothing to flag.
			} else {
				a.exotic = true
			}
		}
		if ok {
			cur, ok = a.encode(cur, r)
		}
		if !ok {
			broken = true
			if len(cur) > 0 {
				pieces = append(pieces, string(cur))
			}
			cur = cur[:0]
		}
	}
	if !broken {
		return litInfo{exact: []string{string(cur)}}
	}
	if len(cur) > 0 {
		pieces = append(pieces, string(cur))
	}
	var info litInfo
	for _, p := range pieces {
		info.clauses = append(info.clauses, []string{p})
	}
	return info
}

func (a *literalAnalyzer) charClass(ranges []rune) litInfo {
	n := 0
	for i := 0; i+1 < len(ranges); i += 2 {
		n += int(ranges[i+1]-ranges[i]) + 1
		if n > 2*maxExactSet {
			return litInfo{}
		}
	}
	var set []string
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1]; r++ {
			b, ok := a.encode(nil, r)
			if !ok {
				if a.bytes && r > 0xff {
					continue // can never occur in Latin-1 text
				}
				return litInfo{}
			}
			set = union(set, []string{string(b)})
		}
	}
	if len(set) == 0 || len(set) > maxExactSet {
		return litInfo{}
	}
	return litInfo{exact: set}
}

func (a *literalAnalyzer) concat(subs []*syntax.Regexp) litInfo {
	var out litInfo
	cur := []string{""}
	allExact := true
	flush := func() {
		out.clauses = append(out.clauses, cur)
		cur = []string{""}
	}
	for _, sub := range subs {
		info := a.analyze(sub)
		out.clauses = append(out.clauses, info.clauses...)
		if info.exact == nil {
			allExact = false
			flush()
			continue
		}
		if len(cur)*len(info.exact) > maxExactSet {
			allExact = false
			flush()
			cur = info.exact
			continue
		}
		cur = cross(cur, info.exact)
	}
	if allExact {
		out.exact = cur
		return out
	}
	flush()
	return out
}

func (a *literalAnalyzer) alternate(subs []*syntax.Regexp) litInfo {
	infos := make([]litInfo, len(subs))
	allExact := true
	total := 0
	for i, sub := range subs {
		infos[i] = a.analyze(sub)
		if infos[i].exact == nil {
			allExact = false
		}
		total += len(infos[i].exact)
	}
	if allExact && total <= maxExactSet {
		var set []string
		for _, in := range infos {
			set = union(set, in.exact)
		}
		return litInfo{exact: set}
	}
	// Otherwise one clause: each branch contributes its best clause.
	var clause []string
	for _, in := range infos {
		best := bestClause(in)
		if best == nil {
			return litInfo{}
		}
		clause = union(clause, best)
	}
	return litInfo{clauses: [][]string{clause}}
}

// bestClause is the most selective usable clause of info, or nil.
func bestClause(in litInfo) []string {
	var best []string
	score := -1 << 30
	cands := in.clauses
	if in.exact != nil {
		cands = append(slices.Clip(cands), in.exact)
	}
	for _, c := range cands {
		c = cleanClause(c)
		if c == nil {
			continue
		}
		if s := clauseScore(c); s > score {
			best, score = c, s
		}
	}
	return best
}

func cross(a, b []string) []string {
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = union(out, []string{x + y})
		}
	}
	return out
}

func union(a, b []string) []string {
	out := slices.Clip(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
