// Package exposure scores how exposed one address is, from what scans
// recorded about its services, with the reasons shown beside the score.
//
// A score is a sum of parts. Each part is one fact about one service, with
// its points and why they count:
//
//   - port: the service is reachable from the Internet; points by its
//     protocol (by its well-known port when the protocol was not
//     identified);
//   - cve: the CVEs known for its product and version (by CVSS);
//   - kev: one of them is known exploited (CISA KEV);
//   - eol: its release is past the vendor's end of life;
//   - protection: a protection the record shows missing (cleartext
//     logins, an expired or self-signed certificate, RDP without NLA, SMB
//     signing not required, a database that answered without a password...).
//
// score = min(100, round(sum of the parts' points)), each part's points
// rounded to one decimal first, so the score can be redone by hand from
// the parts. The weights are data (data/weights.json); docs/exposure.md
// lists them, explains the formula and says what the score cannot see.
package exposure

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vantagehq/vantage/eol"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/vuln"
)

// Part kinds.
const (
	KindPort       = "port"
	KindCVE        = "cve"
	KindKEV        = "kev"
	KindEOL        = "eol"
	KindProtection = "protection"
)

// Result is a host's exposure score and how it was reached.
type Result struct {
	Score   int    `json:"score"`   // 0..100
	Level   string `json:"level"`   // none, low, medium, high, critical
	Formula string `json:"formula"` // one line, with this host's numbers
	Parts   []Part `json:"parts"`   // by points, highest first
}

// Part is one fact that adds to the score.
type Part struct {
	Kind      string  `json:"kind"` // port, cve, kev, eol, protection
	Port      uint16  `json:"port"`
	Transport string  `json:"transport"`
	Points    float64 `json:"points"` // rounded to one decimal
	What      string  `json:"what"`   // the fact, for this service
	Why       string  `json:"why"`    // why it counts
}

//go:embed data/weights.json
var weightsData []byte

type weight struct {
	Points float64 `json:"points"`
	Why    string  `json:"why"`
}

type level struct {
	Level string `json:"level"`
	Min   int    `json:"min"`
}

type cveWeights struct {
	PerCVSSPoint  float64 `json:"per_cvss_point"`
	PerFurtherCVE float64 `json:"per_further_cve"`
	FurtherCap    float64 `json:"further_cap"`
	ServiceCap    float64 `json:"service_cap"`
	Why           string  `json:"why"`
}

type weights struct {
	Comment     string            `json:"comment"`
	Levels      []level           `json:"levels"`
	Exposed     map[string]weight `json:"exposed"`
	Products    map[string]string `json:"products"`
	Ports       map[string]string `json:"ports"`
	CVE         cveWeights        `json:"cve"`
	KEV         weight            `json:"kev"`
	EOL         weight            `json:"eol"`
	Protections map[string]weight `json:"protections"`
}

// The protections the code checks; weights.json must give each one
// points and a reason, and no others.
var protectionKeys = []string{
	"telnet_cleartext", "ftp_no_tls", "http_auth_cleartext", "mail_no_starttls", "db_no_tls",
	"tls_expired", "tls_self_signed", "rdp_no_nla", "smb_signing_not_required", "smbv1",
	"redis_no_auth", "memcached_no_auth", "elasticsearch_no_auth", "vnc_no_auth",
	"postgres_trust", "imap_preauth", "mqtt_no_auth", "dns_open_resolver",
}

// exposed keys the code picks without weights.json naming them
var requiredExposed = []string{"http", "https", "tls", "unidentified"}

var w = mustWeights(weightsData)

func mustWeights(b []byte) *weights {
	w, err := loadWeights(bytes.NewReader(b))
	if err != nil {
		panic("exposure: built-in weights: " + err.Error())
	}
	return w
}

func loadWeights(r io.Reader) (*weights, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var w weights
	if err := dec.Decode(&w); err != nil {
		return nil, err
	}
	if len(w.Levels) == 0 || w.Levels[0].Min != 0 {
		return nil, errors.New("levels: the first must start at 0")
	}
	for i := 1; i < len(w.Levels); i++ {
		if w.Levels[i].Min <= w.Levels[i-1].Min || w.Levels[i].Min > 100 {
			return nil, fmt.Errorf("levels[%d] %q: min must rise, up to 100", i, w.Levels[i].Level)
		}
	}
	check := func(what string, x weight) error {
		if x.Points < 0 || x.Points > 100 || math.IsNaN(x.Points) {
			return fmt.Errorf("%s: points %v out of 0..100", what, x.Points)
		}
		if strings.TrimSpace(x.Why) == "" {
			return fmt.Errorf("%s: no why", what)
		}
		return nil
	}
	for k, x := range w.Exposed {
		if err := check("exposed "+k, x); err != nil {
			return nil, err
		}
	}
	for _, k := range requiredExposed {
		if _, ok := w.Exposed[k]; !ok {
			return nil, fmt.Errorf("exposed: %q missing", k)
		}
	}
	for p, k := range w.Products {
		if _, ok := w.Exposed[k]; !ok {
			return nil, fmt.Errorf("products %q: %q is not in exposed", p, k)
		}
	}
	for p, k := range w.Ports {
		if _, _, ok := parsePortKey(p); !ok {
			return nil, fmt.Errorf("ports %q: want port/transport, e.g. 23/tcp", p)
		}
		if _, ok := w.Exposed[k]; !ok {
			return nil, fmt.Errorf("ports %q: %q is not in exposed", p, k)
		}
	}
	for _, k := range protectionKeys {
		x, ok := w.Protections[k]
		if !ok {
			return nil, fmt.Errorf("protections: %q missing", k)
		}
		if err := check("protections "+k, x); err != nil {
			return nil, err
		}
	}
	for k := range w.Protections {
		if !slices.Contains(protectionKeys, k) {
			return nil, fmt.Errorf("protections: %q is not checked by the code", k)
		}
	}
	if err := check("kev", w.KEV); err != nil {
		return nil, err
	}
	if err := check("eol", w.EOL); err != nil {
		return nil, err
	}
	if c := w.CVE; c.PerCVSSPoint < 0 || c.PerFurtherCVE < 0 || c.FurtherCap < 0 || c.ServiceCap <= 0 || c.Why == "" {
		return nil, errors.New("cve: weights must be positive, with a why")
	}
	return &w, nil
}

func parsePortKey(s string) (uint16, string, bool) {
	p, t, ok := strings.Cut(s, "/")
	n, err := strconv.ParseUint(p, 10, 16)
	if !ok || err != nil || n == 0 || (t != "tcp" && t != "udp") {
		return 0, "", false
	}
	return uint16(n), t, true
}

// Score scores one host from its services. Services that are not open
// are skipped; when a port/transport was observed more than once, the
// newest observation counts. vulns (e.g. a vuln.DB's Match) and eolTable
// may be nil: their parts are then missing.
func Score(services []record.Service, vulns func(cpe string) []vuln.Vuln, eolTable *eol.Table, now time.Time) Result {
	var parts []Part
	for _, s := range latest(services) {
		parts = append(parts, serviceParts(s, vulns, eolTable, now)...)
	}
	slices.SortStableFunc(parts, func(a, b Part) int {
		switch {
		case a.Points != b.Points:
			if a.Points > b.Points {
				return -1
			}
			return 1
		case a.Port != b.Port:
			return int(a.Port) - int(b.Port)
		case a.Transport != b.Transport:
			return strings.Compare(a.Transport, b.Transport)
		case a.Kind != b.Kind:
			return strings.Compare(a.Kind, b.Kind)
		}
		return strings.Compare(a.What, b.What)
	})
	if parts == nil {
		parts = []Part{}
	}
	tenths := 0
	for _, p := range parts {
		tenths += int(math.Round(p.Points * 10))
	}
	sum := float64(tenths) / 10
	score := min(100, int(math.Round(sum)))
	lv, rng := levelOf(score)
	formula := fmt.Sprintf("score = min(100, round(sum of part points)) = min(100, round(%s)) = %d; %s is %s",
		strconv.FormatFloat(sum, 'f', -1, 64), score, lv, rng)
	return Result{Score: score, Level: lv, Formula: formula, Parts: parts}
}

// levelOf names the level of score and its range ("45-69").
func levelOf(score int) (string, string) {
	for i := len(w.Levels) - 1; i >= 0; i-- {
		if score >= w.Levels[i].Min {
			hi := 100
			if i+1 < len(w.Levels) {
				hi = w.Levels[i+1].Min - 1
			}
			if hi == w.Levels[i].Min {
				return w.Levels[i].Level, strconv.Itoa(hi)
			}
			return w.Levels[i].Level, fmt.Sprintf("%d-%d", w.Levels[i].Min, hi)
		}
	}
	return w.Levels[0].Level, "0"
}

// latest keeps the open services, the newest observation of each
// port/transport, ordered by port.
func latest(services []record.Service) []record.Service {
	type key struct {
		port uint16
		tr   string
	}
	idx := map[key]int{}
	var out []record.Service
	for _, s := range services {
		if s.State != "" && s.State != "open" {
			continue
		}
		tr := strings.ToLower(s.Transport)
		if tr == "" {
			tr = "tcp"
		}
		s.Transport = tr
		k := key{s.Port, tr}
		if i, ok := idx[k]; ok {
			if !s.Time.Before(out[i].Time) {
				out[i] = s
			}
			continue
		}
		idx[k] = len(out)
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(a, b record.Service) int {
		if a.Port != b.Port {
			return int(a.Port) - int(b.Port)
		}
		return strings.Compare(a.Transport, b.Transport)
	})
	return out
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// where names a service for What: "telnet on 23/tcp", "Apache httpd
// 2.4.49 (http) on 80/tcp".
func where(s record.Service) string {
	at := fmt.Sprintf("%d/%s", s.Port, s.Transport)
	name := s.Protocol
	if name == "http" && s.TLS != nil {
		name = "https"
	}
	prod := strings.TrimSpace(s.Product + " " + s.Version)
	switch {
	case prod != "" && name != "":
		return fmt.Sprintf("%s (%s) on %s", prod, name, at)
	case prod != "":
		return prod + " on " + at
	case name != "":
		return name + " on " + at
	}
	return at
}

func serviceParts(s record.Service, vulns func(string) []vuln.Vuln, tbl *eol.Table, now time.Time) []Part {
	var parts []Part
	add := func(kind string, points float64, what, why string) {
		parts = append(parts, Part{Kind: kind, Port: s.Port, Transport: s.Transport, Points: round1(points), What: what, Why: why})
	}
	at := fmt.Sprintf("%d/%s", s.Port, s.Transport)

	// reachable
	key := s.Protocol
	if k, ok := w.Products[s.Product]; ok {
		key = k
	} else if key == "http" && s.TLS != nil {
		key = "https"
	}
	if x, ok := w.Exposed[key]; ok && key != "unidentified" {
		add(KindPort, x.Points, where(s)+" is reachable", x.Why)
	} else if k, ok := w.Ports[at]; ok && (s.Protocol == "" || s.Protocol == "unknown") {
		x := w.Exposed[k]
		add(KindPort, x.Points, fmt.Sprintf("%s is open: %s's port, the service not identified", at, k), x.Why)
	} else {
		x := w.Exposed["unidentified"]
		what := at + " is open, the service not identified"
		if s.Protocol != "" && s.Protocol != "unknown" {
			what = fmt.Sprintf("%s is reachable (a protocol without its own weight)", where(s))
		}
		add(KindPort, x.Points, what, x.Why)
	}

	// CVEs, KEV
	if vulns != nil {
		from := map[string]string{} // CVE id to the CPE's product and version
		var vs []vuln.Vuln
		for _, c := range s.CPE {
			for _, v := range vulns(c) {
				if _, seen := from[v.ID]; !seen {
					from[v.ID] = cpeLabel(c)
					vs = append(vs, v)
				}
			}
		}
		if len(vs) > 0 {
			slices.SortStableFunc(vs, func(a, b vuln.Vuln) int {
				if a.Score != b.Score {
					if a.Score > b.Score {
						return -1
					}
					return 1
				}
				return strings.Compare(a.ID, b.ID)
			})
			c := w.CVE
			top := vs[0]
			further := min(c.FurtherCap, c.PerFurtherCVE*float64(len(vs)-1))
			pts := min(c.ServiceCap, c.PerCVSSPoint*top.Score+further)
			cvss := "no CVSS score"
			if top.Score > 0 || top.CVSS != "" {
				cvss = strings.TrimSpace(fmt.Sprintf("CVSS %s %.1f", top.CVSS, top.Score))
				if top.CVSS == "" {
					cvss = fmt.Sprintf("CVSS %.1f", top.Score)
				}
			}
			what := fmt.Sprintf("%s (%s, %s)", top.ID, from[top.ID], cvss)
			if n := len(vs) - 1; n == 1 {
				what += " and 1 more CVE"
			} else if n > 1 {
				what += fmt.Sprintf(" and %d more CVEs", n)
			}
			what += " on " + at
			why := fmt.Sprintf("%s; here %g × %.1f + min(%g, %g × %d) = %s",
				c.Why, c.PerCVSSPoint, top.Score, c.FurtherCap, c.PerFurtherCVE, len(vs)-1,
				strconv.FormatFloat(round1(c.PerCVSSPoint*top.Score+further), 'f', -1, 64))
			if pts < c.PerCVSSPoint*top.Score+further {
				why += fmt.Sprintf(", capped at %g", c.ServiceCap)
			}
			add(KindCVE, pts, what, why)
			var kev []string
			for _, v := range vs {
				if v.KEV {
					kev = append(kev, v.ID+" ("+from[v.ID]+")")
				}
			}
			if len(kev) > 0 {
				slices.Sort(kev)
				add(KindKEV, w.KEV.Points, fmt.Sprintf("%s known exploited, on %s", listIDs(kev, 3), at), w.KEV.Why)
			}
		}
	}

	// end of life
	if tbl != nil {
		seen := map[string]bool{}
		for _, c := range s.CPE {
			st, ok := tbl.Check(c, now)
			if !ok || !st.Ended || seen[st.Product+"\x00"+st.Cycle] {
				continue
			}
			seen[st.Product+"\x00"+st.Cycle] = true
			_, _, version, _ := eol.ParseCPE(c)
			what := fmt.Sprintf("%s %s (here %s) on %s reached end of life on %s",
				st.Product, st.Cycle, version, at, st.EOL.Format(time.DateOnly))
			add(KindEOL, w.EOL.Points, what, w.EOL.Why+" (source: "+st.Source+")")
		}
	}

	// missing protections
	for _, m := range missing(s, now) {
		x := w.Protections[m.key]
		add(KindProtection, x.Points, m.what, x.Why)
	}
	return parts
}

// cpeLabel names a CPE's product and version: "php:php 7.4.33".
func cpeLabel(cpe string) string {
	v, p, ver, ok := eol.ParseCPE(cpe)
	if !ok {
		return cpe
	}
	if ver == "" || ver == "*" || ver == "-" {
		return v + ":" + p
	}
	// the update field is part of the version (openssh 7.4 p1)
	if f := strings.Split(cpe, ":"); len(f) > 6 && strings.EqualFold(f[1], "2.3") && !strings.Contains(cpe, `\`) {
		if u := f[6]; u != "" && u != "*" && u != "-" {
			ver += u
		}
	}
	return v + ":" + p + " " + ver
}

// listIDs joins up to n ids, "and k more" after.
func listIDs(ids []string, n int) string {
	if len(ids) <= n {
		if len(ids) == 1 {
			return ids[0] + " is"
		}
		return strings.Join(ids, ", ") + " are"
	}
	return fmt.Sprintf("%s and %d more are", strings.Join(ids[:n], ", "), len(ids)-n)
}

type finding struct{ key, what string }

// tokens splits a capability or feature list ("A B", "A, B") into
// upper-cased words.
func tokens(s string) []string {
	f := strings.FieldsFunc(strings.ToUpper(s), func(r rune) bool { return r == ' ' || r == ',' || r == ';' })
	return f
}

func hasHeader(h *record.HTTP, name string) bool {
	if h == nil {
		return false
	}
	for _, x := range h.Headers {
		if strings.EqualFold(x.Name, name) {
			return true
		}
	}
	return false
}

// missing lists the protections s's record shows missing. Only facts the
// grabbers record count; see docs/exposure.md.
func missing(s record.Service, now time.Time) []finding {
	var out []finding
	d := s.Data
	at := fmt.Sprintf("%d/%s", s.Port, s.Transport)
	add := func(key, what string) { out = append(out, finding{key, what}) }

	switch s.Protocol {
	case "telnet":
		if s.TLS == nil {
			add("telnet_cleartext", "telnet on "+at+" without TLS")
		}
	case "ftp":
		if f := d["ftp.features"]; f != "" && s.TLS == nil &&
			!slices.ContainsFunc(strings.Split(f, ","), func(x string) bool {
				return strings.HasPrefix(strings.ToUpper(strings.TrimSpace(x)), "AUTH")
			}) {
			add("ftp_no_tls", "FTP on "+at+" lists its features (FEAT) without AUTH TLS")
		}
	case "http":
		if s.TLS == nil && hasHeader(s.HTTP, "WWW-Authenticate") {
			add("http_auth_cleartext", "HTTP on "+at+" asks for credentials (WWW-Authenticate) without TLS")
		}
	case "smtp":
		if e := d["smtp.ehlo"]; e != "" && s.TLS == nil && !slices.Contains(tokens(e), "STARTTLS") {
			add("mail_no_starttls", "SMTP on "+at+" answers EHLO without STARTTLS")
		}
	case "imap":
		if c := d["imap.capabilities"]; c != "" && s.TLS == nil && !slices.Contains(tokens(c), "STARTTLS") {
			add("mail_no_starttls", "IMAP on "+at+" lists its capabilities without STARTTLS")
		}
		if d["imap.preauth"] == "yes" {
			add("imap_preauth", "IMAP on "+at+" greets with PREAUTH")
		}
	case "pop3":
		if c := d["pop3.capabilities"]; c != "" && s.TLS == nil && !slices.Contains(tokens(c), "STLS") {
			add("mail_no_starttls", "POP3 on "+at+" lists its capabilities (CAPA) without STLS")
		}
	case "mysql":
		if d["mysql.ssl"] == "no" {
			add("db_no_tls", "MySQL protocol on "+at+" without the SSL capability")
		}
	case "postgres":
		if d["postgres.ssl"] == "N" {
			add("db_no_tls", "PostgreSQL on "+at+" refuses SSLRequest")
		}
		if d["postgres.auth"] == "trust" {
			add("postgres_trust", "PostgreSQL on "+at+" accepted a login without a password")
		}
	case "rdp":
		var weak []string
		for _, p := range strings.Split(d["rdp.protocols"], ",") {
			switch p {
			case "rdp":
				weak = append(weak, "standard RDP security")
			case "ssl":
				weak = append(weak, "TLS without CredSSP")
			}
		}
		if len(weak) > 0 {
			add("rdp_no_nla", "RDP on "+at+" accepts "+strings.Join(weak, " and "))
		}
	case "smb":
		if d["smb.version"] == "1" {
			add("smbv1", "SMB on "+at+" answers in SMBv1")
		}
		if sg := d["smb.signing"]; sg == "enabled" || sg == "disabled" {
			add("smb_signing_not_required", "SMB on "+at+": signing "+sg+", not required")
		}
	case "redis":
		if d["redis.auth"] == "" && d["redis.error"] == "" && (d["redis.version"] != "" || s.Version != "") {
			add("redis_no_auth", "Redis on "+at+" answered INFO without authentication")
		}
	case "memcached":
		if s.Version != "" && d["memcached.error"] == "" {
			add("memcached_no_auth", "memcached on "+at+" answered the text protocol's version command")
		}
	case "vnc":
		if slices.Contains(strings.Split(d["vnc.security"], ", "), "None") {
			add("vnc_no_auth", "VNC on "+at+" offers security type None")
		}
	case "mqtt":
		if d["mqtt.connack"] == "accepted" {
			add("mqtt_no_auth", "MQTT on "+at+" accepted a CONNECT without credentials")
		}
	case "dns":
		if d["dns.recursion"] == "yes" {
			add("dns_open_resolver", "DNS on "+at+" answered a recursive query")
		}
	}
	if s.Product == "Elasticsearch" && s.HTTP != nil && s.HTTP.Status == 200 && s.Version != "" {
		add("elasticsearch_no_auth", "Elasticsearch on "+at+" returned its version from / without credentials")
	}
	if t := s.TLS; t != nil {
		if !t.NotAfter.IsZero() && now.After(t.NotAfter) {
			add("tls_expired", fmt.Sprintf("the TLS certificate on %s expired on %s", at, t.NotAfter.UTC().Format(time.DateOnly)))
		}
		if t.Subject != "" && t.Subject == t.Issuer {
			add("tls_self_signed", fmt.Sprintf("the TLS certificate on %s is self-signed (%s)", at, clip(t.Subject, 80)))
		}
	}
	return out
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
