package vuln

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/vantagehq/vantage/query"
)

// Vuln is one CVE that affects a queried CPE.
type Vuln struct {
	ID string
	// Score is the CVSS base score (0.0 to 10.0, one decimal) of the
	// newest CVSS version the record has (see the package comment); 0
	// when it has none.
	Score float64
	// CVSS is the version of Score: "4.0", "3.1", "3.0", "2.0", or "".
	CVSS string
	// KEV: known exploited (the CISA catalog, or the NVD record's
	// cisaExploitAdd).
	KEV bool
}

// Stats counts what an import read and what a DB holds.
type Stats struct {
	Files          int // files (or readers) read
	Items          int // array items read: NVD records and KEV entries
	Skipped        int // items skipped as malformed
	SkippedMatches int // cpeMatch entries skipped (criteria not a CPE)

	CVEs       int // CVEs with at least one vulnerable match entry
	Entries    int // match entries (ranges, exact versions, all versions)
	KEV        int // of CVEs, those known exploited
	KEVCatalog int // distinct CVE ids marked known exploited by the inputs

	// Problems holds the first MaxProblems item errors (*ItemError).
	Problems []error
}

// MaxProblems is how many item errors Stats keeps.
const MaxProblems = 100

var cvssNames = [...]string{"", "2.0", "3.0", "3.1", "4.0"}

type cveRec struct {
	id    string
	score float32
	cvss  uint8 // index in cvssNames
	kev   bool
	dead  bool // replaced by a later record of the same id
}

// exactEntry matches one version.
type exactEntry struct {
	key       string // query.VersionKey of version+update
	cve       uint32
	anyUpdate bool // the criteria's update was "*"
	part      byte
}

const (
	hasLo  = 1 << iota // a start bound
	loIncl             // start is included
	hasHi              // an end bound
	hiIncl             // end is included
)

// rangeEntry matches a version range, or every version (no bound).
type rangeEntry struct {
	lo, hi string // version keys
	cve    uint32
	flags  uint8
	part   byte
}

func (e *rangeEntry) contains(k string) bool {
	if e.flags&hasLo != 0 {
		c := strings.Compare(k, e.lo)
		if c < 0 || c == 0 && e.flags&loIncl == 0 {
			return false
		}
	}
	if e.flags&hasHi != 0 {
		c := strings.Compare(k, e.hi)
		if c > 0 || c == 0 && e.flags&hiIncl == 0 {
			return false
		}
	}
	return true
}

type product struct {
	exact  []exactEntry // sorted by key once built
	ranges []rangeEntry
}

// DB is an immutable CPE to CVE index; safe for concurrent use.
type DB struct {
	products map[string]*product // "vendor:product", lower case
	cves     []cveRec
	stats    Stats
}

// Stats returns what the DB holds (CVEs, Entries, KEV, KEVCatalog) and
// what its import read.
func (db *DB) Stats() Stats {
	s := db.stats
	s.Problems = slices.Clone(s.Problems)
	return s
}

// Match returns the CVEs that affect cpe, by Score (highest first) then
// ID. A CPE that does not parse, or names no known product, gets nil.
func (db *DB) Match(cpe string) []Vuln {
	c, ok := parseCPE(cpe)
	if !ok {
		return nil
	}
	p := db.products[c.vendor+":"+c.product]
	if p == nil {
		return nil
	}
	var hits []uint32
	var key, base string
	known := c.known()
	if known {
		key = query.VersionKey(c.version + c.update)
		i := sort.Search(len(p.exact), func(i int) bool { return p.exact[i].key >= key })
		for ; i < len(p.exact) && p.exact[i].key == key; i++ {
			if partOK(c.part, p.exact[i].part) {
				hits = append(hits, p.exact[i].cve)
			}
		}
		if c.update != "" {
			// The queried update given apart: an entry for the version
			// with any update matches too.
			base = query.VersionKey(c.version)
			i := sort.Search(len(p.exact), func(i int) bool { return p.exact[i].key >= base })
			for ; i < len(p.exact) && p.exact[i].key == base; i++ {
				if p.exact[i].anyUpdate && partOK(c.part, p.exact[i].part) {
					hits = append(hits, p.exact[i].cve)
				}
			}
		}
	}
	for i := range p.ranges {
		e := &p.ranges[i]
		if !partOK(c.part, e.part) {
			continue
		}
		if e.flags&(hasLo|hasHi) == 0 || known && e.contains(key) {
			hits = append(hits, e.cve)
		}
	}
	if len(hits) == 0 {
		return nil
	}
	slices.Sort(hits)
	hits = slices.Compact(hits)
	out := make([]Vuln, 0, len(hits))
	for _, h := range hits {
		r := &db.cves[h]
		if r.dead {
			continue
		}
		out = append(out, Vuln{ID: r.id, Score: math.Round(float64(r.score)*10) / 10, CVSS: cvssNames[r.cvss], KEV: r.kev})
	}
	slices.SortFunc(out, func(a, b Vuln) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func partOK(a, b byte) bool { return a == b || a == '*' || b == '*' }

// cpe is the part of a CPE name matching looks at. vendor and product
// are lower case and stay escaped as in the formatted string; version
// and update are unescaped. update is "" when it is "*", "-" or empty.
type cpe struct {
	part            byte
	vendor, product string
	rawVersion      string // as written: "*", "-", "" mean no version
	version         string
	update          string
	anyUpdate       bool // update was "*" or empty
}

// known reports whether the CPE names a version.
func (c *cpe) known() bool {
	switch c.rawVersion {
	case "", "*", "-":
		return false
	}
	return true
}

// parseCPE reads a CPE 2.3 formatted string or a CPE 2.2 URI.
func parseCPE(s string) (cpe, bool) {
	var f []string
	s = strings.ToLower(s)
	if rest, ok := strings.CutPrefix(s, "cpe:2.3:"); ok {
		f = splitFS(rest)
	} else if rest, ok := strings.CutPrefix(s, "cpe:/"); ok {
		f = strings.Split(rest, ":")
	} else {
		return cpe{}, false
	}
	if len(f) < 3 || len(f[0]) != 1 || !strings.Contains("aoh*", f[0]) {
		return cpe{}, false
	}
	c := cpe{part: f[0][0], vendor: f[1], product: f[2], rawVersion: "*", anyUpdate: true}
	if c.vendor == "" || c.vendor == "*" || c.product == "" || c.product == "*" {
		return cpe{}, false
	}
	if len(f) > 3 {
		c.rawVersion = f[3]
	}
	c.version = unescape(c.rawVersion)
	if len(f) > 4 {
		switch f[4] {
		case "", "*":
		case "-":
			c.anyUpdate = false
		default:
			c.anyUpdate = false
			c.update = unescape(f[4])
		}
	}
	return c, true
}

// splitFS splits a formatted string's fields at the colons that are not
// escaped by a backslash.
func splitFS(s string) []string {
	var f []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case ':':
			f = append(f, s[start:i])
			start = i + 1
		}
	}
	return append(f, s[start:])
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
