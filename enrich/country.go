package enrich

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	maxminddb "github.com/oschwald/maxminddb-golang/v2"
)

// countryDB reads a country from an MMDB file: ip-location-db's records
// ({"country_code": "AU"}) and, so that users can point at other databases,
// MaxMind/DB-IP style ones ({"country": {"iso_code": "AU"}}).
//
// The file is read into memory rather than memory-mapped: lookups then stay
// safe while, or after, Close runs (a server swapping databases never
// touches unmapped memory), for ~8 MB of heap.
type countryDB struct {
	r *maxminddb.Reader
	// cache maps a record's data offset to its country. Such a database has
	// a few hundred distinct records, so after a short warm-up every lookup
	// is a tree walk plus a map read, with no decoding and no allocation.
	// Copy on write: readers never lock.
	cache    atomic.Pointer[map[uintptr]string]
	mu       sync.Mutex
	networks int
}

// maxCountryCache bounds the offset cache for databases with many distinct
// records (a city database): beyond it records are decoded every time.
const maxCountryCache = 4096

func openCountry(path string) (*countryDB, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := maxminddb.OpenBytes(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := &countryDB{r: r}
	c.cache.Store(&map[uintptr]string{})
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// check walks the whole search tree, counting networks, and decodes every
// distinct record (up to the cache's size), filling the cache: a corrupt
// file, or one without countries, is an error at open rather than empty
// answers later. (Reader.Verify is stricter than the format and rejects the
// ip-location-db files for their empty description.)
func (c *countryDB) check() error {
	countries := 0
	for res := range c.r.Networks() {
		if err := res.Err(); err != nil {
			return err
		}
		c.networks++
		off := res.Offset()
		if cc, ok := (*c.cache.Load())[off]; ok {
			if cc != "" {
				countries++
			}
			continue
		}
		cc, err := c.decode(res, off)
		if err != nil {
			return err
		}
		if cc != "" {
			countries++
		}
	}
	if c.networks > 0 && countries == 0 {
		return errors.New("no record has a country (country_code or country.iso_code): not a country database")
	}
	return nil
}

func (c *countryDB) lookup(ip netip.Addr) string {
	res := c.r.Lookup(ip)
	if !res.Found() {
		return ""
	}
	off := res.Offset()
	if cc, ok := (*c.cache.Load())[off]; ok {
		return cc
	}
	cc, _ := c.decode(res, off)
	return cc
}

func (c *countryDB) decode(res maxminddb.Result, off uintptr) (string, error) {
	var rec struct {
		CountryCode string `maxminddb:"country_code"`
		Country     struct {
			ISOCode string `maxminddb:"iso_code"`
		} `maxminddb:"country"`
	}
	if err := res.Decode(&rec); err != nil {
		return "", err
	}
	cc := countryCode(rec.CountryCode)
	if cc == "" {
		cc = countryCode(rec.Country.ISOCode)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.cache.Load()
	if _, ok := old[off]; !ok && len(old) < maxCountryCache {
		m := make(map[uintptr]string, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[off] = cc
		c.cache.Store(&m)
	}
	return cc, nil
}

// countryCodes holds "AA" to "ZZ", so normalising a code never allocates
// and never keeps a reference into a database's memory.
var countryCodes = func() (t [26 * 26]string) {
	for i := range t {
		t[i] = string([]byte{'A' + byte(i/26), 'A' + byte(i%26)})
	}
	return
}()

// countryCode returns s as an upper-case ISO 3166-1 alpha-2 code, or "" if
// it is not two ASCII letters.
func countryCode(s string) string {
	if len(s) != 2 {
		return ""
	}
	a, b := s[0]|0x20, s[1]|0x20 // lower case
	if a < 'a' || a > 'z' || b < 'a' || b > 'z' {
		return ""
	}
	return countryCodes[int(a-'a')*26+int(b-'a')]
}
