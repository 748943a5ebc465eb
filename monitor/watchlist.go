package monitor

import (
	"errors"
	"fmt"
	"math/big"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vantagehq/vantage/target"
)

// Watchlist names what a team owns and how it wants to hear about it.
type Watchlist struct {
	Name string `json:"name"`
	// What is watched. CIDRs are rescanned on the schedule, and so are
	// the ASNs' networks when the server has the ASN data (up to
	// MaxASNAddresses in all); ASNs, organisations, certificate subjects
	// and certificate domains also select the hosts the platform has seen
	// in them (their addresses join each rescan), and the sensors watch
	// the CIDRs and ASNs for addresses scanning others.
	CIDRs    []string `json:"cidrs,omitempty"`
	ASNs     []uint32 `json:"asns,omitempty"`
	Orgs     []string `json:"orgs,omitempty"`
	Subjects []string `json:"cert_subjects,omitempty"` // matched in TLS subjects, as the query's tls.subject
	Domains  []string `json:"domains,omitempty"`       // example.com matches example.com and *.example.com in SANs

	Ports string   `json:"ports,omitempty"` // scanned on every rescan (default DefaultPorts), besides the ports found before
	Every Duration `json:"every,omitempty"` // between rescans (default 24h; 0 in a request means the default)
	Rate  int      `json:"rate,omitempty"`  // probes/s of the rescans (default 1000)

	Webhooks []Webhook `json:"webhooks,omitempty"`
	Emails   []string  `json:"emails,omitempty"` // sent through the server's SMTP settings

	Owner   string    `json:"owner,omitempty"` // the key that made it
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Webhook is where a watchlist's alerts are POSTed, signed with Secret.
type Webhook struct {
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"`
}

// DefaultPorts are rescanned when a watchlist names none: the ports most
// often found open, and those whose exposure is most often a mistake.
const DefaultPorts = "21-23,25,53,80,81,110,111,135,139,143,161,389,443,445,465,587,636,873,993,995," +
	"1080,1433,1521,1723,1883,2049,2181,2375,2376,3000,3128,3306,3389,4443,5000,5432,5601,5672,5900,5984,5985,5986," +
	"6379,6443,7001,8000,8008,8080,8081,8088,8443,8888,9000,9042,9090,9092,9200,9443,10250,11211,15672,27017"

// Limits of a watchlist.
const (
	DefaultEvery = 24 * time.Hour
	MinEvery     = time.Minute
	DefaultRate  = 1000
	maxItems     = 1000    // entries per list
	maxAddresses = 1 << 24 // addresses in CIDRs
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Duration is a time.Duration that reads and writes as "24h".
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Normalize checks a watchlist and fills its defaults. Errors name the
// entry at fault.
func (w *Watchlist) Normalize() error {
	if !nameRE.MatchString(w.Name) {
		return fmt.Errorf("name %q: want 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit", w.Name)
	}
	if len(w.CIDRs)+len(w.ASNs)+len(w.Orgs)+len(w.Subjects)+len(w.Domains) == 0 {
		return errors.New("a watchlist needs at least one CIDR, ASN, organisation, certificate subject or domain")
	}
	for _, l := range [][]string{w.CIDRs, w.Orgs, w.Subjects, w.Domains, w.Emails} {
		if len(l) > maxItems {
			return fmt.Errorf("at most %d entries per list", maxItems)
		}
	}
	total := new(big.Int)
	for i, c := range w.CIDRs {
		p, err := parsePrefix(c)
		if err != nil {
			return fmt.Errorf("cidr %q: %w", c, err)
		}
		w.CIDRs[i] = p.String()
		total.Add(total, new(big.Int).Lsh(big.NewInt(1), uint(p.Addr().BitLen()-p.Bits())))
	}
	if total.Cmp(big.NewInt(maxAddresses)) > 0 {
		return fmt.Errorf("the CIDRs hold %s addresses; a watchlist rescans at most %d (a /8)", total, maxAddresses)
	}
	w.CIDRs = uniq(w.CIDRs)
	slices.Sort(w.ASNs)
	w.ASNs = slices.Compact(w.ASNs)
	for _, l := range []*[]string{&w.Orgs, &w.Subjects} {
		for i, v := range *l {
			v = strings.TrimSpace(v)
			if v == "" || len(v) > 256 || strings.ContainsAny(v, "\"\\\r\n") {
				return fmt.Errorf("%q: want 1-256 characters without quotes, backslashes or line breaks", v)
			}
			(*l)[i] = v
		}
		*l = uniq(*l)
	}
	for i, d := range w.Domains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(d), "*."), "."))
		if !domainRE.MatchString(d) {
			return fmt.Errorf("domain %q: want a DNS name such as example.com", w.Domains[i])
		}
		w.Domains[i] = d
	}
	w.Domains = uniq(w.Domains)
	if w.Ports == "" {
		w.Ports = DefaultPorts
	}
	if _, err := target.ParsePorts(w.Ports); err != nil {
		return fmt.Errorf("ports %q: %w", w.Ports, err)
	}
	if w.Every == 0 {
		w.Every = Duration(DefaultEvery)
	}
	if time.Duration(w.Every) < MinEvery {
		return fmt.Errorf("every %s: at least %s between rescans", time.Duration(w.Every), MinEvery)
	}
	if w.Rate == 0 {
		w.Rate = DefaultRate
	}
	if w.Rate < 0 {
		return fmt.Errorf("rate %d: must be positive", w.Rate)
	}
	for _, h := range w.Webhooks {
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("webhook %q: want an http or https URL", h.URL)
		}
	}
	for _, e := range w.Emails {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			return fmt.Errorf("e-mail %q: want a plain address such as soc@example.com", e)
		}
	}
	return nil
}

var domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{1,63}$`)

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

func uniq(l []string) []string {
	slices.Sort(l)
	return slices.Compact(l)
}

// Prefixes are the watchlist's CIDRs, parsed.
func (w *Watchlist) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, c := range w.CIDRs {
		if p, err := parsePrefix(c); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Public is the watchlist as shown to API clients: webhook secrets are
// never given back.
func (w Watchlist) Public() Watchlist {
	w.Webhooks = slices.Clone(w.Webhooks)
	for i := range w.Webhooks {
		if w.Webhooks[i].Secret != "" {
			w.Webhooks[i].Secret = "(set)"
		}
	}
	return w
}
