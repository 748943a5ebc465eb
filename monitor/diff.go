package monitor

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vantagehq/vantage/record"
)

// ServiceState is what the monitor remembers of one service between
// rescans: what the diff compares.
type ServiceState struct {
	Port         uint16    `json:"port"`
	Transport    string    `json:"transport"`
	Protocol     string    `json:"protocol,omitempty"`
	Product      string    `json:"product,omitempty"`
	Version      string    `json:"version,omitempty"`
	CPE          []string  `json:"cpe,omitempty"`
	CertSHA256   string    `json:"cert_sha256,omitempty"`
	CertSubject  string    `json:"cert_subject,omitempty"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	Vulns        []string  `json:"vulns,omitempty"`
	LastSeen     time.Time `json:"last_seen"`
	ScanID       string    `json:"scan_id,omitempty"`
	// Missed counts the rescans in a row that did not find it.
	Missed int `json:"missed,omitempty"`
}

// HostState is the services of one watched address.
type HostState struct {
	IP       netip.Addr     `json:"ip"`
	Services []ServiceState `json:"services"`
}

// stateOf keeps the compared fields of a stored service.
func stateOf(s *record.Service, seen time.Time) ServiceState {
	st := ServiceState{Port: s.Port, Transport: s.Transport, Protocol: s.Protocol, Product: s.Product, Version: s.Version,
		CPE: s.CPE, Vulns: s.Vulns, LastSeen: seen.UTC(), ScanID: s.ScanID}
	if s.TLS != nil {
		st.CertSHA256, st.CertSubject, st.CertNotAfter = s.TLS.SHA256, s.TLS.Subject, s.TLS.NotAfter.UTC()
	}
	return st
}

func (s *ServiceState) key() string { return fmt.Sprintf("%d/%s", s.Port, s.Transport) }

// What names the service in one phrase: "http (nginx 1.22.1)".
func (s *ServiceState) What() string {
	p := s.Protocol
	if p == "" {
		p = "unidentified"
	}
	if s.Product == "" {
		return p
	}
	return fmt.Sprintf("%s (%s)", p, strings.TrimSpace(s.Product+" "+s.Version))
}

// Change is one difference between two rescans of a host.
type Change struct {
	Kind          string
	IP            netip.Addr
	Before, After *ServiceState
}

// Diff compares what a rescan found (cur, by address; every address the
// rescan covered that has services) with the previous state. A service
// missing from cur is gone once it has been missing goneAfter rescans in a
// row (a lost packet does not raise an alert); until then it is kept with
// Missed counted. Hosts are compared only where prev or cur has them; a
// host in prev that the rescan covered but found nothing on must be in cur
// with no services. It returns the changes and the next state.
func Diff(prev, cur map[netip.Addr]*HostState, goneAfter int) (changes []Change, next map[netip.Addr]*HostState) {
	if goneAfter < 1 {
		goneAfter = 1
	}
	next = map[netip.Addr]*HostState{}
	addrs := make([]netip.Addr, 0, len(prev)+len(cur))
	for a := range prev {
		addrs = append(addrs, a)
	}
	for a := range cur {
		if _, ok := prev[a]; !ok {
			addrs = append(addrs, a)
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		before := map[string]*ServiceState{}
		if h := prev[a]; h != nil {
			for i := range h.Services {
				before[h.Services[i].key()] = &h.Services[i]
			}
		}
		after := map[string]*ServiceState{}
		if h := cur[a]; h != nil {
			for i := range h.Services {
				after[h.Services[i].key()] = &h.Services[i]
			}
		}
		var kept []ServiceState
		for k, b := range before {
			if n := after[k]; n != nil {
				kept = append(kept, merged(b, n))
				if c, ok := compare(a, b, n); ok {
					changes = append(changes, c)
				}
				if b.CertSHA256 != "" && n.CertSHA256 != "" && b.CertSHA256 != n.CertSHA256 {
					changes = append(changes, Change{Kind: CertChanged, IP: a, Before: b, After: n})
				}
				continue
			}
			m := *b
			m.Missed++
			if m.Missed >= goneAfter {
				changes = append(changes, Change{Kind: ServiceGone, IP: a, Before: b})
				continue
			}
			kept = append(kept, m)
		}
		for k, n := range after {
			if before[k] == nil {
				kept = append(kept, *n)
				changes = append(changes, Change{Kind: NewService, IP: a, After: n})
			}
		}
		if len(kept) > 0 {
			slices.SortFunc(kept, func(x, y ServiceState) int {
				return cmp.Or(cmp.Compare(x.Port, y.Port), cmp.Compare(x.Transport, y.Transport))
			})
			next[a] = &HostState{IP: a, Services: kept}
		}
	}
	slices.SortStableFunc(changes, func(x, y Change) int {
		return cmp.Or(x.IP.Compare(y.IP), cmp.Compare(port(x), port(y)), cmp.Compare(x.Kind, y.Kind))
	})
	return changes, next
}

func port(c Change) uint16 {
	if c.After != nil {
		return c.After.Port
	}
	return c.Before.Port
}

// compare says how a service seen on both rescans changed, if it did.
// What a grab did not learn this time (an empty product or version) is
// not a change: a timeout is not an upgrade.
func compare(a netip.Addr, b, n *ServiceState) (Change, bool) {
	switch {
	case n.Protocol != "" && b.Protocol != "" && n.Protocol != b.Protocol,
		n.Product != "" && b.Product != "" && !strings.EqualFold(n.Product, b.Product):
		return Change{Kind: ServiceChanged, IP: a, Before: b, After: n}, true
	case n.Version != "" && b.Version != "" && n.Version != b.Version:
		return Change{Kind: VersionChanged, IP: a, Before: b, After: n}, true
	}
	return Change{}, false
}

// merged is the state after a rescan: what it found, and what it could not
// learn this time kept from before.
func merged(b, n *ServiceState) ServiceState {
	m := *n
	if m.Protocol == "" && m.Product == "" {
		m.Protocol, m.Product, m.Version, m.CPE, m.Vulns = b.Protocol, b.Product, b.Version, b.CPE, b.Vulns
	} else if m.Version == "" && strings.EqualFold(m.Product, b.Product) {
		m.Version, m.CPE, m.Vulns = b.Version, b.CPE, b.Vulns
	}
	if m.CertSHA256 == "" {
		m.CertSHA256, m.CertSubject, m.CertNotAfter = b.CertSHA256, b.CertSubject, b.CertNotAfter
	}
	return m
}
