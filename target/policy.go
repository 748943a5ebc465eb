package target

import (
	_ "embed"
	"fmt"
	"io"
	"strings"
)

//go:embed reserved.conf
var reservedConf string

// Labeled is an excluded range and the reason for excluding it.
type Labeled struct {
	Range
	Reason string
}

// Reserved returns the IANA special-purpose ranges that every scan excludes
// by default, each with its registry name.
func Reserved() []Labeled {
	ls, err := ParseLabeled(strings.NewReader(reservedConf), "reserved.conf")
	if err != nil {
		panic("embedded reserved.conf: " + err.Error())
	}
	return ls
}

// ParseLabeled reads an exclusion file (the syntax of ParseTargets), keeping
// each line's comment as the reason for its ranges; a line without a comment
// gets "source:line".
func ParseLabeled(r io.Reader, source string) ([]Labeled, error) {
	var out []Labeled
	err := scanTokens(r, func(line int, tok, comment string) error {
		rg, err := ParseRange(tok)
		if err != nil {
			return &ParseError{Source: source, Line: line, Token: tok, Err: err}
		}
		reason := comment
		if reason == "" {
			reason = fmt.Sprintf("%s:%d", source, line)
		}
		out = append(out, Labeled{rg, reason})
		return nil
	})
	return out, err
}

// Policy decides which addresses a scan may touch: the reserved ranges except
// those the operator explicitly allowed, plus the operator's own exclusions
// (files, flags, and later the opt-out list). Exclusions always win over
// targets, and an allowed reserved range is still subject to them.
type Policy struct {
	reserved []Labeled
	allowed  *Set
	user     []Labeled
}

// NewPolicy returns the default policy: every reserved range excluded.
func NewPolicy() *Policy {
	return &Policy{reserved: Reserved(), allowed: &Set{}}
}

// AllowReserved lets the scan touch r although it lies in reserved space.
// It returns an error when r overlaps no reserved range, since the operator
// probably meant something else.
func (p *Policy) AllowReserved(r Range) error {
	for _, l := range p.reserved {
		if l.Hi >= r.Lo && l.Lo <= r.Hi {
			p.allowed.Add(r)
			return nil
		}
	}
	return fmt.Errorf("--allow-reserved %s: not a reserved range, so there is nothing to allow", r)
}

// Exclude adds operator exclusions.
func (p *Policy) Exclude(ls ...Labeled) { p.user = append(p.user, ls...) }

// Excluded is the set of addresses no probe may reach.
func (p *Policy) Excluded() *Set {
	s := &Set{}
	s.AddRanges(p.reservedRanges())
	s.Remove(p.allowed)
	for _, l := range p.user {
		s.Add(l.Range)
	}
	return s
}

func (p *Policy) reservedRanges() []Range {
	rs := make([]Range, len(p.reserved))
	for i, l := range p.reserved {
		rs[i] = l.Range
	}
	return rs
}

// Dropped reports target addresses that a policy excluded, and why.
type Dropped struct {
	Range    Range  // for reserved space: the reserved range; otherwise zero
	Count    uint64 // target addresses dropped
	Reason   string
	Reserved bool // dropped because reserved and not allowed
}

// Apply returns the targets the policy allows, and what it dropped: one entry
// per reserved range that held targets, and one for all operator exclusions.
func (p *Policy) Apply(targets *Set) (*Set, []Dropped) {
	var dropped []Dropped
	allowed := targets.Clone()
	for _, l := range p.reserved {
		hit := targets.Intersect(NewSet(l.Range))
		hit.Remove(p.allowed)
		if n := hit.Size(); n > 0 {
			dropped = append(dropped, Dropped{Range: l.Range, Count: n, Reason: l.Reason, Reserved: true})
			allowed.Remove(hit)
		}
	}
	if len(p.user) > 0 {
		user := &Set{}
		for _, l := range p.user {
			user.Add(l.Range)
		}
		before := allowed.Size()
		allowed.Remove(user)
		if n := before - allowed.Size(); n > 0 {
			dropped = append(dropped, Dropped{Count: n, Reason: "operator exclusions"})
		}
	}
	return allowed, dropped
}

// Why explains why address a is excluded, or returns "" when it is not.
func (p *Policy) Why(a uint32) string {
	for _, l := range p.user {
		if l.Lo <= a && a <= l.Hi {
			return "excluded: " + l.Reason
		}
	}
	if p.allowed.Contains(a) {
		return ""
	}
	for _, l := range p.reserved {
		if l.Lo <= a && a <= l.Hi {
			return fmt.Sprintf("reserved: %s (%s); allow it with --allow-reserved", l.Reason, l.Range)
		}
	}
	return ""
}
