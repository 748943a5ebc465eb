// Package enrich tells the country, AS number and organisation of an IP
// address, from local files, fast: a local overrides file first (see
// ParseOverrides), then two CC-licensed databases from the ip-location-db
// project (https://github.com/sapics/ip-location-db):
//
//   - country: geo-whois-asn-country.mmdb from the npm package
//     @ip-location-db/geo-whois-asn-country-mmdb (CC0), IPv4 and IPv6;
//   - ASN and organisation: asn-ipv4-num.csv and asn-ipv6.csv from the npm
//     package @ip-location-db/asn (CC BY 4.0 by RouteViews, DB-IP and NRO:
//     show Attribution wherever the data is shown).
//
// scripts/geodata.sh fetches the versions pinned in geodata.lock into
// DATADIR/geo (Config.Dir); Config's explicit paths take newer files from
// elsewhere. A missing database is logged once and leaves its fields empty.
package enrich

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Attribution must be shown wherever enrichment data is shown (README, the
// UI's about page, exports): the ASN data is CC BY 4.0 and DB-IP asks for a
// link back. AttributionHTML is the same with links, for web pages.
const Attribution = "Country data: ip-location-db geo-whois-asn-country " +
	"(https://github.com/sapics/ip-location-db), CC0 1.0, built with data from the " +
	"NRO (https://www.nro.net/) under CC BY 4.0. " +
	"ASN and organisation data: ip-location-db asn, licensed under CC BY 4.0 " +
	"(https://creativecommons.org/licenses/by/4.0/) by RouteViews " +
	"(https://www.routeviews.org/routeviews/), DB-IP (https://db-ip.com/) and the NRO " +
	"(https://www.nro.net/), with modifications by ip-location-db. " +
	"IP Geolocation by DB-IP (https://db-ip.com/)."

// AttributionHTML is Attribution for a web page; it includes the link
// back to DB-IP that DB-IP's licence asks web applications to show.
const AttributionHTML = `Country data: <a href="https://github.com/sapics/ip-location-db">ip-location-db</a> ` +
	`geo-whois-asn-country, CC0 1.0, built with data from the <a href="https://www.nro.net/">NRO</a> ` +
	`under <a href="https://creativecommons.org/licenses/by/4.0/">CC BY 4.0</a>. ` +
	`ASN and organisation data: <a href="https://github.com/sapics/ip-location-db">ip-location-db</a> asn, ` +
	`licensed under <a href="https://creativecommons.org/licenses/by/4.0/">CC BY 4.0</a> by ` +
	`<a href="https://www.routeviews.org/routeviews/">RouteViews</a>, <a href="https://db-ip.com/">DB-IP</a> ` +
	`and the <a href="https://www.nro.net/">NRO</a>, with modifications by ip-location-db. ` +
	`<a href='https://db-ip.com'>IP Geolocation by DB-IP</a>`

// File names that scripts/geodata.sh writes into DATADIR/geo.
const (
	CountryFile  = "geo-whois-asn-country.mmdb"
	ASNv4File    = "asn-ipv4-num.csv"
	ASNv6File    = "asn-ipv6.csv"
	ManifestFile = "MANIFEST"
)

// Licences of the files above, for Sources.
const (
	countryLicense = "CC0-1.0 (ip-location-db; NRO data CC BY 4.0)"
	asnLicense     = "CC-BY-4.0 (RouteViews, DB-IP, NRO)"
)

// Info is what enrichment knows about one address.
type Info struct {
	Country string // ISO 3166-1 alpha-2, upper case; "" unknown
	ASN     uint32 // 0 unknown
	Org     string
	Label   string // from the overrides file only
}

// Config says where the files are.
type Config struct {
	Dir                string // directory with the files geodata.sh writes (DATADIR/geo); "" = none
	CountryMMDB        string // explicit path overrides Dir
	ASNv4CSV, ASNv6CSV string // rows start,end,asn,org; bounds as addresses or integers
	Overrides          string // overrides file, optional; when set it must exist
}

// Source describes one input of an Enricher.
type Source struct {
	Name    string    // "country", "asn-ipv4", "asn-ipv6" or "overrides"
	Path    string    // "" when neither Dir nor an explicit path named it
	Version string    // "package@version" from DATADIR/geo/MANIFEST when the file is the one it lists; "" unknown
	Built   time.Time // build time recorded in an MMDB file; zero otherwise
	Records int       // networks with a country, CSV rows, or override rules
	License string
	Missing bool // not there: its fields stay empty
}

// Enricher answers lookups from the loaded files. It is immutable after
// Open and safe for concurrent use.
type Enricher struct {
	ov      *Overrides
	country *countryDB
	asn     *asnDB
	sources []Source
	closed  atomic.Bool
}

// Open loads the files c names. A database that is not there is logged once
// as a warning and its fields stay empty; a file that is there but cannot
// be read or parsed, or a bad or missing overrides file, is an error.
// log may be nil (slog.Default).
func Open(c Config, log *slog.Logger) (*Enricher, error) {
	if log == nil {
		log = slog.Default()
	}
	pick := func(explicit, name string) string {
		if explicit != "" || c.Dir == "" {
			return explicit
		}
		return filepath.Join(c.Dir, name)
	}
	e := &Enricher{}
	var missing []string
	manifests := map[string]map[string]manifestEntry{}
	version := func(path string) string {
		dir := filepath.Dir(path)
		m, ok := manifests[dir]
		if !ok {
			m = readManifest(filepath.Join(dir, ManifestFile))
			manifests[dir] = m
		}
		ent, ok := m[filepath.Base(path)]
		if !ok {
			return ""
		}
		if st, err := os.Stat(path); err != nil || st.Size() != ent.size {
			return "" // not the file the manifest describes
		}
		return ent.pkg + "@" + ent.version
	}
	// present reports whether path names a file; a path that is not there is
	// recorded as missing, other errors are returned.
	present := func(src *Source) (bool, error) {
		if src.Path == "" {
			src.Missing = true
			return false, nil
		}
		_, err := os.Stat(src.Path)
		if errors.Is(err, fs.ErrNotExist) {
			src.Missing = true
			missing = append(missing, src.Path)
			return false, nil
		}
		return err == nil, err
	}

	// Overrides: the user's own file, so a wrong path is an error.
	if c.Overrides != "" {
		f, err := os.Open(c.Overrides)
		if err != nil {
			return nil, fmt.Errorf("enrich: overrides: %w", err)
		}
		e.ov, err = ParseOverrides(bufio.NewReader(f), c.Overrides)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("enrich: overrides: %w", err)
		}
	}

	// The country database loads beside the ASN files (about 0.1 s of the
	// 0.3-0.5 s a full load takes).
	cs := Source{Name: "country", Path: pick(c.CountryMMDB, CountryFile), License: countryLicense}
	ok, err := present(&cs)
	if err != nil {
		return nil, fmt.Errorf("enrich: country database: %w", err)
	}
	type countryResult struct {
		db  *countryDB
		err error
	}
	countryDone := make(chan countryResult, 1)
	if ok {
		go func() {
			db, err := openCountry(cs.Path)
			countryDone <- countryResult{db, err}
		}()
	} else {
		countryDone <- countryResult{}
	}
	waitCountry := func() error {
		r := <-countryDone
		if r.err != nil {
			return fmt.Errorf("enrich: country database: %w", r.err)
		}
		if db := r.db; db != nil {
			e.country = db
			cs.Version = version(cs.Path)
			cs.Built = time.Unix(int64(db.r.Metadata.BuildEpoch), 0).UTC()
			cs.Records = db.networks
		}
		return nil
	}

	l := newASNLoader()
	asnSources := []Source{
		{Name: "asn-ipv4", Path: pick(c.ASNv4CSV, ASNv4File), License: asnLicense},
		{Name: "asn-ipv6", Path: pick(c.ASNv6CSV, ASNv6File), License: asnLicense},
	}
	loaded := false
	for i := range asnSources {
		s := &asnSources[i]
		ok, err := present(s)
		if err == nil && ok {
			s.Records, err = l.loadFile(s.Path, i == 1)
		}
		if err != nil {
			waitCountry()
			return nil, fmt.Errorf("enrich: ASN database: %w", err)
		}
		if !ok {
			continue
		}
		s.Version = version(s.Path)
		loaded = true
	}
	if loaded {
		e.asn = l.db()
	}
	if err := waitCountry(); err != nil {
		return nil, err
	}

	e.sources = append(e.sources, cs)
	e.sources = append(e.sources, asnSources...)
	if c.Overrides != "" {
		e.sources = append(e.sources, Source{Name: "overrides", Path: c.Overrides, Records: e.ov.Len(), License: "local"})
	}

	switch {
	case len(missing) > 0:
		log.Warn("enrich: geolocation data missing, its fields stay empty; fetch it with scripts/geodata.sh DATADIR (files go to DATADIR/geo)",
			"missing", strings.Join(missing, ", "))
	case e.country == nil && e.asn == nil:
		log.Warn("enrich: no geolocation data configured: country, ASN and organisation come only from overrides")
	}
	for _, s := range e.sources {
		if !s.Missing && s.Path != "" {
			log.Debug("enrich: loaded", "source", s.Name, "path", s.Path, "version", s.Version, "records", s.Records)
		}
	}
	return e, nil
}

// Lookup returns what is known about ip: the overrides' fields first (most
// specific prefix), then the databases for the fields they leave empty. An
// organisation from the ASN database is used only when its AS number is the
// one returned. IPv4-mapped IPv6 addresses are looked up as IPv4. For
// special-purpose addresses that are not globally reachable (private,
// loopback, link-local, CGNAT, documentation, benchmarking, multicast,
// reserved) only the overrides answer: the databases' entries there are
// noise. Safe for concurrent use; it does not allocate.
func (e *Enricher) Lookup(ip netip.Addr) Info {
	if e == nil || !ip.IsValid() || e.closed.Load() {
		return Info{}
	}
	ip = ip.Unmap().WithZone("")
	info, _ := e.ov.Lookup(ip)
	if isSpecial(ip) {
		return info
	}
	if info.Country == "" && e.country != nil {
		info.Country = e.country.lookup(ip)
	}
	if (info.ASN == 0 || info.Org == "") && e.asn != nil {
		if asn, org, ok := e.asn.lookup(ip); ok && asn != 0 {
			if info.ASN == 0 {
				info.ASN = asn
			}
			if info.Org == "" && info.ASN == asn {
				info.Org = org
			}
		}
	}
	return info
}

// Close releases the data. Lookups that run during or after Close are
// safe: afterwards they return an empty Info.
func (e *Enricher) Close() error {
	if e == nil || e.closed.Swap(true) {
		return nil
	}
	// The databases are plain heap memory (not memory-mapped): dropping
	// them is left to the garbage collector once no lookup uses them.
	return nil
}

// Sources says what was loaded, in the order country, asn-ipv4, asn-ipv6,
// overrides (when configured).
func (e *Enricher) Sources() []Source {
	if e == nil {
		return nil
	}
	return append([]Source(nil), e.sources...)
}

// Overrides returns the overrides in use, nil when none.
func (e *Enricher) Overrides() *Overrides {
	if e == nil {
		return nil
	}
	return e.ov
}

type manifestEntry struct {
	pkg, version string
	size         int64
}

// readManifest reads the "file NAME PACKAGE VERSION sha256:HEX SIZE" lines
// of a MANIFEST written by scripts/geodata.sh; a missing or odd manifest
// just means unknown versions.
func readManifest(path string) map[string]manifestEntry {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	m := map[string]manifestEntry{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) != 6 || f[0] != "file" {
			continue
		}
		size, err := strconv.ParseInt(f[5], 10, 64)
		if err != nil {
			continue
		}
		m[f[1]] = manifestEntry{pkg: f[2], version: f[3], size: size}
	}
	return m
}
