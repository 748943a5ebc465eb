package fingerprint

import (
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// MaxFieldBytes caps how much of a field the rules look at; the rest is
// ignored (an HTTP body's head says what it is).
const MaxFieldBytes = 16 << 10

// DB is an immutable, indexed set of rules, safe for concurrent use: make
// one with New, Load, LoadFS, an importer or Merge (the zero DB matches
// nothing). Rules are tried in order and the first that matches wins, so
// earlier rules (ours, before any imported ones) take precedence.
type DB struct {
	rules  []*compiledRule
	protos map[string]*lazyIndex
	any    *lazyIndex // for protocols no rule names: the "*" rules
}

// lazyIndex builds a protocol's index on first use: a grabber that sees
// one protocol (or a few) pays for those rules only.
type lazyIndex struct {
	once     sync.Once
	pi       *protoIndex
	rules    []*compiledRule
	protocol string
}

func (l *lazyIndex) get() *protoIndex {
	l.once.Do(func() {
		l.pi = newProtoIndex(l.rules, l.protocol)
		l.rules = nil
	})
	return l.pi
}

// protoIndex is the rules that apply to one protocol, in DB order, with a
// literal automaton per field.
type protoIndex struct {
	rules   []*compiledRule
	fieldOf []int32     // rule position -> field index
	clauses [][][]int32 // rule position -> clauses as literal ids of its field
	fields  []fieldIndex
	litOff  []int // field index -> first word of its literal bitset
	words   int   // words of the candidate bitset
	litWds  int   // words of all literal bitsets
	pool    sync.Pool
}

type fieldIndex struct {
	name    string
	ac      *acMachine // nil when no rule of the field has literals
	trigger [][]int32  // literal id -> rule positions it makes candidates
	always  []int32    // rule positions with no literal: always candidates
	// exoticLits are the ids of the non-ASCII forms of k and s; when the
	// text has one, exoticRules run without their literal check.
	exoticLits  []int32
	exoticRules []int32
}

type scratch struct {
	cand   []uint64
	found  []uint64
	text   []string
	has    []bool
	bypass []bool
	latin  []string
	latinK []bool
}

// exoticFolds are the non-ASCII runes Go's (?i) matches for ASCII
// letters (U+017F for s, U+212A for k).
var exoticFolds = func() []string {
	var out []string
	for r := 'a'; r <= 'z'; r++ {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f >= utf8.RuneSelf {
				out = append(out, string(f))
			}
		}
	}
	return out
}()

// New validates and compiles rules into a DB. Every invalid rule is
// reported (errors.Join), each error prefixed by the rule's Source and ID.
func New(rules []Rule) (*DB, error) {
	var errs []error
	compiled := make([]*compiledRule, 0, len(rules))
	for _, r := range rules {
		c, err := compile(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		compiled = append(compiled, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return build(compiled)
}

// Merge returns a DB with db's rules followed by the others' (which
// therefore match only where db's do not). Rule IDs must stay unique.
func (db *DB) Merge(others ...*DB) (*DB, error) {
	rules := slices.Clone(db.rules)
	for _, o := range others {
		rules = append(rules, o.rules...)
	}
	return build(rules)
}

// Len is the number of rules.
func (db *DB) Len() int { return len(db.rules) }

// Rules returns a copy of the rules, in order.
func (db *DB) Rules() []Rule {
	out := make([]Rule, len(db.rules))
	for i, c := range db.rules {
		r := c.Rule
		r.CPE = slices.Clone(r.CPE)
		r.Extra = maps.Clone(r.Extra)
		r.Prefilter = slices.Clone(r.Prefilter)
		out[i] = r
	}
	return out
}

// Stats describes how the rules are filtered.
type Stats struct {
	Rules int
	// Prefiltered rules run only when their literals are in the text;
	// Unfiltered ones (no usable literal) run on every text of their
	// protocol and field.
	Prefiltered, Unfiltered int
	Protocols               int
	// AutomatonBytes is the memory of the literal automata, roughly.
	AutomatonBytes int
}

// Stats counts the rules by prefilter.
func (db *DB) Stats() Stats {
	s := Stats{Rules: len(db.rules), Protocols: len(db.protos)}
	for _, r := range db.rules {
		r.ensure()
		if r.clauses != nil {
			s.Prefiltered++
		} else {
			s.Unfiltered++
		}
	}
	var pis []*protoIndex
	if db.any != nil {
		pis = append(pis, db.any.get())
	}
	for _, l := range db.protos {
		pis = append(pis, l.get())
	}
	for _, pi := range pis {
		if pi == nil {
			continue
		}
		for _, f := range pi.fields {
			if f.ac != nil {
				s.AutomatonBytes += f.ac.size()
			}
		}
	}
	return s
}

func build(rules []*compiledRule) (*DB, error) {
	db := &DB{rules: rules, protos: map[string]*lazyIndex{}}
	seen := make(map[string]string, len(rules))
	var errs []error
	protos := map[string]bool{}
	for _, r := range rules {
		if prev, dup := seen[r.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: rule %q: duplicate id (first at %s)", r.Source, r.ID, prev))
			continue
		}
		seen[r.ID] = r.Source
		if r.Protocol != "*" {
			protos[r.Protocol] = true
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for p := range protos {
		db.protos[p] = &lazyIndex{rules: rules, protocol: p}
	}
	db.any = &lazyIndex{rules: rules}
	return db, nil
}

func newProtoIndex(all []*compiledRule, protocol string) *protoIndex {
	pi := &protoIndex{}
	fieldIdx := map[string]int{}
	type fieldLits struct {
		ids map[string]int32
		lst []string
	}
	var lits []fieldLits
	litID := func(f int, s string) int32 {
		fl := &lits[f]
		if id, ok := fl.ids[s]; ok {
			return id
		}
		id := int32(len(fl.lst))
		fl.ids[s] = id
		fl.lst = append(fl.lst, s)
		return id
	}
	for _, r := range all {
		if r.Protocol != "*" && r.Protocol != protocol {
			continue
		}
		r.ensure()
		pos := int32(len(pi.rules))
		pi.rules = append(pi.rules, r)
		f, ok := fieldIdx[r.Field]
		if !ok {
			f = len(pi.fields)
			fieldIdx[r.Field] = f
			pi.fields = append(pi.fields, fieldIndex{name: r.Field})
			lits = append(lits, fieldLits{ids: map[string]int32{}})
		}
		pi.fieldOf = append(pi.fieldOf, int32(f))
		fi := &pi.fields[f]
		var cl [][]int32
		for _, c := range r.clauses {
			ids := make([]int32, len(c))
			for i, s := range c {
				ids[i] = litID(f, s)
			}
			cl = append(cl, ids)
		}
		pi.clauses = append(pi.clauses, cl)
		if len(cl) == 0 {
			fi.always = append(fi.always, pos)
			continue
		}
		for _, id := range cl[0] {
			for int(id) >= len(fi.trigger) {
				fi.trigger = append(fi.trigger, nil)
			}
			fi.trigger[id] = append(fi.trigger[id], pos)
		}
		if r.exotic {
			fi.exoticRules = append(fi.exoticRules, pos)
		}
	}
	for f := range pi.fields {
		fi := &pi.fields[f]
		if len(fi.exoticRules) > 0 {
			for _, e := range exoticFolds {
				fi.exoticLits = append(fi.exoticLits, litID(f, e))
			}
		}
		pi.litOff = append(pi.litOff, pi.litWds)
		if n := len(lits[f].lst); n > 0 {
			fi.ac = newACMachine(lits[f].lst)
			pi.litWds += (n + 63) / 64
			for len(fi.trigger) < n {
				fi.trigger = append(fi.trigger, nil)
			}
		}
	}
	pi.words = (len(pi.rules) + 63) / 64
	nf := len(pi.fields)
	pi.pool.New = func() any {
		return &scratch{
			cand:   make([]uint64, pi.words),
			found:  make([]uint64, pi.litWds),
			text:   make([]string, nf),
			has:    make([]bool, nf),
			bypass: make([]bool, nf),
			latin:  make([]string, nf),
			latinK: make([]bool, nf),
		}
	}
	return pi
}

func (db *DB) index(protocol string) *protoIndex {
	if l, ok := db.protos[protocol]; ok {
		return l.get()
	}
	if db.any == nil {
		return emptyIndex
	}
	return db.any.get()
}

var emptyIndex = newProtoIndex(nil, "")

func (pi *protoIndex) get() *scratch { return pi.pool.Get().(*scratch) }

// put returns s to the pool without the texts it points to (an HTTP body
// should not stay alive in a pool).
func (pi *protoIndex) put(s *scratch) {
	clear(s.text)
	clear(s.latin)
	pi.pool.Put(s)
}

// prepare scans the fields and marks the candidate rules.
func (pi *protoIndex) prepare(s *scratch, fields map[string]string) {
	clear(s.cand)
	clear(s.found)
	for f := range pi.fields {
		fi := &pi.fields[f]
		s.bypass[f], s.latinK[f], s.latin[f] = false, false, ""
		text, ok := fields[fi.name]
		s.has[f] = ok
		if !ok {
			s.text[f] = ""
			continue
		}
		if len(text) > MaxFieldBytes {
			text = text[:MaxFieldBytes]
		}
		s.text[f] = text
		for _, p := range fi.always {
			s.cand[p>>6] |= 1 << (p & 63)
		}
		if fi.ac == nil {
			continue
		}
		found := s.found[pi.litOff[f] : pi.litOff[f]+(fi.ac.n+63)/64]
		fi.ac.scan(text, found)
		for w, word := range found {
			for word != 0 {
				id := w<<6 | bits.TrailingZeros64(word)
				word &= word - 1
				for _, p := range fi.trigger[id] {
					s.cand[p>>6] |= 1 << (p & 63)
				}
			}
		}
		for _, id := range fi.exoticLits {
			if found[id>>6]&(1<<(id&63)) != 0 {
				s.bypass[f] = true
				for _, p := range fi.exoticRules {
					s.cand[p>>6] |= 1 << (p & 63)
				}
				break
			}
		}
	}
}

// try runs candidate rule p.
func (pi *protoIndex) try(s *scratch, p int, checkLits bool) (Match, bool) {
	r := pi.rules[p]
	f := pi.fieldOf[p]
	if !s.has[f] {
		return Match{}, false
	}
	if checkLits && !(r.exotic && s.bypass[f]) {
		found := s.found[pi.litOff[f]:]
		for _, clause := range pi.clauses[p] {
			ok := false
			for _, id := range clause {
				if found[id>>6]&(1<<(id&63)) != 0 {
					ok = true
					break
				}
			}
			if !ok {
				return Match{}, false
			}
		}
	}
	text := s.text[f]
	if r.Bytes {
		if !s.latinK[f] {
			s.latin[f], s.latinK[f] = latin1(text), true
		}
		text = s.latin[f]
	}
	idx, ok := r.match(text)
	if !ok {
		return Match{}, false
	}
	m := r.result(text, idx)
	if m.Product == "" {
		// A product template over an empty group: not an identification.
		return Match{}, false
	}
	return m, true
}

// latin1 maps each byte of s to the rune of the same value.
func latin1(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s)+(len(s)-i))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		b = utf8.AppendRune(b, rune(s[i]))
	}
	return string(b)
}

// fromLatin1 undoes latin1 for captured text: when the bytes are valid
// UTF-8 (a product name in UTF-8 seen through a bytes-mode pattern) they
// are returned as such, otherwise the Latin-1 reading stays.
func fromLatin1(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return s
		}
		b = append(b, byte(r))
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return s
}

// Identify returns the first rule's match for a service of the given
// protocol ("ssh", "http", ..., or "unknown") whose named text fields are
// in fields. Only the rules for that protocol (and the "*" rules) are
// considered, and of those only the ones whose required literals occur in
// their field run their regexp.
func (db *DB) Identify(protocol string, fields map[string]string) (Match, bool) {
	pi := db.index(protocol)
	s := pi.get()
	defer pi.put(s)
	pi.prepare(s, fields)
	for w, word := range s.cand {
		for word != 0 {
			p := w<<6 | bits.TrailingZeros64(word)
			word &= word - 1
			if m, ok := pi.try(s, p, true); ok {
				return m, true
			}
		}
	}
	return Match{}, false
}

// IdentifyAll returns every rule's match, in rule order (an HTTP service
// may show both its server and the application behind it).
func (db *DB) IdentifyAll(protocol string, fields map[string]string) []Match {
	pi := db.index(protocol)
	s := pi.get()
	defer pi.put(s)
	pi.prepare(s, fields)
	var out []Match
	for w, word := range s.cand {
		for word != 0 {
			p := w<<6 | bits.TrailingZeros64(word)
			word &= word - 1
			if m, ok := pi.try(s, p, true); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// scanMode selects a slower strategy, for benchmarks and for checking that
// the prefilter never changes a result.
type scanMode int

const (
	modeIndexOnly scanMode = iota // protocol and field index, every regexp
	modeAllRules                  // every rule of the DB, no index at all
)

// identifySlow is Identify without the prefilter; runs counts the
// regexps executed.
func (db *DB) identifySlow(protocol string, fields map[string]string, mode scanMode) (m Match, ok bool, runs int) {
	if mode == modeAllRules {
		for _, r := range db.rules {
			r.ensure()
			text, has := fields[r.Field]
			if !has {
				continue
			}
			if len(text) > MaxFieldBytes {
				text = text[:MaxFieldBytes]
			}
			if r.Bytes {
				text = latin1(text)
			}
			// The regexp runs before the protocol check: this mode is the
			// cost of a matcher with no index at all.
			runs++
			idx, matched := r.match(text)
			if !matched || (r.Protocol != "*" && r.Protocol != protocol) {
				continue
			}
			if res := r.result(text, idx); res.Product != "" {
				return res, true, runs
			}
		}
		return Match{}, false, runs
	}
	pi := db.index(protocol)
	s := pi.get()
	defer pi.put(s)
	for f := range pi.fields {
		text, has := fields[pi.fields[f].name]
		if len(text) > MaxFieldBytes {
			text = text[:MaxFieldBytes]
		}
		s.text[f], s.has[f], s.latinK[f], s.bypass[f] = text, has, false, false
	}
	for p := range pi.rules {
		if !s.has[pi.fieldOf[p]] {
			continue
		}
		runs++
		if m, ok := pi.try(s, p, false); ok {
			return m, true, runs
		}
	}
	return Match{}, false, runs
}

// candidates counts the regexps Identify would run (for the benchmark).
func (db *DB) candidates(protocol string, fields map[string]string) int {
	pi := db.index(protocol)
	s := pi.get()
	defer pi.put(s)
	pi.prepare(s, fields)
	n := 0
	for _, w := range s.cand {
		n += bits.OnesCount64(w)
	}
	return n
}

// String summarises the DB.
func (db *DB) String() string {
	st := db.Stats()
	var b strings.Builder
	fmt.Fprintf(&b, "%d rules (%d prefiltered, %d always run) over %d protocols, literal automata %d KiB",
		st.Rules, st.Prefiltered, st.Unfiltered, st.Protocols, st.AutomatonBytes>>10)
	return b.String()
}
