// Package record is the data model that flows from the roles (scanners and
// sensors) over the bus into the store: services (what a scan found on an
// address and port), events (what reached a sensor), and the batches they
// travel in. A batch has an ID that makes storing it idempotent: a batch
// delivered twice is stored once.
package record

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// ID identifies a record or a batch: 16 bytes, printed as 32 hex digits.
type ID [16]byte

// NewID returns a random ID.
func NewID() ID {
	var id ID
	rand.Read(id[:])
	return id
}

// HashID derives a stable ID from parts, so the same observation always
// gets the same ID.
func HashID(parts ...string) ID {
	// each part as "len:part;", built without fmt (a grabber derives an
	// ID per service)
	var stack [256]byte
	b := stack[:0]
	for _, p := range parts {
		b = strconv.AppendInt(b, int64(len(p)), 10)
		b = append(b, ':')
		b = append(b, p...)
		b = append(b, ';')
	}
	sum := sha256.Sum256(b)
	var id ID
	copy(id[:], sum[:])
	return id
}

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is unset.
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText encodes the ID as hex.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex ID.
func (id *ID) UnmarshalText(b []byte) error {
	if len(b) != 32 {
		return fmt.Errorf("record id %q: want 32 hex digits", b)
	}
	_, err := hex.Decode(id[:], b)
	return err
}

// Geo is what enrichment adds to an address.
type Geo struct {
	Country string `json:"country,omitempty"` // ISO 3166-1 alpha-2
	ASN     uint32 `json:"asn,omitempty"`
	Org     string `json:"org,omitempty"`
	Label   string `json:"label,omitempty"` // from the operator's overrides file
}

// Service is one observation of a service: an address, port and transport
// at a time, with what the scanner and the grabbers learnt.
type Service struct {
	ID        ID         `json:"id"`
	Time      time.Time  `json:"time"`
	ScanID    string     `json:"scan_id,omitempty"`
	IP        netip.Addr `json:"ip"`
	Port      uint16     `json:"port"`
	Transport string     `json:"transport"` // tcp, udp
	State     string     `json:"state"`     // open, closed
	TTL       uint8      `json:"ttl,omitempty"`
	Window    uint16     `json:"window,omitempty"`

	Protocol string   `json:"protocol,omitempty"` // http, ssh, tls, ...
	Product  string   `json:"product,omitempty"`
	Version  string   `json:"version,omitempty"`
	CPE      []string `json:"cpe,omitempty"`
	Banner   []byte   `json:"banner,omitempty"` // raw bytes, bounded by the grabber
	HTTP     *HTTP    `json:"http,omitempty"`
	TLS      *TLS     `json:"tls,omitempty"`
	SSH      *SSH     `json:"ssh,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	Vulns    []string `json:"vulns,omitempty"`
	// Data holds protocol details a grabber learnt beyond the fields above
	// ("rdp.protocols", "smb.dialect", "mysql.capabilities", ...).
	Data map[string]string `json:"data,omitempty"`

	Geo Geo `json:"geo"` // filled in at ingest
}

// ServiceID is the stable ID of one scan's observation of ip:port/transport:
// a scanner that publishes it twice publishes the same record.
func ServiceID(scanID string, ip netip.Addr, port uint16, transport string) ID {
	return HashID("service", scanID, ip.String(), strconv.Itoa(int(port)), transport)
}

// HTTP is what an HTTP grab learnt.
type HTTP struct {
	Status      int      `json:"status,omitempty"`
	Title       string   `json:"title,omitempty"`
	Server      string   `json:"server,omitempty"`
	Headers     []Header `json:"headers,omitempty"` // in the order the server sent them
	FaviconHash int32    `json:"favicon_hash,omitempty"`
	BodySHA256  string   `json:"body_sha256,omitempty"`
	Location    string   `json:"location,omitempty"`
}

// Header is one HTTP header as sent.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TLS is what a TLS handshake showed.
type TLS struct {
	Version   string    `json:"version,omitempty"`
	Cipher    string    `json:"cipher,omitempty"`
	JA3S      string    `json:"ja3s,omitempty"`
	SHA256    string    `json:"sha256,omitempty"` // of the leaf certificate
	Subject   string    `json:"subject,omitempty"`
	Issuer    string    `json:"issuer,omitempty"`
	SANs      []string  `json:"sans,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	Chain     [][]byte  `json:"chain,omitempty"` // raw DER, leaf first
}

// SSH is what an SSH server said before authentication.
type SSH struct {
	Banner        string   `json:"banner,omitempty"`
	HASSH         string   `json:"hassh,omitempty"` // HASSH-server
	HostKeyType   string   `json:"host_key_type,omitempty"`
	HostKeySHA256 string   `json:"host_key_sha256,omitempty"`
	KexAlgorithms []string `json:"kex_algorithms,omitempty"`
}

// Event is one thing that reached a sensor: a packet, or what a
// low-interaction responder drew out of a connection.
type Event struct {
	ID        ID         `json:"id"`
	Time      time.Time  `json:"time"`
	Sensor    string     `json:"sensor"`
	Src       netip.Addr `json:"src"`
	SrcPort   uint16     `json:"src_port,omitempty"`
	Dst       netip.Addr `json:"dst"`
	DstPort   uint16     `json:"dst_port,omitempty"`
	Transport string     `json:"transport"` // tcp, udp, icmp
	ICMPType  uint8      `json:"icmp_type,omitempty"`
	ICMPCode  uint8      `json:"icmp_code,omitempty"`

	// header features used to fingerprint tools
	TTL        uint8  `json:"ttl,omitempty"`
	IPID       uint16 `json:"ip_id,omitempty"`
	TCPFlags   uint8  `json:"tcp_flags,omitempty"`
	TCPWindow  uint16 `json:"tcp_window,omitempty"`
	TCPSeq     uint32 `json:"tcp_seq,omitempty"`
	TCPOptions string `json:"tcp_options,omitempty"` // canonical layout, e.g. "M1460,S,T,N,W7"
	Handshake  bool   `json:"handshake,omitempty"`   // the source completed a TCP handshake

	Payload    []byte   `json:"payload,omitempty"` // first bytes, bounded by the sensor
	HTTPMethod string   `json:"http_method,omitempty"`
	HTTPPath   string   `json:"http_path,omitempty"`
	UserAgent  string   `json:"user_agent,omitempty"`
	JA3        string   `json:"ja3,omitempty"`
	HASSH      string   `json:"hassh,omitempty"`
	SNI        string   `json:"sni,omitempty"`
	Username   string   `json:"username,omitempty"` // attempted credentials, as seen
	Password   string   `json:"password,omitempty"`
	Tags       []string `json:"tags,omitempty"`

	Classification string `json:"classification,omitempty"` // benign, malicious, unknown
	Actor          string `json:"actor,omitempty"`

	SrcGeo     Geo    `json:"src_geo"`               // filled in at ingest
	DstCountry string `json:"dst_country,omitempty"` // the sensor's country
}

// Batch is the unit that travels on the bus and is stored atomically.
type Batch struct {
	ID       ID        `json:"id"`
	Producer string    `json:"producer"` // e.g. "scanner/host-a", "sensor/fra1"
	Services []Service `json:"services,omitempty"`
	Events   []Event   `json:"events,omitempty"`
}

// Len is the number of records in the batch.
func (b *Batch) Len() int { return len(b.Services) + len(b.Events) }
