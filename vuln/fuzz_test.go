package vuln

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vantagehq/vantage/query"
)

// FuzzLoad: any bytes are read without a panic, and every match entry
// the import keeps can be matched: a CPE built from it (its exact
// version, a bound it includes, any version when it is for all versions)
// finds its CVE.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"nvd.json", "kev.json", "bad.json", "modified.json", "nvd.json.gz"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		type kept struct {
			c cpe
			m cpeMatch
		}
		entries := map[string][]kept{} // by CVE id, the last record's
		im := NewImporter()
		im.MaxItemBytes = 1 << 20
		im.seen = func(id string, c cpe, m *cpeMatch) {
			if m == nil {
				entries[id] = nil // a new record replaces an old one
				return
			}
			entries[id] = append(entries[id], kept{c, *m})
		}
		_ = im.Add("fuzz", bytes.NewReader(data))
		db := im.DB()
		st := db.Stats()
		if st.CVEs > st.Items || st.Entries < st.CVEs || st.KEV > st.CVEs {
			t.Fatalf("inconsistent Stats %+v", st)
		}
		for id, ks := range entries {
			if len(ks) == 0 {
				continue
			}
			for _, k := range ks {
				base := "cpe:2.3:" + string(k.c.part) + ":" + k.c.vendor + ":" + k.c.product + ":"
				want := func(version, update string) {
					q := base + version + ":" + update + ":*:*:*:*:*:*"
					for _, v := range db.Match(q) {
						if v.ID == id {
							return
						}
					}
					t.Fatalf("%s: entry %+v: Match(%q) lacks it", id, k.m, q)
				}
				m := k.m
				lo := first(m.VersionStartIncluding, m.VersionStartExcluding)
				hi := first(m.VersionEndIncluding, m.VersionEndExcluding)
				switch {
				case lo == "" && hi == "" && !k.c.known():
					want("*", "*")
					want("1.0", "*")
				case lo == "" && hi == "":
					if k.c.update != "" {
						want(escape(k.c.version+k.c.update), "*")
						want(escape(k.c.version), escape(k.c.update))
					} else {
						want(escape(k.c.version), "*")
					}
				default:
					// A bound that is included, in a range that is not empty.
					if ok, v := m.VersionStartIncluding != "", m.VersionStartIncluding; ok && known(v) && inBounds(v, m) {
						want(escape(v), "*")
					}
					if ok, v := m.VersionEndIncluding != "", m.VersionEndIncluding; ok && known(v) && inBounds(v, m) {
						want(escape(v), "*")
					}
				}
			}
		}
	})
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// known: a version a query can name (not "*", "-" or empty, no colon
// the escape would have to survive twice).
func known(v string) bool { return v != "" && v != "*" && v != "-" }

// inBounds: v within the entry's bounds, by the key order.
func inBounds(v string, m cpeMatch) bool {
	k := query.VersionKey(v)
	e := rangeEntry{}
	if m.VersionStartIncluding != "" {
		e.flags |= hasLo | loIncl
		e.lo = query.VersionKey(m.VersionStartIncluding)
	} else if m.VersionStartExcluding != "" {
		e.flags |= hasLo
		e.lo = query.VersionKey(m.VersionStartExcluding)
	}
	if m.VersionEndIncluding != "" {
		e.flags |= hasHi | hiIncl
		e.hi = query.VersionKey(m.VersionEndIncluding)
	} else if m.VersionEndExcluding != "" {
		e.flags |= hasHi
		e.hi = query.VersionKey(m.VersionEndExcluding)
	}
	return e.contains(k)
}

// escape writes v as a formatted-string field.
func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if slices.Contains([]byte(`\:*?`), v[i]) {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
