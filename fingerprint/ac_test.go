package fingerprint

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestACMachine checks the automaton against strings.Contains on random
// literal sets and texts, fully dense and with most states sparse.
func TestACMachine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "abcAB-\x00\xff "
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for round := 0; round < 300; round++ {
		seen := map[string]bool{}
		var lits []string
		for len(lits) < 1+rng.IntN(40) {
			l := asciiLower(word(1 + rng.IntN(6)))
			if !seen[l] {
				seen[l] = true
				lits = append(lits, l)
			}
		}
		for _, budget := range []int{denseBudget, 1, 40} {
			m := newACMachineBudget(lits, budget)
			for k := 0; k < 20; k++ {
				text := word(rng.IntN(80))
				found := make([]uint64, (len(lits)+63)/64)
				m.scan(text, found)
				lower := asciiLower(text)
				for id, l := range lits {
					want := strings.Contains(lower, l)
					got := found[id/64]&(1<<(id%64)) != 0
					if got != want {
						t.Fatalf("budget %d lits %q text %q: literal %q found=%v want %v", budget, lits, text, l, got, want)
					}
				}
			}
		}
	}
}

func TestACMachineSparseLayout(t *testing.T) {
	m := newACMachineBudget([]string{"abcdef", "bcd", "cdx"}, 1)
	if m.dense != 1 {
		t.Fatalf("dense = %d, want only the root", m.dense)
	}
	found := make([]uint64, 1)
	m.scan("xxABCDEFxx", found)
	if found[0] != 0b011 {
		t.Fatalf("found %b, want abcdef and bcd", found[0])
	}
}
