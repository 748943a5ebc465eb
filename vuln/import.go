package vuln

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/vantagehq/vantage/query"
)

// ItemError is a problem with one array item of a file: a skipped item
// or match entry, or (for a fatal error) where reading stopped.
type ItemError struct {
	File   string
	Index  int   // the item's index in the array; -1 outside it
	Offset int64 // input offset (uncompressed) where decoding was
	Err    error
}

func (e *ItemError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("%s: offset %d: %v", e.File, e.Offset, e.Err)
	}
	return fmt.Sprintf("%s: item %d (offset %d): %v", e.File, e.Index, e.Offset, e.Err)
}

func (e *ItemError) Unwrap() error { return e.Err }

// ErrItemTooLarge is returned when one item exceeds Importer.MaxItemBytes.
var ErrItemTooLarge = errors.New("item too large")

// Importer builds a DB from files read one after the other. Its memory is
// what the DB keeps plus one item being decoded.
type Importer struct {
	// MaxItemBytes bounds the bytes read while decoding one item (default
	// 64 MiB): a larger item stops the file.
	MaxItemBytes int64

	stats    Stats
	cves     []cveRec
	byID     map[string]uint32
	products map[string]*product
	kev      map[string]struct{}
	intern   map[string]string
	done     bool
	db       *DB

	// seen, in tests, is told of every NVD record (m nil) and of every
	// match entry kept.
	seen func(id string, c cpe, m *cpeMatch)
}

// NewImporter returns an empty Importer.
func NewImporter() *Importer {
	return &Importer{
		byID:     make(map[string]uint32),
		products: make(map[string]*product),
		kev:      make(map[string]struct{}),
		intern:   make(map[string]string),
	}
}

// Load imports the files in order and returns the DB. On the first file
// that cannot be read to its end it returns that error (an *ItemError
// for bad JSON) and no DB.
func Load(paths ...string) (*DB, Stats, error) {
	im := NewImporter()
	for _, p := range paths {
		if err := im.AddFile(p); err != nil {
			return nil, im.Stats(), err
		}
	}
	db := im.DB()
	return db, db.Stats(), nil
}

// Stats returns the counts so far (CVEs and Entries include replaced
// records until DB is called).
func (im *Importer) Stats() Stats {
	s := im.stats
	s.Problems = slices.Clone(s.Problems)
	s.KEVCatalog = len(im.kev)
	return s
}

// AddFile imports one file, plain or gzip.
func (im *Importer) AddFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return im.Add(path, f)
}

// Add imports one stream, plain or gzip (told by its first bytes); name
// is used in errors. Items read before an error stay imported.
func (im *Importer) Add(name string, r io.Reader) error {
	if im.done {
		return fmt.Errorf("%s: vuln: Importer used after DB", name)
	}
	im.stats.Files++
	br := bufio.NewReaderSize(r, 64<<10)
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return &ItemError{File: name, Index: -1, Err: err}
		}
		defer zr.Close()
		in = zr
	}
	max := im.MaxItemBytes
	if max <= 0 {
		max = 64 << 20
	}
	lr := &budgetReader{r: in, max: max}
	dec := json.NewDecoder(lr)
	fail := func(i int, err error) error {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return &ItemError{File: name, Index: i, Offset: dec.InputOffset(), Err: err}
	}
	tok, err := dec.Token()
	if err != nil {
		return fail(-1, err)
	}
	switch tok {
	case json.Delim('['):
		return im.items(name, dec, lr, fail)
	case json.Delim('{'):
	default:
		return fail(-1, errors.New("not an NVD CVE 2.0 or KEV document (no object or array)"))
	}
	found := false
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return fail(-1, err)
		}
		switch k {
		case "vulnerabilities":
			t, err := dec.Token()
			if err != nil {
				return fail(-1, err)
			}
			if t != json.Delim('[') {
				return fail(-1, errors.New(`"vulnerabilities" is not an array`))
			}
			if err := im.items(name, dec, lr, fail); err != nil {
				return err
			}
			found = true
		case "CVE_Items":
			return fail(-1, errors.New("an NVD 1.1 feed (CVE_Items): only the JSON 2.0 format is read"))
		default:
			if err := skipValue(dec); err != nil {
				return fail(-1, err)
			}
		}
		lr.n = 0
	}
	if _, err := dec.Token(); err != nil {
		return fail(-1, err)
	}
	if !found {
		return fail(-1, errors.New(`no "vulnerabilities" array`))
	}
	return nil
}

// items reads an array's items up to and with its closing bracket.
func (im *Importer) items(name string, dec *json.Decoder, lr *budgetReader, fail func(int, error) error) error {
	i := 0
	for ; dec.More(); i++ {
		lr.n = 0
		var it item
		err := dec.Decode(&it)
		im.stats.Items++
		if err != nil {
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) {
				im.stats.Items--
				return fail(i, err)
			}
			// The whole value was read: skip it.
			im.problem(&ItemError{File: name, Index: i, Offset: dec.InputOffset(), Err: err})
			im.stats.Skipped++
			continue
		}
		if err := im.add(name, i, dec.InputOffset(), &it); err != nil {
			im.problem(err)
			im.stats.Skipped++
		}
	}
	if _, err := dec.Token(); err != nil {
		return fail(i, err)
	}
	return nil
}

func (im *Importer) problem(err error) {
	if len(im.stats.Problems) < MaxProblems {
		im.stats.Problems = append(im.stats.Problems, err)
	}
}

// skipValue reads one value token by token, holding one token at a time.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// budgetReader fails once more than max bytes are read since n was reset.
type budgetReader struct {
	r      io.Reader
	n, max int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.n > b.max {
		return 0, ErrItemTooLarge
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

// item is one element of "vulnerabilities": an NVD record (CVE) or a KEV
// entry (CveID); only the fields matching needs are decoded.
type item struct {
	CVE *struct {
		ID             string `json:"id"`
		CisaExploitAdd string `json:"cisaExploitAdd"`
		Metrics        struct {
			V40 []metric `json:"cvssMetricV40"`
			V31 []metric `json:"cvssMetricV31"`
			V30 []metric `json:"cvssMetricV30"`
			V2  []metric `json:"cvssMetricV2"`
		} `json:"metrics"`
		Configurations []struct {
			Negate bool `json:"negate"`
			Nodes  []struct {
				Negate   bool       `json:"negate"`
				CPEMatch []cpeMatch `json:"cpeMatch"`
			} `json:"nodes"`
		} `json:"configurations"`
	} `json:"cve"`
	CveID string `json:"cveID"`
}

type metric struct {
	Type string `json:"type"`
	Data struct {
		BaseScore float64 `json:"baseScore"`
	} `json:"cvssData"`
}

type cpeMatch struct {
	Vulnerable            bool   `json:"vulnerable"`
	Criteria              string `json:"criteria"`
	VersionStartIncluding string `json:"versionStartIncluding"`
	VersionStartExcluding string `json:"versionStartExcluding"`
	VersionEndIncluding   string `json:"versionEndIncluding"`
	VersionEndExcluding   string `json:"versionEndExcluding"`
}

// score picks the base score of the newest CVSS version present.
func score(ms ...[]metric) (float32, uint8) {
	for i, m := range ms {
		if len(m) == 0 {
			continue
		}
		best, primary := -1.0, false
		for _, x := range m {
			s := x.Data.BaseScore
			p := strings.EqualFold(x.Type, "Primary")
			if p && !primary || p == primary && s > best {
				best, primary = s, p
			}
		}
		if best < 0 || best > 10 {
			best = 0
		}
		return float32(best), uint8(len(cvssNames) - 1 - i)
	}
	return 0, 0
}

func (im *Importer) add(name string, i int, off int64, it *item) error {
	bad := func(err error) error { return &ItemError{File: name, Index: i, Offset: off, Err: err} }
	if it.CVE == nil {
		if it.CveID == "" {
			return bad(errors.New(`neither an NVD record ("cve") nor a KEV entry ("cveID")`))
		}
		im.kev[strings.ToUpper(strings.TrimSpace(it.CveID))] = struct{}{}
		return nil
	}
	c := it.CVE
	id := strings.ToUpper(strings.TrimSpace(c.ID))
	if id == "" {
		return bad(errors.New("cve.id is empty"))
	}
	if old, ok := im.byID[id]; ok {
		im.cves[old].dead = true
		delete(im.byID, id)
	}
	if c.CisaExploitAdd != "" {
		im.kev[id] = struct{}{}
	}
	if im.seen != nil {
		im.seen(id, cpe{}, nil)
	}
	idx := uint32(len(im.cves))
	n := 0
	for _, cfg := range c.Configurations {
		if cfg.Negate {
			continue
		}
		for _, node := range cfg.Nodes {
			if node.Negate {
				continue
			}
			for k := range node.CPEMatch {
				m := &node.CPEMatch[k]
				if !m.Vulnerable {
					continue
				}
				cp, ok := parseCPE(m.Criteria)
				if !ok {
					im.stats.SkippedMatches++
					im.problem(bad(fmt.Errorf("criteria %q is not a CPE", m.Criteria)))
					continue
				}
				im.entry(idx, cp, m)
				if im.seen != nil {
					im.seen(id, cp, m)
				}
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	s, v := score(c.Metrics.V40, c.Metrics.V31, c.Metrics.V30, c.Metrics.V2)
	im.cves = append(im.cves, cveRec{id: id, score: s, cvss: v})
	im.byID[id] = idx
	im.stats.CVEs++
	im.stats.Entries += n
	return nil
}

func (im *Importer) key(v string) string {
	k := query.VersionKey(v)
	if s, ok := im.intern[k]; ok {
		return s
	}
	im.intern[k] = k
	return k
}

func (im *Importer) entry(idx uint32, c cpe, m *cpeMatch) {
	pk := c.vendor + ":" + c.product
	p := im.products[pk]
	if p == nil {
		p = &product{}
		im.products[pk] = p
	}
	e := rangeEntry{cve: idx, part: c.part}
	switch {
	case m.VersionStartIncluding != "":
		e.flags |= hasLo | loIncl
		e.lo = im.key(m.VersionStartIncluding)
	case m.VersionStartExcluding != "":
		e.flags |= hasLo
		e.lo = im.key(m.VersionStartExcluding)
	}
	switch {
	case m.VersionEndIncluding != "":
		e.flags |= hasHi | hiIncl
		e.hi = im.key(m.VersionEndIncluding)
	case m.VersionEndExcluding != "":
		e.flags |= hasHi
		e.hi = im.key(m.VersionEndExcluding)
	}
	if e.flags == 0 && c.known() {
		p.exact = append(p.exact, exactEntry{key: im.key(c.version + c.update), cve: idx, anyUpdate: c.anyUpdate, part: c.part})
		return
	}
	p.ranges = append(p.ranges, e)
}

// DB finishes the import: it drops replaced records, applies the KEV
// flags and sorts the index. Add fails afterwards; DB returns the same
// DB again.
func (im *Importer) DB() *DB {
	if im.db != nil {
		return im.db
	}
	im.done = true
	for id := range im.kev {
		if i, ok := im.byID[id]; ok {
			im.cves[i].kev = true
		}
	}
	st := im.Stats()
	st.CVEs, st.Entries, st.KEV = 0, 0, 0
	for i := range im.cves {
		if !im.cves[i].dead {
			st.CVEs++
			if im.cves[i].kev {
				st.KEV++
			}
		}
	}
	for _, p := range im.products {
		p.exact = slices.DeleteFunc(p.exact, func(e exactEntry) bool { return im.cves[e.cve].dead })
		p.ranges = slices.DeleteFunc(p.ranges, func(e rangeEntry) bool { return im.cves[e.cve].dead })
		p.exact = slices.Clip(p.exact)
		p.ranges = slices.Clip(p.ranges)
		slices.SortFunc(p.exact, func(a, b exactEntry) int { return strings.Compare(a.key, b.key) })
		st.Entries += len(p.exact) + len(p.ranges)
	}
	db := &DB{products: im.products, cves: slices.Clip(im.cves), stats: st}
	im.db = db
	im.products, im.cves, im.byID, im.intern, im.kev = nil, nil, nil, nil, nil
	return db
}
