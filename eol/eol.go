// Package eol says whether a product version's release cycle has reached
// its end of life: the day its vendor stops publishing security fixes
// for it.
//
// The answers come from data, not code: a table of products, each keyed
// by its CPE vendor:product ("php:php", "apache:http_server"), with its
// release cycles. A cycle is a version prefix ("2.2", "8.0", "1.1.1"),
// its end-of-life date and the vendor's page that states it. Default is
// the table built into the binary (data/eol.json, written by hand from
// the vendors' published policies; see its comment and notes for what it
// leaves out and why); Load reads a table in the same format, and Merge
// lays a user's table over another.
//
// # File format
//
//	{
//	  "comment": "free text",
//	  "notes": {"openbsd:openssh": "why it is not listed"},
//	  "products": [
//	    {
//	      "cpe": "php:php",               // vendor:product, required
//	      "aliases": ["php_group:php"],   // further vendor:product keys
//	      "name": "PHP",                  // shown in Status.Product; default the cpe
//	      "source": "https://...",        // default source of its cycles
//	      "cycles": [
//	        {"cycle": "7.4", "eol": "2022-11-28", "source": "https://...", "note": "..."}
//	      ]
//	    }
//	  ]
//	}
//
// Decoding is strict: an unknown field, a missing cycle or date, a date
// that is not YYYY-MM-DD, a source that is not an http(s) URL (every
// cycle needs one, its own or its product's), a cycle given twice, or a
// vendor:product claimed by two products is an error naming the entry.
//
// # Matching
//
// Check takes a CPE (2.3 formatted string, or the 2.2 URI form cpe:/a:...)
// and looks its vendor:product up without regard to case. The version is
// matched against the product's cycles: a cycle matches when it is a
// prefix of the version at a component boundary, comparing as
// query.VersionKey does (numbers as numbers, letters without case, all
// separators alike), so "2.2" matches "2.2", "2.2.34" and "2.2-beta" but
// not "2.20", and "1.0.2" matches "1.0.2k". The longest matching cycle
// wins ("1.1.1" over "1.1").
package eol

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vantagehq/vantage/query"
)

//go:embed data/eol.json
var defaultData []byte

// Status is what Check found for a CPE.
type Status struct {
	Product string    `json:"product"` // the product's name in the table
	Cycle   string    `json:"cycle"`   // the cycle that matched, e.g. "7.4"
	EOL     time.Time `json:"eol"`     // the cycle's end of life, midnight UTC
	Ended   bool      `json:"ended"`   // now >= EOL
	Source  string    `json:"source"`  // the vendor's page stating EOL
	Note    string    `json:"note,omitempty"`
}

// Table holds products' release cycles. A Table is safe for concurrent
// Check calls; Merge must not run at the same time as anything else on
// the receiver.
type Table struct {
	products map[string]*product // by lower-case vendor:product, aliases too
	order    []*product          // as declared, each once
}

type product struct {
	key    string // canonical vendor:product
	keys   []string
	name   string
	named  bool    // name given in the file, not defaulted to key
	cycles []cycle // longest key first
}

type cycle struct {
	name   string
	key    string // query.VersionKey(name)
	eol    time.Time
	source string
	note   string
}

// file is the JSON format.
type file struct {
	Comment  string            `json:"comment"`
	Notes    map[string]string `json:"notes"`
	Products []fileProduct     `json:"products"`
}

type fileProduct struct {
	CPE     string      `json:"cpe"`
	Aliases []string    `json:"aliases"`
	Name    string      `json:"name"`
	Source  string      `json:"source"`
	Cycles  []fileCycle `json:"cycles"`
}

type fileCycle struct {
	Cycle  string `json:"cycle"`
	EOL    string `json:"eol"`
	Source string `json:"source"`
	Note   string `json:"note"`
}

var (
	defaultOnce  sync.Once
	defaultTable *Table
)

// Default returns the built-in table. It is shared: do not Merge into
// it; to lay a user's file over it, Merge into Default().Clone().
func Default() *Table {
	defaultOnce.Do(func() {
		t, err := Load(bytes.NewReader(defaultData))
		if err != nil {
			panic("eol: built-in data: " + err.Error())
		}
		defaultTable = t
	})
	return defaultTable
}

// Clone returns a copy of t that can be merged into without touching t.
func (t *Table) Clone() *Table {
	c := &Table{products: map[string]*product{}}
	for _, p := range t.order {
		q := *p
		q.keys = slices.Clone(p.keys)
		q.cycles = slices.Clone(p.cycles)
		c.order = append(c.order, &q)
		for _, k := range q.keys {
			c.products[k] = &q
		}
	}
	return c
}

// Load reads a table in the format described in the package comment.
func Load(r io.Reader) (*Table, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("eol: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("eol: data after the top-level object")
	}
	t := &Table{products: map[string]*product{}}
	for i, fp := range f.Products {
		p, err := fp.build()
		if err != nil {
			return nil, fmt.Errorf("eol: products[%d] %q: %w", i, fp.CPE, err)
		}
		for _, k := range p.keys {
			if _, dup := t.products[k]; dup {
				return nil, fmt.Errorf("eol: products[%d] %q: %q is listed by an earlier product", i, fp.CPE, k)
			}
			t.products[k] = p
		}
		t.order = append(t.order, p)
	}
	return t, nil
}

func (fp *fileProduct) build() (*product, error) {
	key, err := vendorProduct(fp.CPE)
	if err != nil {
		return nil, fmt.Errorf("cpe: %w", err)
	}
	p := &product{key: key, keys: []string{key}, name: fp.Name, named: fp.Name != ""}
	if p.name == "" {
		p.name = key
	}
	for _, a := range fp.Aliases {
		k, err := vendorProduct(a)
		if err != nil {
			return nil, fmt.Errorf("alias %q: %w", a, err)
		}
		if slices.Contains(p.keys, k) {
			return nil, fmt.Errorf("alias %q given twice", a)
		}
		p.keys = append(p.keys, k)
	}
	if fp.Source != "" {
		if err := checkURL(fp.Source); err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
	}
	if len(fp.Cycles) == 0 {
		return nil, errors.New("no cycles")
	}
	seen := map[string]string{}
	for j, fc := range fp.Cycles {
		c, err := fc.build(fp.Source)
		if err != nil {
			return nil, fmt.Errorf("cycles[%d] %q: %w", j, fc.Cycle, err)
		}
		if prev, dup := seen[c.key]; dup {
			return nil, fmt.Errorf("cycles[%d] %q: the same cycle as %q", j, fc.Cycle, prev)
		}
		seen[c.key] = fc.Cycle
		p.cycles = append(p.cycles, c)
	}
	p.sortCycles()
	return p, nil
}

func (fc *fileCycle) build(defSource string) (cycle, error) {
	name := strings.TrimSpace(fc.Cycle)
	if name == "" {
		return cycle{}, errors.New("no cycle (a version prefix such as \"2.4\")")
	}
	key := query.VersionKey(name)
	if key == "" {
		return cycle{}, errors.New("cycle has no version components")
	}
	if fc.EOL == "" {
		return cycle{}, errors.New("no eol date")
	}
	d, err := time.Parse(time.DateOnly, fc.EOL)
	if err != nil {
		return cycle{}, fmt.Errorf("eol %q: want YYYY-MM-DD", fc.EOL)
	}
	src := fc.Source
	if src == "" {
		src = defSource
	}
	if src == "" {
		return cycle{}, errors.New("no source (give the cycle's or the product's)")
	}
	if err := checkURL(src); err != nil {
		return cycle{}, fmt.Errorf("source: %w", err)
	}
	return cycle{name: name, key: key, eol: d, source: src, note: fc.Note}, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// vendorProduct checks and lower-cases "vendor:product".
func vendorProduct(s string) (string, error) {
	v, p, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	if !ok || v == "" || p == "" || strings.Contains(p, ":") || v == "*" || p == "*" || v == "-" || p == "-" {
		return "", fmt.Errorf("%q: want vendor:product", s)
	}
	return v + ":" + p, nil
}

func (p *product) sortCycles() {
	// longest key first, so the first match is the longest; ties by key
	slices.SortStableFunc(p.cycles, func(a, b cycle) int {
		if len(a.key) != len(b.key) {
			return len(b.key) - len(a.key)
		}
		return strings.Compare(a.key, b.key)
	})
}

// Merge lays o over t: o's products are added, and for a product both
// know (by any of its keys) o's cycles replace t's cycles of the same
// version and are added otherwise; o's name (when it gives one) and
// aliases win. The user's file is o.
func (t *Table) Merge(o *Table) {
	if o == nil {
		return
	}
	if t.products == nil {
		t.products = map[string]*product{}
	}
	for _, op := range o.order {
		var tp *product
		for _, k := range op.keys {
			if p := t.products[k]; p != nil {
				tp = p
				break
			}
		}
		if tp == nil {
			q := *op
			q.keys = slices.Clone(op.keys)
			q.cycles = slices.Clone(op.cycles)
			t.order = append(t.order, &q)
			for _, k := range q.keys {
				if old := t.products[k]; old != nil {
					old.keys = slices.DeleteFunc(old.keys, func(x string) bool { return x == k })
				}
				t.products[k] = &q
			}
			continue
		}
		if op.named {
			tp.name, tp.named = op.name, true
		}
		for _, k := range op.keys {
			if old := t.products[k]; old != nil && old != tp {
				old.keys = slices.DeleteFunc(old.keys, func(x string) bool { return x == k })
			}
			t.products[k] = tp
			if !slices.Contains(tp.keys, k) {
				tp.keys = append(tp.keys, k)
			}
		}
		for _, c := range op.cycles {
			i := slices.IndexFunc(tp.cycles, func(x cycle) bool { return x.key == c.key })
			if i >= 0 {
				tp.cycles[i] = c
			} else {
				tp.cycles = append(tp.cycles, c)
			}
		}
		tp.sortCycles()
	}
}

// Products lists the canonical vendor:product keys of t, as declared
// (the built-in table's, then those merged in).
func (t *Table) Products() []string {
	var out []string
	for _, p := range t.order {
		if len(p.keys) > 0 {
			out = append(out, p.key)
		}
	}
	return out
}

// Check looks cpe's product and version up. ok is false when the CPE does
// not parse, has no version ("*", "-" or empty), names a product t does
// not know, or a version no cycle of it matches. Ended is now >= EOL.
func (t *Table) Check(cpe string, now time.Time) (Status, bool) {
	if t == nil {
		return Status{}, false
	}
	vendor, prod, version, ok := ParseCPE(cpe)
	if !ok || version == "" || version == "*" || version == "-" {
		return Status{}, false
	}
	p := t.products[vendor+":"+prod]
	if p == nil {
		return Status{}, false
	}
	vk := query.VersionKey(version)
	for _, c := range p.cycles {
		if prefixAtBoundary(vk, c.key) {
			return Status{
				Product: p.name,
				Cycle:   c.name,
				EOL:     c.eol,
				Ended:   !now.Before(c.eol),
				Source:  c.source,
				Note:    c.note,
			}, true
		}
	}
	return Status{}, false
}

// prefixAtBoundary reports whether the version key v starts with the
// cycle key c and the next run of v begins where c ends. Numbers in keys
// have a fixed width (or a length prefix), so a number cannot run on past
// c; only a word can ("1.0.2k" vs a cycle "1.0.2kb").
func prefixAtBoundary(v, c string) bool {
	if !strings.HasPrefix(v, c) {
		return false
	}
	if len(v) == len(c) {
		return true
	}
	return !(isLetter(c[len(c)-1]) && isLetter(v[len(c)]))
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' }

// ParseCPE returns the lower-cased vendor and product, and the version
// (unescaped, as given), of a CPE 2.3 formatted string
// (cpe:2.3:a:vendor:product:version:...) or a CPE 2.2 URI
// (cpe:/a:vendor:product:version...). Vendor and product must be
// present and not "*".
func ParseCPE(s string) (vendor, product, version string, ok bool) {
	var f []string
	switch {
	case hasPrefixFold(s, "cpe:2.3:"):
		f = split23(s[len("cpe:2.3:"):])
		if len(f) < 4 {
			return "", "", "", false
		}
	case hasPrefixFold(s, "cpe:/"):
		f = strings.Split(s[len("cpe:/"):], ":")
		for i := range f {
			u, err := url.PathUnescape(f[i])
			if err != nil {
				return "", "", "", false
			}
			f[i] = u
		}
		if len(f) < 3 {
			return "", "", "", false
		}
	default:
		return "", "", "", false
	}
	vendor, product = strings.ToLower(f[1]), strings.ToLower(f[2])
	if vendor == "" || product == "" || vendor == "*" || product == "*" || vendor == "-" || product == "-" {
		return "", "", "", false
	}
	if len(f) > 3 {
		version = f[3]
	}
	return vendor, product, version, true
}

func hasPrefixFold(s, p string) bool {
	return len(s) >= len(p) && strings.EqualFold(s[:len(p)], p)
}

// split23 splits CPE 2.3 fields at unescaped colons and removes the
// backslash escapes.
func split23(s string) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == ':':
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(out, b.String())
}
