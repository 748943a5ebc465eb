package fingerprint

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
)

// Rule is one identification rule, as written in a rules file or produced
// by an importer. Every text field but ID, Protocol, Field, Pattern and
// Prefilter is a template over the pattern's capture groups.
type Rule struct {
	ID string
	// Protocol is the grab protocol name the rule applies to ("ssh",
	// "http", ...), or "*" for any.
	Protocol string
	// Field is the named text the pattern runs on; "banner" when empty.
	Field string
	// Pattern is a Go regular expression (RE2 syntax).
	Pattern string
	// Bytes makes the pattern see the field as bytes rather than UTF-8:
	// each byte is the rune of the same value, so \xff matches the byte
	// 0xff. Captured text comes out as UTF-8 (Latin-1 decoded). For binary
	// protocols.
	Bytes bool

	Product string
	Vendor  string
	Version string
	Info    string
	OS      string
	Device  string
	// CPE holds CPE 2.3 formatted-string templates, application first.
	CPE []string
	// Extra holds further named outputs ("hostname", ...).
	Extra map[string]string
	// Prefilter, when set, replaces the literals derived from Pattern: the
	// rule runs only if the field contains one of them (ASCII case
	// insensitive). Use it when the derived literals are too weak.
	Prefilter []string

	// Source locates the rule: "rules/ssh.toml:12", "nmap-service-probes:1234".
	Source string
}

// Match is what an identification found.
type Match struct {
	RuleID  string
	Product string
	Vendor  string
	Version string
	Info    string
	OS      string
	Device  string
	CPE     []string
	Extra   map[string]string
	// Source is where the rule that matched is defined.
	Source string
}

// compiledRule is a validated rule ready to run. The built-in rules
// (validated by this package's tests) are compiled on first use instead:
// see lazyRule and ensure.
type compiledRule struct {
	Rule
	once sync.Once
	*ruleCode
}

// ruleCode is what compiling a rule makes.
type ruleCode struct {
	re     *regexp.Regexp
	groups int

	product, vendor, version, info, os, device template
	extra                                      []namedTemplate
	cpe                                        []cpeTemplate

	clauses [][]string // prefilter, lower case; nil = always run
	exotic  bool       // see requiredLiterals
}

type namedTemplate struct {
	name string
	t    template
}

// ruleError is a rule's validation error with its location.
type ruleError struct {
	source, id, field string
	err               error
}

func (e *ruleError) Error() string {
	var b strings.Builder
	if e.source != "" {
		b.WriteString(e.source)
		b.WriteString(": ")
	}
	if e.id != "" {
		fmt.Fprintf(&b, "rule %q: ", e.id)
	}
	if e.field != "" {
		b.WriteString(e.field)
		b.WriteString(": ")
	}
	b.WriteString(e.err.Error())
	return b.String()
}

func (e *ruleError) Unwrap() error { return e.err }

// validName: lower-case letters, digits, '-', '_', '.', '/'.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/') {
			return false
		}
	}
	return true
}

// validField is validName with upper case allowed ("postgres.error.F").
func validField(s string) bool {
	return s != "" && validName(strings.ToLower(s))
}

// compile validates r and prepares it; errors are *ruleError.
func compile(r Rule) (*compiledRule, error) {
	fail := func(field string, err error) error {
		return &ruleError{source: r.Source, id: r.ID, field: field, err: err}
	}
	if r.ID == "" || strings.ContainsAny(r.ID, " \t\r\n") {
		return nil, fail("id", errors.New("missing, or contains white space"))
	}
	if r.Field == "" {
		r.Field = "banner"
	}
	if r.Protocol != "*" && !validName(r.Protocol) {
		return nil, fail("protocol", fmt.Errorf("%q: want a lower-case protocol name or \"*\"", r.Protocol))
	}
	if !validField(r.Field) {
		return nil, fail("field", fmt.Errorf("%q: want a field name (letters, digits, '-', '_', '.')", r.Field))
	}
	if r.Pattern == "" {
		return nil, fail("pattern", errors.New("missing"))
	}
	if strings.TrimSpace(r.Product) == "" {
		return nil, fail("product", errors.New("missing"))
	}
	parsed, err := syntax.Parse(r.Pattern, syntax.Perl)
	if err != nil {
		return nil, fail("pattern", err)
	}
	re, err := regexp.Compile(r.Pattern)
	if err != nil {
		return nil, fail("pattern", err)
	}
	c := &compiledRule{Rule: r, ruleCode: &ruleCode{re: re, groups: re.NumSubexp()}}
	groups := groupLookup{n: c.groups, names: map[string]int{}}
	for i, name := range re.SubexpNames() {
		if name != "" {
			groups.names[name] = i
		}
	}
	for _, f := range []struct {
		name string
		src  string
		dst  *template
	}{
		{"product", r.Product, &c.product},
		{"vendor", r.Vendor, &c.vendor},
		{"version", r.Version, &c.version},
		{"info", r.Info, &c.info},
		{"os", r.OS, &c.os},
		{"device", r.Device, &c.device},
	} {
		t, err := parseTemplate(f.src, groups)
		if err != nil {
			return nil, fail(f.name, err)
		}
		*f.dst = t
	}
	for _, k := range slices.Sorted(maps.Keys(r.Extra)) {
		if !validName(k) {
			return nil, fail("extra", fmt.Errorf("key %q: want a lower-case name", k))
		}
		t, err := parseTemplate(r.Extra[k], groups)
		if err != nil {
			return nil, fail("extra."+k, err)
		}
		c.extra = append(c.extra, namedTemplate{k, t})
	}
	for _, s := range r.CPE {
		t, err := parseCPE(s, groups)
		if err != nil {
			return nil, fail("cpe", err)
		}
		c.cpe = append(c.cpe, t)
	}
	if r.Prefilter != nil {
		var clause []string
		for _, p := range r.Prefilter {
			if p == "" {
				return nil, fail("prefilter", errors.New("empty literal"))
			}
			clause = append(clause, asciiLower(p))
		}
		c.clauses = [][]string{clause}
	} else {
		c.clauses, c.exotic = requiredLiterals(parsed, r.Bytes)
	}
	return c, nil
}

// lazyRule is a rule compiled by ensure, on its first use. Only for rules
// known to be valid (the built-in ones): ensure panics on an invalid rule.
func lazyRule(r Rule) *compiledRule {
	if r.Field == "" {
		r.Field = "banner"
	}
	return &compiledRule{Rule: r}
}

// ensure compiles a lazy rule; it is safe for concurrent use and does
// nothing for a rule compiled already.
func (c *compiledRule) ensure() {
	c.once.Do(func() {
		if c.ruleCode != nil {
			return
		}
		cc, err := compile(c.Rule)
		if err != nil {
			panic("fingerprint: built-in rules: " + err.Error())
		}
		c.ruleCode = cc.ruleCode
	})
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// match runs the rule on text; idx is nil when the pattern has no groups.
func (c *compiledRule) match(text string) (idx []int, ok bool) {
	if c.groups == 0 {
		return nil, c.re.MatchString(text)
	}
	idx = c.re.FindStringSubmatchIndex(text)
	return idx, idx != nil
}

// result builds the Match for a successful run.
func (c *compiledRule) result(text string, idx []int) Match {
	// expand copies group text, so a Match never pins the field.
	var conv func(string) string
	if c.Bytes {
		conv = fromLatin1
	}
	exp := func(t template) string { return strings.TrimSpace(t.expand(text, idx, conv)) }
	m := Match{
		RuleID:  c.ID,
		Product: exp(c.product),
		Vendor:  exp(c.vendor),
		Version: exp(c.version),
		Info:    exp(c.info),
		OS:      exp(c.os),
		Device:  exp(c.device),
		Source:  c.Source,
	}
	if len(c.cpe) > 0 {
		m.CPE = make([]string, len(c.cpe))
		for i := range c.cpe {
			m.CPE[i] = c.cpe[i].expand(text, idx, conv)
		}
	}
	for _, e := range c.extra {
		if v := exp(e.t); v != "" {
			if m.Extra == nil {
				m.Extra = make(map[string]string, len(c.extra))
			}
			m.Extra[e.name] = v
		}
	}
	return m
}
