// Package monitor is the defenders' side: watchlists name what a team
// owns (CIDRs, ASNs, organisations, certificate subjects and domains);
// the monitor rescans them on a schedule through the scanner workers (scan
// jobs on the bus, package job), compares each host with its previous
// state, and raises alerts with their evidence: a new port or service
// exposed, a service gone, a version or certificate changed, a vulnerable
// or end-of-life version, a certificate expiring, and one of the team's
// own addresses seen by the sensors scanning others. Alerts are
// deduplicated, can be acknowledged, muted per host and port, and are
// delivered by the notifiers (package notify): signed webhooks, e-mail and
// the log.
//
// All state lives on the bus: watchlists in the "watchlists" bucket,
// alerts in "alerts", and the monitor's memory (the last state of every
// watched host, schedules, mutes) in "monitor". Scheduled jobs have IDs
// derived from the watchlist and the period, and evaluations are claimed
// with compare-and-set, so several servers on one bus do the work once.
package monitor

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/eol"
	"github.com/vantagehq/vantage/job"
	"github.com/vantagehq/vantage/notify"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/target"
	"github.com/vantagehq/vantage/vuln"
)

// ErrNotFound is returned for an unknown watchlist, alert or mute.
var ErrNotFound = errors.New("not found")

// Config wires a monitor.
type Config struct {
	Bus   *bus.Bus
	Store store.Store
	Jobs  *job.Queue
	// Vulns gives the CVEs of a CPE with their scores and known-exploited
	// flags (nil: only the CVE ids stored with each service).
	Vulns func(cpe string) []vuln.Vuln
	EOL   *eol.Table // nil: no end-of-life alerts
	// ASNPrefixes lists an AS's IPv4 networks (enrich.Enricher.ASNPrefixes):
	// a watchlist's ASNs are rescanned whole, not only the hosts seen in
	// them. nil: only the hosts seen.
	ASNPrefixes func(asn uint32) []netip.Prefix
	// SMTP sends watchlists' e-mail (its To is set per watchlist); nil:
	// watchlists that name e-mail addresses get a warning in the log.
	SMTP      *notify.SMTP
	GoneAfter int           // rescans a service must miss to be gone (default 2)
	CertWarn  time.Duration // alert on certificates expiring within this (default 30 days)
	Tick      time.Duration // how often schedules and the sensors are checked (default 15 s)
	// IngestWait bounds the wait for a finished job's records to be stored
	// (default 2 minutes).
	IngestWait time.Duration
	PublicURL  string // the server's base URL, for links in alerts
	Log        *slog.Logger
	Now        func() time.Time
}

// Monitor runs watchlists.
type Monitor struct {
	cfg    Config
	lists  jetstream.KeyValue
	alerts jetstream.KeyValue
	state  jetstream.KeyValue
	log    *slog.Logger
	evalMu sync.Mutex // one evaluation at a time in this process
}

// New opens a monitor on the bus's buckets.
func New(ctx context.Context, cfg Config) (*Monitor, error) {
	if cfg.GoneAfter <= 0 {
		cfg.GoneAfter = 2
	}
	if cfg.CertWarn <= 0 {
		cfg.CertWarn = 30 * 24 * time.Hour
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 15 * time.Second
	}
	if cfg.IngestWait <= 0 {
		cfg.IngestWait = 2 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Monitor{cfg: cfg, log: cfg.Log.With("role", "monitor")}
	var err error
	for name, kv := range map[string]*jetstream.KeyValue{"watchlists": &m.lists, "alerts": &m.alerts, "monitor": &m.state} {
		if *kv, err = cfg.Bus.KV(ctx, name); err != nil {
			return nil, fmt.Errorf("monitor: bucket %s: %w", name, err)
		}
	}
	return m, nil
}

// RunState is what the monitor remembers of a watchlist's rescans.
type RunState struct {
	Baseline   time.Time `json:"baseline,omitzero"`     // when the first rescan was evaluated
	PendingJob string    `json:"pending_job,omitempty"` // submitted, not yet evaluated
	LastJob    string    `json:"last_job,omitempty"`    // last evaluated
	LastScan   time.Time `json:"last_scan,omitzero"`    // when the latest job was submitted
	LastEval   time.Time `json:"last_eval,omitzero"`
	Hosts      int       `json:"hosts"`
	Services   int       `json:"services"`
	Alerts     int       `json:"alerts_raised"`        // by the last evaluation
	SensorMark time.Time `json:"sensor_mark,omitzero"` // events before this were checked
	LastError  string    `json:"last_error,omitempty"`
}

// ---- watchlists

// Put creates or replaces a watchlist.
func (m *Monitor) Put(ctx context.Context, w Watchlist) (Watchlist, error) {
	if err := w.Normalize(); err != nil {
		return Watchlist{}, &InputError{err.Error()}
	}
	now := m.cfg.Now().UTC()
	w.Updated = now
	if old, err := m.Get(ctx, w.Name); err == nil {
		w.Created = old.Created
		// a secret given back as shown keeps the stored one
		for i := range w.Webhooks {
			if w.Webhooks[i].Secret == "(set)" {
				w.Webhooks[i].Secret = ""
				for _, o := range old.Webhooks {
					if o.URL == w.Webhooks[i].URL {
						w.Webhooks[i].Secret = o.Secret
					}
				}
			}
		}
	} else {
		w.Created = now
	}
	data, _ := json.Marshal(w)
	if _, err := m.lists.Put(ctx, w.Name, data); err != nil {
		return Watchlist{}, fmt.Errorf("save watchlist %s: %w", w.Name, err)
	}
	m.log.Info("watchlist saved", "name", w.Name, "cidrs", len(w.CIDRs), "asns", len(w.ASNs), "orgs", len(w.Orgs),
		"subjects", len(w.Subjects), "domains", len(w.Domains), "every", time.Duration(w.Every))
	return w, nil
}

// InputError is a request the monitor refuses.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Get is one watchlist.
func (m *Monitor) Get(ctx context.Context, name string) (Watchlist, error) {
	if !nameRE.MatchString(name) {
		return Watchlist{}, fmt.Errorf("watchlist %q: %w", name, ErrNotFound)
	}
	e, err := m.lists.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Watchlist{}, fmt.Errorf("watchlist %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Watchlist{}, fmt.Errorf("watchlist %s: %w", name, err)
	}
	var w Watchlist
	return w, json.Unmarshal(e.Value(), &w)
}

// List is every watchlist, by name.
func (m *Monitor) List(ctx context.Context) ([]Watchlist, error) {
	vals, err := values(ctx, m.lists, ">")
	if err != nil {
		return nil, fmt.Errorf("watchlists: %w", err)
	}
	var out []Watchlist
	for _, v := range vals {
		var w Watchlist
		if json.Unmarshal(v, &w) == nil {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b Watchlist) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete removes a watchlist and what the monitor remembers of it; its
// alerts stay.
func (m *Monitor) Delete(ctx context.Context, name string) error {
	if _, err := m.Get(ctx, name); err != nil {
		return err
	}
	if err := m.lists.Delete(ctx, name); err != nil {
		return fmt.Errorf("delete watchlist %s: %w", name, err)
	}
	hosts, _ := keys(ctx, m.state, "host."+name+".>")
	for _, k := range append(hosts, "run."+name) {
		m.state.Purge(ctx, k)
	}
	m.log.Info("watchlist deleted", "name", name)
	return nil
}

// State is what the monitor remembers of a watchlist's rescans.
func (m *Monitor) State(ctx context.Context, name string) (RunState, error) {
	rs, _, err := m.runState(ctx, name)
	return rs, err
}

func (m *Monitor) runState(ctx context.Context, name string) (RunState, uint64, error) {
	var rs RunState
	e, err := m.state.Get(ctx, "run."+name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rs, 0, nil
	}
	if err != nil {
		return rs, 0, fmt.Errorf("watchlist %s state: %w", name, err)
	}
	return rs, e.Revision(), json.Unmarshal(e.Value(), &rs)
}

// updateRun changes a watchlist's run state with compare-and-set; f
// returns false to change nothing. It reports whether it wrote.
func (m *Monitor) updateRun(ctx context.Context, name string, f func(*RunState) bool) (bool, error) {
	for range 10 {
		rs, rev, err := m.runState(ctx, name)
		if err != nil {
			return false, err
		}
		if !f(&rs) {
			return false, nil
		}
		data, _ := json.Marshal(rs)
		if rev == 0 {
			_, err = m.state.Create(ctx, "run."+name, data)
		} else {
			_, err = m.state.Update(ctx, "run."+name, data, rev)
		}
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !strings.Contains(err.Error(), "wrong last sequence") {
			return false, fmt.Errorf("watchlist %s state: %w", name, err)
		}
	}
	return false, fmt.Errorf("watchlist %s state: too many concurrent updates", name)
}

// ---- scans

// ScanNow submits a rescan of a watchlist now.
func (m *Monitor) ScanNow(ctx context.Context, name string) (job.Status, error) {
	w, err := m.Get(ctx, name)
	if err != nil {
		return job.Status{}, err
	}
	return m.submit(ctx, w, fmt.Sprintf("%s-now-%d", w.Name, m.cfg.Now().UnixMilli()), true)
}

// submit builds and queues a rescan job; force replaces a pending one.
func (m *Monitor) submit(ctx context.Context, w Watchlist, id string, force bool) (job.Status, error) {
	prev, err := m.hosts(ctx, w.Name)
	if err != nil {
		return job.Status{}, err
	}
	targets, ports, err := m.targets(ctx, w, prev)
	if err != nil {
		return job.Status{}, err
	}
	if len(targets) == 0 {
		return job.Status{}, &InputError{fmt.Sprintf("watchlist %s has nothing to scan yet: no IPv4 CIDR, and no host the platform has seen in its ASNs, organisations, certificate subjects or domains", w.Name)}
	}
	ok, err := m.updateRun(ctx, w.Name, func(rs *RunState) bool {
		if rs.PendingJob != "" && !force {
			return false
		}
		rs.PendingJob, rs.LastScan = id, m.cfg.Now().UTC()
		return true
	})
	if err != nil || !ok {
		return job.Status{}, err
	}
	s := job.Scan{ID: id, Origin: "monitor:" + w.Name, Targets: targets, Ports: ports, Rate: w.Rate, Grab: true}
	if _, err := m.cfg.Jobs.Submit(ctx, s); err != nil {
		return job.Status{}, err
	}
	m.log.Info("rescan queued", "watchlist", w.Name, "job", id, "targets", len(targets), "ports", ports)
	return m.cfg.Jobs.Get(ctx, id)
}

// targets are what a rescan scans: the IPv4 CIDRs, the hosts the store
// knows in the watchlist's ASNs, organisations and certificates, and every
// host found before; ports are the watchlist's and every port found before
// (a service is judged gone only on a port that was scanned).
func (m *Monitor) targets(ctx context.Context, w Watchlist, prev map[netip.Addr]*HostState) ([]string, string, error) {
	var rs []target.Range
	for _, p := range append(w.Prefixes(), m.asnPrefixes(w)...) {
		if p.Addr().Is4() {
			rs = append(rs, target.RangeOf(p))
		}
	}
	space := target.NewSet(rs...) // overlaps merged; lookups by binary search
	var targets []string
	for _, p := range space.Prefixes() {
		targets = append(targets, p.String())
	}
	inCIDR := space.ContainsAddr
	extra := map[netip.Addr]bool{}
	for a := range prev {
		if a.Is4() && !inCIDR(a) {
			extra[a] = true
		}
	}
	if q := selectQuery(w); q != "" {
		cursor := ""
		for len(extra) < 100_000 {
			res, err := m.cfg.Store.SearchServices(ctx, store.Search{Query: q, Now: m.cfg.Now(), Limit: 1000, Cursor: cursor})
			if err != nil {
				return nil, "", fmt.Errorf("watchlist %s: hosts of its ASNs, organisations and certificates: %w", w.Name, err)
			}
			for _, s := range res.Services {
				if s.IP.Is4() && !inCIDR(s.IP) {
					extra[s.IP] = true
				}
			}
			if res.Next == "" {
				break
			}
			cursor = res.Next
		}
	}
	addrs := make([]netip.Addr, 0, len(extra))
	for a := range extra {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		targets = append(targets, a.String())
	}
	ports := map[uint16]bool{}
	for _, h := range prev {
		for _, s := range h.Services {
			if s.Transport == "tcp" {
				ports[s.Port] = true
			}
		}
	}
	list := w.Ports
	var more []string
	for p := range ports {
		more = append(more, fmt.Sprint(p))
	}
	slices.Sort(more)
	if len(more) > 0 {
		list += "," + strings.Join(more, ",")
	}
	return targets, list, nil
}

// MaxASNAddresses bounds the addresses a watchlist's ASNs add to each
// rescan (a /12): an AS larger than what is left is not expanded, and is
// watched through the hosts seen in it, with a warning in the log.
const MaxASNAddresses = 1 << 20

// asnPrefixes are the networks of a watchlist's ASNs, as far as
// MaxASNAddresses allows.
func (m *Monitor) asnPrefixes(w Watchlist) []netip.Prefix {
	if m.cfg.ASNPrefixes == nil {
		return nil
	}
	var out []netip.Prefix
	total := uint64(0)
	for _, asn := range w.ASNs {
		ps := m.cfg.ASNPrefixes(asn)
		n := uint64(0)
		for _, p := range ps {
			if p.Addr().Is4() {
				n += uint64(1) << (32 - p.Bits())
			}
		}
		if total+n > MaxASNAddresses {
			m.log.Warn("an AS too large to rescan whole: watching the hosts seen in it", "watchlist", w.Name,
				"asn", asn, "addresses", n, "limit", MaxASNAddresses-total)
			continue
		}
		total += n
		out = append(out, ps...)
	}
	return out
}

// selectQuery finds the hosts of a watchlist's non-CIDR entries.
func selectQuery(w Watchlist) string {
	var or []string
	for _, a := range w.ASNs {
		or = append(or, fmt.Sprintf("asn:%d", a))
	}
	for _, o := range w.Orgs {
		or = append(or, fmt.Sprintf("org:%q", o))
	}
	for _, s := range w.Subjects {
		or = append(or, fmt.Sprintf("tls.subject:%q", s))
	}
	for _, d := range w.Domains {
		or = append(or, fmt.Sprintf("tls.san:%q", d), fmt.Sprintf("tls.san:%q", "*."+d))
	}
	return strings.Join(or, " OR ")
}

// ---- host state

func ipKey(a netip.Addr) string { return hex.EncodeToString(a.AsSlice()) }

func (m *Monitor) hosts(ctx context.Context, name string) (map[netip.Addr]*HostState, error) {
	vals, err := values(ctx, m.state, "host."+name+".>")
	if err != nil {
		return nil, fmt.Errorf("watchlist %s hosts: %w", name, err)
	}
	out := map[netip.Addr]*HostState{}
	for _, v := range vals {
		var h HostState
		if json.Unmarshal(v, &h) == nil && h.IP.IsValid() {
			out[h.IP] = &h
		}
	}
	return out, nil
}

// Hosts is the last known state of a watchlist's hosts.
func (m *Monitor) Hosts(ctx context.Context, name string) ([]HostState, error) {
	if _, err := m.Get(ctx, name); err != nil {
		return nil, err
	}
	hs, err := m.hosts(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make([]HostState, 0, len(hs))
	for _, h := range hs {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b HostState) int { return a.IP.Compare(b.IP) })
	return out, nil
}

// values reads the current values of a bucket's keys matching filter.
func values(ctx context.Context, kv jetstream.KeyValue, filter string) (map[string][]byte, error) {
	w, err := kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	out := map[string][]byte{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return out, nil
			}
			if e == nil {
				return out, nil // the initial values are all here
			}
			out[e.Key()] = e.Value()
		}
	}
}

func keys(ctx context.Context, kv jetstream.KeyValue, filter string) ([]string, error) {
	l, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for k := range l.Keys() {
		out = append(out, k)
	}
	return out, nil
}

// EOL is the end-of-life table in use (nil: none).
func (m *Monitor) EOL() *eol.Table { return m.cfg.EOL }

// Job is a scan job's status.
func (m *Monitor) Job(ctx context.Context, id string) (job.Status, error) {
	st, err := m.cfg.Jobs.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return st, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return st, err
}

// View is a watchlist as the API shows it: secrets hidden, with what the
// monitor knows of its rescans.
type View struct {
	Watchlist
	State RunState `json:"state"`
}
