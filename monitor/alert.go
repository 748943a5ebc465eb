package monitor

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vantagehq/vantage/notify"
)

// Kinds of alerts.
const (
	NewService     = "new_service"     // a port or service exposed that was not before: a firewall rule that failed?
	ServiceGone    = "service_gone"    // no longer answers on consecutive rescans
	VersionChanged = "version_changed" // same product, another version
	ServiceChanged = "service_changed" // another protocol or product on the same port
	Vulnerable     = "vulnerable"      // the version has known CVEs
	EndOfLife      = "end_of_life"     // the version's release cycle is past its vendor's end of life
	CertExpiring   = "cert_expiring"   // the certificate expires soon, or has expired
	CertChanged    = "cert_changed"    // another certificate than at the previous rescan
	SeenScanning   = "seen_scanning"   // one of your addresses hit the sensors: compromised?
)

// Kinds lists every kind, for help texts and checks.
var Kinds = []string{NewService, ServiceGone, VersionChanged, ServiceChanged, Vulnerable, EndOfLife, CertExpiring, CertChanged, SeenScanning}

// Alert states.
const (
	Open  = "open"
	Acked = "acked"
)

// Alert is one thing a team should know, with the evidence.
type Alert struct {
	ID        string     `json:"id"`
	Watchlist string     `json:"watchlist"`
	Kind      string     `json:"kind"`
	Severity  string     `json:"severity"` // info, low, medium, high, critical
	Title     string     `json:"title"`
	IP        netip.Addr `json:"ip"`
	Port      uint16     `json:"port,omitempty"`
	Transport string     `json:"transport,omitempty"`
	Evidence  Evidence   `json:"evidence"`

	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Count     int       `json:"count"` // evaluations that found it (deduplicated into this alert)
	State     string    `json:"state"`
	AckedBy   string    `json:"acked_by,omitempty"`
	AckedAt   time.Time `json:"acked_at,omitzero"`
	Muted     bool      `json:"muted,omitempty"` // raised under a mute: stored, not sent

	Deliveries []notify.Result `json:"deliveries,omitempty"`
	key        string
}

// Evidence is what an alert rests on.
type Evidence struct {
	Job    string        `json:"job,omitempty"` // the rescan that found it
	Before *ServiceState `json:"before,omitempty"`
	After  *ServiceState `json:"after,omitempty"`
	CVEs   []CVE         `json:"cves,omitempty"`
	EOL    *EOLInfo      `json:"eol,omitempty"`
	// seen_scanning: what the sensors saw the address do
	Events  int64     `json:"events,omitempty"`
	Sensors int64     `json:"sensors,omitempty"`
	Ports   []uint16  `json:"ports,omitempty"`
	Tags    []string  `json:"tags,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Search  string    `json:"search,omitempty"` // a query that shows the records
}

// CVE is one vulnerability of a service.
type CVE struct {
	ID    string  `json:"id"`
	Score float64 `json:"score,omitempty"`
	KEV   bool    `json:"kev,omitempty"` // known exploited
}

// EOLInfo says which release cycle ended when.
type EOLInfo struct {
	Product string    `json:"product"`
	Cycle   string    `json:"cycle"`
	EOL     time.Time `json:"eol"`
	Source  string    `json:"source,omitempty"`
}

// alertID is the stable ID of a dedup key.
func alertID(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:10])
}

func newAlert(wl, kind, severity string, ip netip.Addr, port uint16, transport string, keyParts ...string) *Alert {
	key := strings.Join(append([]string{wl, kind, ip.String(), fmt.Sprint(port), transport}, keyParts...), "|")
	return &Alert{ID: alertID(key), key: key, Watchlist: wl, Kind: kind, Severity: severity, IP: ip, Port: port,
		Transport: transport, State: Open, Count: 1}
}

// Where is ip:port/transport, or the address alone.
func (a *Alert) Where() string {
	if a.Port == 0 {
		return a.IP.String()
	}
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(a.IP, a.Port), a.Transport)
}

// Mute silences alerts for one address (and one port, or all its ports)
// in one watchlist (or all of them), until a time or for good.
type Mute struct {
	ID        string     `json:"id"`
	Watchlist string     `json:"watchlist,omitempty"` // "" = every watchlist
	IP        netip.Addr `json:"ip"`
	Port      uint16     `json:"port,omitempty"` // 0 = every port
	Until     time.Time  `json:"until,omitzero"` // zero = until removed
	Reason    string     `json:"reason,omitempty"`
	By        string     `json:"by,omitempty"`
	Created   time.Time  `json:"created"`
}

func (m *Mute) covers(a *Alert, now time.Time) bool {
	return (m.Watchlist == "" || m.Watchlist == a.Watchlist) && m.IP == a.IP && (m.Port == 0 || m.Port == a.Port) &&
		(m.Until.IsZero() || now.Before(m.Until))
}

func muteID(wl string, ip netip.Addr, port uint16) string {
	return alertID("mute|" + wl + "|" + ip.String() + "|" + fmt.Sprint(port))
}

// severityRank orders severities, most urgent first.
func severityRank(s string) int {
	switch s {
	case "critical":
		return 0
	case "high":
		return 1
	case "medium":
		return 2
	case "low":
		return 3
	}
	return 4
}
