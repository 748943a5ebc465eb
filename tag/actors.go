package tag

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

//go:embed rules/actors/actors.toml
var embeddedActors []byte

// Actor is an organisation that scans or probes the Internet.
type Actor struct {
	Name        string   `toml:"name" json:"name"`           // upper case, also the slug of its actor tag
	Intention   string   `toml:"intention" json:"intention"` // benign, malicious, unknown
	Description string   `toml:"description" json:"description,omitempty"`
	References  []string `toml:"references" json:"references,omitempty"`
	CIDRs       []string `toml:"cidrs" json:"cidrs,omitempty"`
	// RDNS are domain suffixes of the reverse DNS names of the actor's
	// scanners ("shodan.io" covers "census1.shodan.io"). A name counts only
	// when forward-confirmed: it resolves back to the address.
	RDNS []string `toml:"rdns" json:"rdns,omitempty"`
}

type actorsFile struct {
	Actors []Actor `toml:"actor"`
}

// span is a disjoint address interval owned by one actor.
type span struct {
	lo, hi netip.Addr
	actor  int
	prefix string // as written, for evidence
}

// Actors is a database of actors, looked up by address (sorted disjoint
// intervals, binary search) and by forward-confirmed reverse DNS.
type Actors struct {
	list  []Actor
	by    map[string]int
	spans []span
}

const (
	maxActors      = 4096
	maxActorRanges = 1 << 20
	maxPTRNames    = 4
)

var defaultActors = sync.OnceValues(func() (*Actors, error) { return LoadActors(embeddedActors) })

// DefaultActors returns the built-in actors (tag/rules/actors/actors.toml).
func DefaultActors() *Actors {
	a, err := defaultActors()
	if err != nil {
		panic("tag: built-in actors: " + err.Error())
	}
	return a
}

// LoadActors reads an actors file (see docs/tags.md).
func LoadActors(src []byte) (*Actors, error) {
	var f actorsFile
	md, err := toml.Decode(string(src), &f)
	if err != nil {
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("unknown key %s", und[0])
	}
	a := &Actors{by: map[string]int{}}
	for _, ac := range f.Actors {
		if err := a.Add(ac); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Add adds an actor, or more ranges and suffixes to an actor of the same
// name.
func (a *Actors) Add(ac Actor) error {
	ac.Name = strings.ToUpper(strings.TrimSpace(ac.Name))
	if !validSlug(ac.Name) {
		return fmt.Errorf("actor %q: name must be A-Z, 0-9 and _", ac.Name)
	}
	if ac.Intention == "" {
		ac.Intention = "unknown"
	}
	if !intentions[ac.Intention] {
		return fmt.Errorf("actor %s: intention %q: want benign, malicious or unknown", ac.Name, ac.Intention)
	}
	for i, s := range ac.RDNS {
		s = strings.ToLower(strings.Trim(strings.TrimPrefix(strings.TrimSpace(s), "*"), "."))
		if s == "" || !strings.Contains(s, ".") {
			return fmt.Errorf("actor %s: rdns suffix %q: want a domain such as example.org", ac.Name, ac.RDNS[i])
		}
		ac.RDNS[i] = s
	}
	var prefixes []netip.Prefix
	for _, c := range ac.CIDRs {
		p, err := parsePrefix(c)
		if err != nil {
			return fmt.Errorf("actor %s: %v", ac.Name, err)
		}
		prefixes = append(prefixes, p)
	}
	i, ok := a.by[ac.Name]
	if !ok {
		if len(a.list) >= maxActors {
			return fmt.Errorf("more than %d actors", maxActors)
		}
		i = len(a.list)
		a.list = append(a.list, Actor{Name: ac.Name, Intention: ac.Intention, Description: ac.Description, References: ac.References})
		a.by[ac.Name] = i
	}
	cur := &a.list[i]
	for _, s := range ac.RDNS {
		if !slices.Contains(cur.RDNS, s) {
			cur.RDNS = append(cur.RDNS, s)
		}
	}
	for _, p := range prefixes {
		cur.CIDRs = append(cur.CIDRs, p.String())
	}
	if len(prefixes) > 0 {
		return a.rebuild()
	}
	return nil
}

// Actor returns the actor of that name.
func (a *Actors) Actor(name string) (*Actor, bool) {
	i, ok := a.by[strings.ToUpper(name)]
	if !ok {
		return nil, false
	}
	return &a.list[i], true
}

// List returns every actor.
func (a *Actors) List() []Actor { return slices.Clone(a.list) }

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		for i := p.Bits(); i < 32; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}

// rebuild flattens every actor's prefixes into disjoint intervals. CIDRs
// either nest or do not overlap; where they nest, the more specific one
// wins (an operator can carve an exception out of a larger block).
func (a *Actors) rebuild() error {
	type pfx struct {
		p     netip.Prefix
		actor int
	}
	var all []pfx
	for i, ac := range a.list {
		for _, c := range ac.CIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return err
			}
			all = append(all, pfx{p, i})
		}
	}
	if len(all) > maxActorRanges {
		return fmt.Errorf("more than %d actor ranges", maxActorRanges)
	}
	sort.SliceStable(all, func(i, j int) bool {
		if c := all[i].p.Addr().Compare(all[j].p.Addr()); c != 0 {
			return c < 0
		}
		return all[i].p.Bits() < all[j].p.Bits() // parents first
	})
	var out []span
	emit := func(lo, hi netip.Addr, x pfx) {
		if !lo.IsValid() || lo.Compare(hi) > 0 {
			return
		}
		if n := len(out); n > 0 && out[n-1].actor == x.actor && out[n-1].prefix == x.p.String() && out[n-1].hi.Next() == lo {
			out[n-1].hi = hi
			return
		}
		out = append(out, span{lo, hi, x.actor, x.p.String()})
	}
	var stack []pfx
	var cur netip.Addr // first address not yet emitted
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		hi := lastAddr(top.p)
		emit(cur, hi, top)
		cur = hi.Next()
	}
	for _, x := range all {
		for len(stack) > 0 && !stack[len(stack)-1].p.Contains(x.p.Addr()) {
			pop()
		}
		if len(stack) > 0 {
			emit(cur, x.p.Addr().Prev(), stack[len(stack)-1])
		}
		cur = x.p.Addr()
		stack = append(stack, x)
	}
	for len(stack) > 0 {
		pop()
	}
	a.spans = out
	return nil
}

// LookupRange finds the actor whose ranges hold addr, and the range.
func (a *Actors) LookupRange(addr netip.Addr) (*Actor, string, bool) {
	if a == nil || !addr.IsValid() {
		return nil, "", false
	}
	addr = addr.Unmap()
	i := sort.Search(len(a.spans), func(i int) bool { return a.spans[i].hi.Compare(addr) >= 0 })
	if i < len(a.spans) && a.spans[i].lo.Compare(addr) <= 0 && a.spans[i].lo.BitLen() == addr.BitLen() {
		s := a.spans[i]
		return &a.list[s.actor], s.prefix, true
	}
	return nil, "", false
}

// Resolver does the DNS lookups forward-confirmed reverse DNS needs.
// *net.Resolver satisfies it; a sensor passes a cached one.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Resolve finds the actor of addr: by range first, then, when res is not
// nil, by forward-confirmed reverse DNS (a PTR name under one of an actor's
// suffixes that resolves back to addr). The string says why.
func (a *Actors) Resolve(ctx context.Context, addr netip.Addr, res Resolver) (*Actor, string, bool) {
	if ac, p, ok := a.LookupRange(addr); ok {
		return ac, "source in " + p, true
	}
	if res == nil || a == nil || !addr.IsValid() {
		return nil, "", false
	}
	addr = addr.Unmap()
	hasSuffixes := false
	for _, ac := range a.list {
		if len(ac.RDNS) > 0 {
			hasSuffixes = true
			break
		}
	}
	if !hasSuffixes {
		return nil, "", false
	}
	names, err := res.LookupAddr(ctx, addr.String())
	if err != nil {
		return nil, "", false
	}
	if len(names) > maxPTRNames {
		names = names[:maxPTRNames]
	}
	for _, n := range names {
		name := strings.ToLower(strings.TrimSuffix(n, "."))
		for i := range a.list {
			ac := &a.list[i]
			for _, suf := range ac.RDNS {
				if name != suf && !strings.HasSuffix(name, "."+suf) {
					continue
				}
				net := "ip4"
				if addr.Is6() {
					net = "ip6"
				}
				ips, err := res.LookupNetIP(ctx, net, name)
				if err != nil {
					continue
				}
				for _, ip := range ips {
					if ip.Unmap() == addr {
						return ac, fmt.Sprintf("forward-confirmed reverse DNS %s (*.%s)", name, suf), true
					}
				}
			}
		}
	}
	return nil, "", false
}

// ImportRanges reads a plain-text list of addresses, CIDRs or "a-b"
// ranges (one per line; '#' and ';' start comments; blank lines ignored;
// a trailing text after the address, separated by a space, tab or comma,
// is ignored) as published by scanning organisations, and adds them to
// actor. It returns how many entries it added. Lines that are not
// addresses are an error with their line number.
func (a *Actors) ImportRanges(r io.Reader, actor string, intention string) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	var cidrs []string
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if i := strings.IndexAny(s, "#;"); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		if i := strings.IndexAny(s, " \t,"); i >= 0 {
			s = s[:i]
		}
		if s == "" {
			continue
		}
		ps, err := parseRangeLine(s)
		if err != nil {
			return 0, fmt.Errorf("line %d: %v", line, err)
		}
		for _, p := range ps {
			cidrs = append(cidrs, p.String())
		}
		if len(cidrs) > maxActorRanges {
			return 0, fmt.Errorf("line %d: more than %d ranges", line, maxActorRanges)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("line %d: %v", line+1, err)
	}
	if err := a.Add(Actor{Name: actor, Intention: intention, CIDRs: cidrs}); err != nil {
		return 0, err
	}
	return len(cidrs), nil
}

// ImportRanges reads a published list into a new Actors holding one actor.
func ImportRanges(r io.Reader, actor string) (*Actors, error) {
	a := &Actors{by: map[string]int{}}
	if _, err := a.ImportRanges(r, actor, "unknown"); err != nil {
		return nil, err
	}
	return a, nil
}

func parseRangeLine(s string) ([]netip.Prefix, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		return []netip.Prefix{p}, nil
	}
	a, err := netip.ParseAddr(strings.TrimSpace(lo))
	if err != nil {
		return nil, err
	}
	b, err := netip.ParseAddr(strings.TrimSpace(hi))
	if err != nil {
		return nil, err
	}
	a, b = a.Unmap(), b.Unmap()
	if a.BitLen() != b.BitLen() || a.Compare(b) > 0 {
		return nil, fmt.Errorf("range %s: bad bounds", s)
	}
	return rangeToPrefixes(a, b), nil
}

// rangeToPrefixes covers [a, b] with the fewest CIDRs.
func rangeToPrefixes(a, b netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for i := 0; i < 256 && a.IsValid() && a.Compare(b) <= 0; i++ {
		bits := a.BitLen()
		// widen while aligned and inside the range
		for bits > 0 {
			p := netip.PrefixFrom(a, bits-1).Masked()
			if p.Addr() != a || lastAddr(p).Compare(b) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(a, bits)
		out = append(out, p)
		last := lastAddr(p)
		if last == b {
			break
		}
		a = last.Next()
	}
	return out
}
