package fingerprint

import "slices"

// acMachine finds, in one pass over a text, which of a set of literals it
// contains, ASCII-case-insensitively: an Aho-Corasick automaton over byte
// classes (bytes that occur in no literal share class 0; 'A'..'Z' share
// the class of 'a'..'z').
//
// States are numbered breadth first. The shallow ones, where a scan spends
// nearly all its time, have full DFA rows (one load per byte); deeper ones,
// reached only while the text follows some literal for several bytes, keep
// just their trie edges and a failure link. The split is chosen so the
// dense rows stay within denseBudget entries: a few hundred rules are
// entirely dense, an imported database of thousands stays compact.
//
// Transitions hold state codes, not numbers, so a dense step is one load
// and an add: a dense state s is coded s*stride (its row's offset), a
// sparse one limit+(s-dense); a negative entry (^code) means the state
// reached ends a literal.
type acMachine struct {
	class  [256]uint8
	stride int32
	dense  int32   // states [0, dense) have rows in delta
	limit  int32   // dense*stride: codes below are dense rows
	delta  []int32 // code of a dense state + class -> next code
	// Sparse states: edges of state s are edgeClass/edgeTo[edgeAt[s-dense]:edgeAt[s-dense+1]].
	edgeAt    []int32
	edgeClass []uint8
	edgeTo    []int32 // next state (^next: has output)
	fail      []int32
	// first[s] is the first state on s's suffix chain (s included) that
	// ends a literal, or -1; next[t] continues that chain from t.
	first []int32
	next  []int32
	lit   []int32 // state -> literal id ending there, or -1
	n     int     // number of literals
}

// denseBudget bounds the DFA rows of one automaton (entries of 4 bytes).
const denseBudget = 256 << 10

// newACMachine builds the automaton; lits must be lower case, non-empty and
// distinct, and their index is their id.
func newACMachine(lits []string) *acMachine { return newACMachineBudget(lits, denseBudget) }

func newACMachineBudget(lits []string, budget int) *acMachine {
	m := &acMachine{n: len(lits)}
	used := [256]bool{}
	for _, l := range lits {
		for i := 0; i < len(l); i++ {
			used[l[i]] = true
		}
	}
	classes := int32(1)
	for b := 0; b < 256; b++ {
		if used[b] && !(b >= 'A' && b <= 'Z') {
			m.class[b] = uint8(classes) // at most 231 classes: fits
			classes++
		}
	}
	for b := 'A'; b <= 'Z'; b++ {
		m.class[b] = m.class[b+'a'-'A']
	}
	m.stride = classes

	// Trie in insertion order, edges as (class, child) lists.
	type edge struct {
		c  uint8
		to int32
	}
	var (
		edges [][]edge
		lit   []int32
		depth []int32
	)
	newState := func(d int32) int32 {
		edges = append(edges, nil)
		lit = append(lit, -1)
		depth = append(depth, d)
		return int32(len(lit) - 1)
	}
	child := func(s int32, c uint8) int32 {
		for _, e := range edges[s] {
			if e.c == c {
				return e.to
			}
		}
		return -1
	}
	newState(0)
	for id, l := range lits {
		s := int32(0)
		for i := 0; i < len(l); i++ {
			c := m.class[l[i]]
			t := child(s, c)
			if t < 0 {
				t = newState(depth[s] + 1)
				edges[s] = append(edges[s], edge{c, t})
			}
			s = t
		}
		lit[s] = int32(id)
	}

	// Breadth-first renumbering and failure links.
	n := int32(len(lit))
	order := make([]int32, 0, n) // new -> old
	renum := make([]int32, n)    // old -> new
	order = append(order, 0)
	for i := 0; i < len(order); i++ {
		s := order[i]
		slices.SortFunc(edges[s], func(a, b edge) int { return int(a.c) - int(b.c) })
		for _, e := range edges[s] {
			renum[e.to] = int32(len(order))
			order = append(order, e.to)
		}
	}
	failOld := make([]int32, n)
	for _, s := range order {
		for _, e := range edges[s] {
			if s == 0 {
				failOld[e.to] = 0
				continue
			}
			f := failOld[s]
			for f != 0 && child(f, e.c) < 0 {
				f = failOld[f]
			}
			if t := child(f, e.c); t >= 0 {
				failOld[e.to] = t
			} else {
				failOld[e.to] = 0
			}
		}
	}
	m.lit = make([]int32, n)
	m.fail = make([]int32, n)
	m.first = make([]int32, n)
	m.next = make([]int32, n)
	for newID, old := range order {
		m.lit[newID] = lit[old]
		m.fail[newID] = renum[failOld[old]]
	}
	for s := int32(0); s < n; s++ { // breadth first: fail[s] is done
		m.first[s], m.next[s] = -1, -1
		if s == 0 {
			continue
		}
		if m.lit[s] >= 0 {
			m.first[s] = s
			m.next[s] = m.first[m.fail[s]]
		} else {
			m.first[s] = m.first[m.fail[s]]
		}
	}
	flag := func(t int32) int32 {
		code := m.code(t)
		if m.first[t] >= 0 {
			return ^code
		}
		return code
	}

	// Dense rows for the shallowest states, within the budget; a state's
	// failure state is shallower, so its row is built before.
	for m.dense < n && (m.dense == 0 || int64(m.dense+1)*int64(m.stride) <= int64(budget)) {
		m.dense++
	}
	if m.dense < n {
		// Do not split a depth level: keep whole levels dense.
		d := depth[order[m.dense]]
		for m.dense > 1 && depth[order[m.dense-1]] == d {
			m.dense--
		}
	}
	m.limit = m.dense * m.stride
	m.delta = make([]int32, int(m.dense)*int(m.stride))
	for s := int32(0); s < m.dense; s++ {
		row := m.delta[s*m.stride : (s+1)*m.stride]
		if s == 0 {
			for c := range row {
				row[c] = 0
			}
		} else {
			copy(row, m.delta[m.fail[s]*m.stride:(m.fail[s]+1)*m.stride])
		}
		for _, e := range edges[order[s]] {
			row[e.c] = flag(renum[e.to])
		}
	}
	m.edgeAt = make([]int32, 0, n-m.dense+1)
	for s := m.dense; s < n; s++ {
		m.edgeAt = append(m.edgeAt, int32(len(m.edgeTo)))
		for _, e := range edges[order[s]] {
			m.edgeClass = append(m.edgeClass, e.c)
			m.edgeTo = append(m.edgeTo, flag(renum[e.to]))
		}
	}
	m.edgeAt = append(m.edgeAt, int32(len(m.edgeTo)))
	return m
}

func (m *acMachine) code(s int32) int32 {
	if s < m.dense {
		return s * m.stride
	}
	return m.limit + s - m.dense
}

func (m *acMachine) state(code int32) int32 {
	if code < m.limit {
		return code / m.stride
	}
	return m.dense + code - m.limit
}

// step is the transition from the sparse state coded code on class c.
func (m *acMachine) step(code, c int32) int32 {
	s := m.state(code)
	for s >= m.dense {
		i := s - m.dense
		for e := m.edgeAt[i]; e < m.edgeAt[i+1]; e++ {
			if int32(m.edgeClass[e]) == c {
				return m.edgeTo[e]
			}
		}
		s = m.fail[s]
	}
	return m.delta[s*m.stride+c]
}

// scan marks in found (a bitset over literal ids) the literals text
// contains.
func (m *acMachine) scan(text string, found []uint64) {
	delta, class, limit := m.delta, &m.class, m.limit
	code := int32(0)
	for i := 0; i < len(text); i++ {
		c := int32(class[text[i]])
		var v int32
		if code < limit {
			v = delta[code+c]
		} else {
			v = m.step(code, c)
		}
		if v >= 0 {
			code = v
			continue
		}
		code = ^v
		for t := m.first[m.state(code)]; t >= 0; t = m.next[t] {
			id := m.lit[t]
			w, bit := id>>6, uint64(1)<<(id&63)
			if found[w]&bit != 0 {
				break // seen before, and so was the rest of its chain
			}
			found[w] |= bit
		}
	}
}

// size is the automaton's memory in bytes, roughly.
func (m *acMachine) size() int {
	return 4*(len(m.delta)+len(m.edgeAt)+len(m.edgeTo)+4*len(m.lit)) + len(m.edgeClass)
}
