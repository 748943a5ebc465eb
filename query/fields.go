package query

import (
	"fmt"
	"sort"
	"strings"
)

// Target is what a query searches: a table with its own fields.
type Target uint8

const (
	Services Target = iota // table services: one observation of ip, port, transport
	Events                 // table events: one thing that reached a sensor
)

// String returns "services" or "events" (also the table name).
func (t Target) String() string {
	switch t {
	case Services:
		return "services"
	case Events:
		return "events"
	}
	return fmt.Sprintf("Target(%d)", uint8(t))
}

// Table is the SQL table the target's fields live in.
func (t Target) Table() string { return t.String() }

// ParseTarget accepts "services" or "events" (and the singulars).
func ParseTarget(s string) (Target, error) {
	switch strings.ToLower(s) {
	case "services", "service":
		return Services, nil
	case "events", "event":
		return Events, nil
	}
	return 0, fmt.Errorf("unknown search target %q (services or events)", s)
}

// Kind says what values a field takes and how they match.
type Kind uint8

const (
	KindString  Kind = iota // a keyword: exact match (some fields ignore case); * and ? patterns
	KindText                // text: case-insensitive substring; with * or ?, a whole-value pattern
	KindBlob                // text projection of raw bytes (banner, payload): like KindText, not facetable
	KindInt                 // integer: lists, comparisons, ranges
	KindVersion             // software version: ordered component-wise (see VersionKey)
	KindIP                  // IP address or CIDR prefix, IPv4 or IPv6
	KindTime                // timestamp: windows (1h), dates, comparisons, ranges
	KindList                // list of strings: matches if an element matches
	KindBool                // true or false
	KindHas                 // has:KEY shortcuts
)

var kindNames = [...]string{"string", "text", "blob-text", "int", "version", "ip", "time", "list", "bool", "has"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind?"
}

// Syntax summarises the values a field of this kind takes, for help text.
func (k Kind) Syntax() string {
	switch k {
	case KindString:
		return "exact value; lists a,b; wildcards * and ? (open*)"
	case KindText, KindBlob:
		return `case-insensitive substring (word or "quoted phrase"); with * or ? a pattern over the whole value`
	case KindInt:
		return "number; lists 80,443; comparisons >1024 <=100; ranges [1000 TO 2000]"
	case KindVersion:
		return "exact 8.0; prefix 8.*; comparisons <8.0 >=7.4p1; ranges [7.0 TO 8.9], in version order"
	case KindIP:
		return "address 203.0.113.7 or 2001:db8::1; CIDR 203.0.113.0/24; IPv4 pattern 203.0.113.*"
	case KindTime:
		return "window 15m 1h 7d (within that long); date 2026-11-01 (that day); RFC 3339 time; comparisons; ranges"
	case KindList:
		return "an element equals the value; with * or ? an element matches the pattern"
	case KindBool:
		return "true or false"
	case KindHas:
		return "has:KEY"
	}
	return ""
}

type timeMode uint8

const (
	tmNone   timeMode = iota
	tmPast            // last_seen: a duration is an age (last_seen:1h = within the last hour)
	tmFuture          // tls.not_after: a duration is time from now (tls.not_after:30d = within 30 days)
	tmAfter           // after:X  = column >= X
	tmBefore          // before:X = column < X
)

// hasKey is one has:KEY shortcut.
type hasKey struct {
	key, desc string
	pred      func(Dialect) string
}

// Field is a searchable field of a target.
type Field struct {
	Name    string   // canonical name, e.g. "http.title"
	Aliases []string // other names users may type, e.g. "tags" for "tag"
	Kind    Kind
	Columns []string // SQL columns: one; for KindIP hi and lo; for KindVersion version and version_key
	Desc    string   // one line for help
	Example string   // a query using the field
	Facet   bool     // ParseFacets accepts it

	min, max int64               // KindInt bounds
	asn      bool                // KindInt: accepts an "AS" prefix
	norm     func(string) string // KindString, KindList: the case stored values have
	fold     bool                // KindString: equality ignores case
	lowered  bool                // KindText, KindBlob: the column is stored lower-case
	tmode    timeMode            // KindTime
	check    func(string) string // KindString: extra validation; returns a message or ""
	has      []hasKey            // KindHas
}

// ordered reports whether the field takes comparisons and ranges.
func (f *Field) ordered() bool {
	switch f.Kind {
	case KindInt, KindVersion:
		return true
	case KindTime:
		return f.tmode == tmPast || f.tmode == tmFuture
	}
	return false
}

// HasKeys lists the keys of a KindHas field with what each tests.
func (f *Field) HasKeys() [][2]string {
	var out [][2]string
	for _, h := range f.has {
		out = append(out, [2]string{h.key, h.desc})
	}
	return out
}

func upper(s string) string { return strings.ToUpper(s) }
func lower(s string) string { return strings.ToLower(s) }

func checkCountry(s string) string {
	if len(s) == 2 && isLetter(s[0]) && isLetter(s[1]) {
		return ""
	}
	return "must be a two-letter ISO 3166 country code like DE"
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func checkClassification(s string) string {
	switch strings.ToLower(s) {
	case "benign", "malicious", "unknown":
		return ""
	}
	return "must be benign, malicious or unknown"
}

func notEmpty(col string) func(Dialect) string {
	return func(Dialect) string { return "(" + col + " IS NOT NULL AND " + col + " <> '')" }
}

const (
	maxU16 = 1<<16 - 1
	maxU32 = 1<<32 - 1
)

var serviceFields = []Field{
	{Name: "ip", Aliases: []string{"net"}, Kind: KindIP, Columns: []string{"ip_hi", "ip_lo"},
		Desc: "address of the service; a CIDR prefix matches the network", Example: "net:203.0.113.0/24"},
	{Name: "port", Kind: KindInt, Columns: []string{"port"}, min: 0, max: maxU16, Facet: true,
		Desc: "port number", Example: "port:22,2222"},
	{Name: "transport", Kind: KindString, Columns: []string{"transport"}, norm: lower, Facet: true,
		Desc: "tcp or udp", Example: "transport:udp"},
	{Name: "state", Kind: KindString, Columns: []string{"state"}, norm: lower, Facet: true,
		Desc: "port state, e.g. open", Example: "state:open"},
	{Name: "protocol", Kind: KindString, Columns: []string{"protocol"}, norm: lower, Facet: true,
		Desc: "application protocol identified, e.g. http, ssh, tls", Example: "protocol:ssh -port:22"},
	{Name: "product", Kind: KindString, Columns: []string{"product"}, fold: true, Facet: true,
		Desc: "software product (case-insensitive)", Example: "product:openssh"},
	{Name: "version", Kind: KindVersion, Columns: []string{"version", "version_key"}, Facet: true,
		Desc: "product version, compared in version order", Example: "product:openssh version:<8.0"},
	{Name: "cpe", Kind: KindList, Columns: []string{"cpe"}, norm: lower, Facet: true,
		Desc: "CPE 2.3 names of the software", Example: "cpe:cpe:2.3:a:openbsd:openssh:*"},
	{Name: "banner", Kind: KindBlob, Columns: []string{"banner_text"}, lowered: true,
		Desc: "banner text (free text without a field searches it too)", Example: `banner:"220 ProFTPD"`},
	{Name: "http.status", Kind: KindInt, Columns: []string{"http_status"}, min: 0, max: 999, Facet: true,
		Desc: "HTTP status code", Example: "http.status:[500 TO 599]"},
	{Name: "http.title", Kind: KindText, Columns: []string{"http_title"}, Facet: true,
		Desc: "HTML title", Example: `http.title:"Welcome to nginx"`},
	{Name: "http.server", Kind: KindText, Columns: []string{"http_server"}, Facet: true,
		Desc: "HTTP Server header", Example: "http.server:*nginx*"},
	{Name: "http.favicon", Kind: KindInt, Columns: []string{"http_favicon"}, min: -1 << 31, max: 1<<31 - 1, Facet: true,
		Desc: "favicon hash (signed 32-bit MurmurHash3 of the base64 icon, as Shodan)", Example: "http.favicon:-1292923998"},
	{Name: "tls.subject", Kind: KindText, Columns: []string{"tls_subject"}, Facet: true,
		Desc: "certificate subject", Example: "tls.subject:example.com"},
	{Name: "tls.issuer", Kind: KindText, Columns: []string{"tls_issuer"}, Facet: true,
		Desc: "certificate issuer", Example: `tls.issuer:"Let's Encrypt"`},
	{Name: "tls.san", Kind: KindList, Columns: []string{"tls_san"}, norm: lower, Facet: true,
		Desc: "certificate subject alternative names (lower case)", Example: "tls.san:*.example.com"},
	{Name: "tls.sha256", Kind: KindString, Columns: []string{"tls_sha256"}, norm: lower, Facet: true,
		Desc: "SHA-256 fingerprint of the certificate (hex)", Example: "tls.sha256:3f0a*"},
	{Name: "tls.ja3s", Kind: KindString, Columns: []string{"tls_ja3s"}, norm: lower, Facet: true,
		Desc: "JA3S fingerprint of the server hello", Example: "tls.ja3s:ec74a5c51106f0419184d0dd08fb05bc"},
	{Name: "tls.not_after", Kind: KindTime, Columns: []string{"tls_not_after"}, tmode: tmFuture,
		Desc: "certificate expiry; a duration counts from now (30d: expires within 30 days)", Example: "tls.not_after:<2026-12-31"},
	{Name: "ssh.hassh", Kind: KindString, Columns: []string{"ssh_hassh"}, norm: lower, Facet: true,
		Desc: "HASSH fingerprint of the SSH server", Example: "ssh.hassh:b12d2871a1189eff20364cf5333619ee"},
	{Name: "ssh.hostkey", Kind: KindString, Columns: []string{"ssh_hostkey"}, Facet: true,
		Desc: "SSH host key fingerprint (exact, case-sensitive)", Example: `ssh.hostkey:"SHA256:..."`},
	{Name: "country", Kind: KindString, Columns: []string{"country"}, norm: upper, check: checkCountry, Facet: true,
		Desc: "ISO 3166 country code of the address", Example: "country:DE,FR"},
	{Name: "asn", Kind: KindInt, Columns: []string{"asn"}, min: 0, max: maxU32, asn: true, Facet: true,
		Desc: "autonomous system number (AS13335 or 13335)", Example: "asn:AS13335"},
	{Name: "org", Kind: KindText, Columns: []string{"org"}, Facet: true,
		Desc: "organisation owning the address", Example: `org:"Hetzner Online"`},
	{Name: "tag", Aliases: []string{"tags"}, Kind: KindList, Columns: []string{"tags"}, norm: upper, Facet: true,
		Desc: "tags (upper case); KEV marks a known-exploited CVE (CISA catalog)", Example: "tag:KEV"},
	{Name: "vuln", Aliases: []string{"vulns"}, Kind: KindList, Columns: []string{"vulns"}, norm: upper, Facet: true,
		Desc: "CVE identifiers (from CPEs)", Example: "vuln:CVE-2024-6387"},
	{Name: "last_seen", Kind: KindTime, Columns: []string{"last_seen"}, tmode: tmPast,
		Desc: "time of the observation; a duration is an age (1h: seen within the last hour)", Example: "last_seen:7d"},
	{Name: "first_seen", Kind: KindTime, Columns: []string{"first_seen"}, tmode: tmPast,
		Desc: "first time the service was seen; durations as for last_seen", Example: "first_seen:1d"},
	{Name: "after", Kind: KindTime, Columns: []string{"last_seen"}, tmode: tmAfter,
		Desc: "seen at or after a date, time or age", Example: "after:2026-11-01"},
	{Name: "before", Kind: KindTime, Columns: []string{"last_seen"}, tmode: tmBefore,
		Desc: "seen before a date, time or age", Example: "before:2026-11-01T12:00:00Z"},
	{Name: "scan", Kind: KindString, Columns: []string{"scan_id"}, Facet: true,
		Desc: "id of the scan that made the observation", Example: "scan:2026-11-01-a"},
	{Name: "has", Kind: KindHas, Desc: "shortcuts: has:http, has:tls, has:ssh, has:vuln", Example: "has:tls -has:http",
		has: []hasKey{
			{"http", "an HTTP response was recorded (http_status > 0)", func(Dialect) string { return "http_status > 0" }},
			{"tls", "a TLS certificate was recorded (tls_sha256 not empty)", notEmpty("tls_sha256")},
			{"ssh", "an SSH host key was recorded (ssh_hostkey not empty)", notEmpty("ssh_hostkey")},
			{"vuln", "at least one CVE is known (vulns not empty)", func(d Dialect) string { return d.ListNotEmpty("vulns") }},
		}},
}

var eventFields = []Field{
	{Name: "src.ip", Aliases: []string{"ip", "src", "net", "src.net"}, Kind: KindIP, Columns: []string{"src_hi", "src_lo"},
		Desc: "source address; a CIDR prefix matches the network", Example: "src.ip:198.51.100.0/24"},
	{Name: "src.port", Kind: KindInt, Columns: []string{"src_port"}, min: 0, max: maxU16, Facet: true,
		Desc: "source port", Example: "src.port:<1024"},
	{Name: "dst.ip", Aliases: []string{"dst", "dst.net"}, Kind: KindIP, Columns: []string{"dst_hi", "dst_lo"},
		Desc: "sensor address that was reached", Example: "dst.ip:198.51.100.130"},
	{Name: "dst.port", Aliases: []string{"port"}, Kind: KindInt, Columns: []string{"dst_port"}, min: 0, max: maxU16, Facet: true,
		Desc: "destination port", Example: "port:3389"},
	{Name: "transport", Kind: KindString, Columns: []string{"transport"}, norm: lower, Facet: true,
		Desc: "tcp, udp or icmp", Example: "transport:icmp"},
	{Name: "icmp.type", Kind: KindInt, Columns: []string{"icmp_type"}, min: 0, max: 255, Facet: true,
		Desc: "ICMP type", Example: "icmp.type:8"},
	{Name: "ttl", Kind: KindInt, Columns: []string{"ttl"}, min: 0, max: 255, Facet: true,
		Desc: "IP TTL as received", Example: "ttl:[240 TO 255]"},
	{Name: "ip.id", Kind: KindInt, Columns: []string{"ip_id"}, min: 0, max: maxU16, Facet: true,
		Desc: "IP identification field", Example: "ip.id:54321"},
	{Name: "tcp.window", Kind: KindInt, Columns: []string{"tcp_window"}, min: 0, max: maxU16, Facet: true,
		Desc: "TCP window of the SYN", Example: "tcp.window:1024"},
	{Name: "handshake", Kind: KindBool, Columns: []string{"handshake"}, Facet: true,
		Desc: "the TCP handshake completed", Example: "handshake:false"},
	{Name: "sensor", Kind: KindString, Columns: []string{"sensor"}, Facet: true,
		Desc: "sensor name", Example: "sensor:fra1"},
	{Name: "payload", Kind: KindBlob, Columns: []string{"payload_text"},
		Desc: "payload text (free text without a field searches it too)", Example: `payload:"GET /cgi-bin/"`},
	{Name: "http.method", Kind: KindString, Columns: []string{"http_method"}, norm: upper, Facet: true,
		Desc: "HTTP request method", Example: "http.method:POST"},
	{Name: "http.path", Kind: KindText, Columns: []string{"http_path"}, Facet: true,
		Desc: "HTTP request path", Example: "http.path:/wp-login.php"},
	{Name: "http.user_agent", Aliases: []string{"ua"}, Kind: KindText, Columns: []string{"user_agent"}, Facet: true,
		Desc: "HTTP User-Agent", Example: "ua:zgrab*"},
	{Name: "ja3", Kind: KindString, Columns: []string{"ja3"}, norm: lower, Facet: true,
		Desc: "JA3 fingerprint of the client hello", Example: "ja3:e7d705a3286e19ea42f587b344ee6865"},
	{Name: "hassh", Kind: KindString, Columns: []string{"hassh"}, norm: lower, Facet: true,
		Desc: "HASSH fingerprint of the SSH client", Example: "hassh:ec7378c1a92f5a8dde7e8b7a1ddf33d1"},
	{Name: "tag", Aliases: []string{"tags"}, Kind: KindList, Columns: []string{"tags"}, norm: upper, Facet: true,
		Desc: "tags: actions, tools, actors (upper case)", Example: "tag:RDP_SCANNER last_seen:1h"},
	{Name: "classification", Kind: KindString, Columns: []string{"classification"}, norm: lower, check: checkClassification, Facet: true,
		Desc: "verdict on the source: benign, malicious or unknown", Example: "classification:malicious"},
	{Name: "actor", Kind: KindString, Columns: []string{"actor"}, fold: true, Facet: true,
		Desc: "known scanning organisation (case-insensitive)", Example: "actor:shodan"},
	{Name: "src.country", Aliases: []string{"country"}, Kind: KindString, Columns: []string{"src_country"}, norm: upper, check: checkCountry, Facet: true,
		Desc: "ISO 3166 country code of the source", Example: "country:CN"},
	{Name: "src.asn", Aliases: []string{"asn"}, Kind: KindInt, Columns: []string{"src_asn"}, min: 0, max: maxU32, asn: true, Facet: true,
		Desc: "autonomous system of the source (AS14061 or 14061)", Example: "asn:AS14061"},
	{Name: "src.org", Aliases: []string{"org"}, Kind: KindText, Columns: []string{"src_org"}, Facet: true,
		Desc: "organisation owning the source address", Example: "org:digitalocean"},
	{Name: "dst.country", Kind: KindString, Columns: []string{"dst_country"}, norm: upper, check: checkCountry, Facet: true,
		Desc: "ISO 3166 country code of the sensor", Example: "dst.country:DE"},
	{Name: "last_seen", Kind: KindTime, Columns: []string{"ts"}, tmode: tmPast,
		Desc: "time of the event; a duration is an age (15m: within the last 15 minutes)", Example: "last_seen:15m"},
	{Name: "after", Kind: KindTime, Columns: []string{"ts"}, tmode: tmAfter,
		Desc: "at or after a date, time or age", Example: "after:2026-11-01"},
	{Name: "before", Kind: KindTime, Columns: []string{"ts"}, tmode: tmBefore,
		Desc: "before a date, time or age", Example: "before:2026-11-01T12:00:00Z"},
	{Name: "has", Kind: KindHas, Desc: "shortcuts: has:http, has:payload", Example: "has:payload -has:http",
		has: []hasKey{
			{"http", "the event is an HTTP request (http_method not empty)", notEmpty("http_method")},
			{"payload", "the event carried a payload (payload_text not empty)", notEmpty("payload_text")},
		}},
}

// textField is the field free text searches, per target.
var textField = [...]string{Services: "banner", Events: "payload"}

var (
	fieldIndex  [2]map[string]*Field // name or alias -> field, per target
	targetNames [2][]string          // names and aliases per target, sorted
	allNames    []string             // every name and alias of every target, sorted
	allHasKeys  []string
)

func init() {
	seen := map[string]bool{}
	for t, fs := range [][]Field{serviceFields, eventFields} {
		fieldIndex[t] = map[string]*Field{}
		for i := range fs {
			f := &fs[i]
			for _, n := range append([]string{f.Name}, f.Aliases...) {
				if fieldIndex[t][n] != nil {
					panic("query: duplicate field name " + n)
				}
				fieldIndex[t][n] = f
				targetNames[t] = append(targetNames[t], n)
				if !seen[n] {
					seen[n] = true
					allNames = append(allNames, n)
				}
			}
			for _, h := range f.has {
				if !seen["has:"+h.key] {
					seen["has:"+h.key] = true
					allHasKeys = append(allHasKeys, h.key)
				}
			}
		}
	}
	sort.Strings(allNames)
	for t := range targetNames {
		sort.Strings(targetNames[t])
	}
}

func targetFields(t Target) []Field {
	if t == Events {
		return eventFields
	}
	return serviceFields
}

// Fields lists the fields of a target in help order, for documentation
// (`vantage help query`) and for UIs.
func Fields(t Target) []Field {
	fs := targetFields(t)
	out := make([]Field, len(fs))
	for i, f := range fs {
		out[i] = f
		out[i].Aliases = append([]string(nil), f.Aliases...)
		out[i].Columns = append([]string(nil), f.Columns...)
		out[i].has = append([]hasKey(nil), f.has...)
	}
	return out
}

// LookupField finds a field of t by name or alias (case-insensitive).
func LookupField(t Target, name string) (Field, bool) {
	if f := lookup(t, name); f != nil {
		return *f, true
	}
	return Field{}, false
}

func lookup(t Target, name string) *Field {
	if int(t) >= len(fieldIndex) {
		return nil
	}
	return fieldIndex[t][strings.ToLower(name)]
}

// lookupAny finds a field by name in any target. Names shared by targets
// have the same kind and bounds (a test holds the registry to that), so
// the parser can check values without knowing the target.
func lookupAny(name string) *Field {
	if f := lookup(Services, name); f != nil {
		return f
	}
	return lookup(Events, name)
}

// hints maps names users know from other search engines to ours.
var hints = map[string]string{
	"hostname":    "tls.san",
	"http":        "has:http",
	"https":       "has:tls",
	"tls":         "has:tls",
	"ssh":         "has:ssh",
	"ssl":         "tls.subject",
	"ssl.cert":    "tls.subject",
	"cve":         "vuln",
	"service":     "protocol",
	"html":        "banner",
	"http.html":   "banner",
	"useragent":   "http.user_agent",
	"user_agent":  "http.user_agent",
	"isp":         "org",
	"timestamp":   "last_seen",
	"source":      "src.ip",
	"destination": "dst.ip",
}

// unknownField builds the error for a name no target knows, with the
// nearest known name.
func unknownField(name string, pos, end Pos, names []string) *Error {
	e := errorf(pos, end, "unknown field %s", quote(name))
	e.Expected = "a field name"
	if s := suggest(name, names); s != "" {
		e.Msg += " (did you mean " + quote(s) + "?)"
	}
	return e
}

func suggest(name string, names []string) string {
	if h, ok := hints[name]; ok {
		return h
	}
	best, bestD := "", 1<<30
	for _, n := range names {
		if d := editDistance(name, n); d < bestD {
			best, bestD = n, d
		}
	}
	limit := 1
	switch {
	case len(name) <= 2:
		limit = 0
	case len(name) > 8:
		limit = 3
	case len(name) > 4:
		limit = 2
	}
	if bestD <= limit {
		return best
	}
	// a prefix of a longer name: "http.tit" -> "http.title"
	for _, n := range names {
		if len(name) >= 3 && strings.HasPrefix(n, name) {
			return n
		}
	}
	return ""
}

// editDistance is the optimal string alignment distance (Levenshtein with
// adjacent transpositions) between a and b, byte-wise.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
