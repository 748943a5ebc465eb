//go:build duckdb_arrow

package duckdb

import (
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// eventRow is an event with the values derived once for its columns.
type eventRow struct {
	*record.Event
	sh, sl, dh, dl uint64
	text           string // searchable projection of the payload
}

// events is the events table, column for column (schema.go).
var events = newTable("events",
	idCol("id", func(r *eventRow) [16]byte { return r.ID }),
	timeCol("ts", func(r *eventRow) int64 { return micros(r.Time) }),
	i64Col("seq", func(r *eventRow) int64 { return 0 }), // swapped in under the writer lock
	textCol("sensor", func(r *eventRow) string { return r.Sensor }),
	u64Col("src_hi", func(r *eventRow) uint64 { return r.sh }),
	u64Col("src_lo", func(r *eventRow) uint64 { return r.sl }),
	u16Col("src_port", func(r *eventRow) uint16 { return r.SrcPort }),
	u64Col("dst_hi", func(r *eventRow) uint64 { return r.dh }),
	u64Col("dst_lo", func(r *eventRow) uint64 { return r.dl }),
	u16Col("dst_port", func(r *eventRow) uint16 { return r.DstPort }),
	textCol("transport", func(r *eventRow) string { return r.Transport }),
	u8Col("icmp_type", func(r *eventRow) uint8 { return r.ICMPType }),
	u8Col("icmp_code", func(r *eventRow) uint8 { return r.ICMPCode }),
	u8Col("ttl", func(r *eventRow) uint8 { return r.TTL }),
	u16Col("ip_id", func(r *eventRow) uint16 { return r.IPID }),
	u8Col("tcp_flags", func(r *eventRow) uint8 { return r.TCPFlags }),
	u16Col("tcp_window", func(r *eventRow) uint16 { return r.TCPWindow }),
	u32Col("tcp_seq", func(r *eventRow) uint32 { return r.TCPSeq }),
	textCol("tcp_options", func(r *eventRow) string { return r.TCPOptions }),
	boolCol("handshake", func(r *eventRow) bool { return r.Handshake }),
	blobCol("payload", func(r *eventRow) []byte { return r.Payload }),
	textCol("payload_text", func(r *eventRow) string { return r.text }),
	textCol("http_method", func(r *eventRow) string { return r.HTTPMethod }),
	textCol("http_path", func(r *eventRow) string { return r.HTTPPath }),
	textCol("user_agent", func(r *eventRow) string { return r.UserAgent }),
	textCol("ja3", func(r *eventRow) string { return r.JA3 }),
	textCol("hassh", func(r *eventRow) string { return r.HASSH }),
	textCol("sni", func(r *eventRow) string { return r.SNI }),
	textCol("username", func(r *eventRow) string { return r.Username }),
	textCol("password", func(r *eventRow) string { return r.Password }),
	listCol("tags", func(r *eventRow) []string { return r.Tags }),
	textCol("classification", func(r *eventRow) string { return r.Classification }),
	textCol("actor", func(r *eventRow) string { return r.Actor }),
	textCol("src_country", func(r *eventRow) string { return r.SrcGeo.Country }),
	u32Col("src_asn", func(r *eventRow) uint32 { return r.SrcGeo.ASN }),
	textCol("src_org", func(r *eventRow) string { return r.SrcGeo.Org }),
	textCol("dst_country", func(r *eventRow) string { return r.DstCountry }),
)

// serviceRow is a service with the values derived once for its columns.
type serviceRow struct {
	*record.Service
	hi, lo     uint64
	versionKey string
	text       string // searchable projection of the banner
	details    []byte // the whole observation as JSON
}

// stageServices has the columns of services (the history's, then first
// and last seen): it fills the staging table of the same layout.
var stageServices = newTable("stage_services",
	idCol("id", func(r *serviceRow) [16]byte { return r.ID }),
	timeCol("ts", func(r *serviceRow) int64 { return micros(r.Time) }),
	textCol("scan_id", func(r *serviceRow) string { return r.ScanID }),
	u64Col("ip_hi", func(r *serviceRow) uint64 { return r.hi }),
	u64Col("ip_lo", func(r *serviceRow) uint64 { return r.lo }),
	keyU16Col("port", func(r *serviceRow) uint16 { return r.Port }),
	textCol("transport", func(r *serviceRow) string { return r.Transport }),
	textCol("state", func(r *serviceRow) string { return r.State }),
	u8Col("ttl", func(r *serviceRow) uint8 { return r.TTL }),
	u16Col("tcp_window", func(r *serviceRow) uint16 { return r.Window }),
	textCol("protocol", func(r *serviceRow) string { return r.Protocol }),
	textCol("product", func(r *serviceRow) string { return r.Product }),
	textCol("version", func(r *serviceRow) string { return r.Version }),
	textCol("version_key", func(r *serviceRow) string { return r.versionKey }),
	listCol("cpe", func(r *serviceRow) []string { return r.CPE }),
	blobCol("banner", func(r *serviceRow) []byte { return r.Banner }),
	textCol("banner_text", func(r *serviceRow) string { return r.text }),
	u16Col("http_status", func(r *serviceRow) uint16 {
		if r.HTTP != nil && r.HTTP.Status > 0 && r.HTTP.Status < 1000 {
			return uint16(r.HTTP.Status)
		}
		return 0
	}),
	textCol("http_title", func(r *serviceRow) string { return httpOf(r).Title }),
	textCol("http_server", func(r *serviceRow) string { return httpOf(r).Server }),
	i32Col("http_favicon", func(r *serviceRow) int32 { return httpOf(r).FaviconHash }),
	textCol("tls_subject", func(r *serviceRow) string { return tlsOf(r).Subject }),
	textCol("tls_issuer", func(r *serviceRow) string { return tlsOf(r).Issuer }),
	listCol("tls_san", func(r *serviceRow) []string { return tlsOf(r).SANs }),
	textCol("tls_sha256", func(r *serviceRow) string { return tlsOf(r).SHA256 }),
	textCol("tls_ja3s", func(r *serviceRow) string { return tlsOf(r).JA3S }),
	timeCol("tls_not_after", func(r *serviceRow) int64 { return micros(tlsOf(r).NotAfter) }),
	textCol("ssh_hassh", func(r *serviceRow) string { return sshOf(r).HASSH }),
	textCol("ssh_hostkey", func(r *serviceRow) string { return sshOf(r).HostKeySHA256 }),
	textCol("country", func(r *serviceRow) string { return r.Geo.Country }),
	u32Col("asn", func(r *serviceRow) uint32 { return r.Geo.ASN }),
	textCol("org", func(r *serviceRow) string { return r.Geo.Org }),
	textCol("label", func(r *serviceRow) string { return r.Geo.Label }),
	listCol("tags", func(r *serviceRow) []string { return r.Tags }),
	listCol("vulns", func(r *serviceRow) []string { return r.Vulns }),
	blobCol("details", func(r *serviceRow) []byte { return r.details }),
	timeCol("first_seen", func(r *serviceRow) int64 { return micros(r.Time) }),
	timeCol("last_seen", func(r *serviceRow) int64 { return micros(r.Time) }),
)

var (
	noHTTP record.HTTP
	noTLS  record.TLS
	noSSH  record.SSH
)

func httpOf(r *serviceRow) *record.HTTP {
	if r.HTTP == nil {
		return &noHTTP
	}
	return r.HTTP
}

func tlsOf(r *serviceRow) *record.TLS {
	if r.TLS == nil {
		return &noTLS
	}
	return r.TLS
}

func sshOf(r *serviceRow) *record.SSH {
	if r.SSH == nil {
		return &noSSH
	}
	return r.SSH
}

// columns are the record batches of one ingest call.
type columns struct {
	events, services arrow.RecordBatch // nil when there are none
}

// nonEmpty is vs without its empty strings (vs itself when it has none).
func nonEmpty(vs []string) []string {
	if !slices.Contains(vs, "") {
		return vs
	}
	var out []string
	for _, v := range vs {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// buildColumns builds the columns of the batches' records, outside the
// writer lock.
func buildColumns(batches []*record.Batch) *columns {
	var nev int
	for _, b := range batches {
		nev += len(b.Events)
	}
	// the rows in one allocation rather than one each
	evRows := make([]eventRow, nev)
	evs := make([]*eventRow, 0, nev)
	var svs []*serviceRow
	for _, b := range batches {
		for i := range b.Events {
			e := &b.Events[i]
			r := &evRows[len(evs)]
			r.Event, r.text = e, store.SearchText(e.Payload)
			r.sh, r.sl = hilo(e.Src)
			r.dh, r.dl = hilo(e.Dst)
			evs = append(evs, r)
		}
		for i := range b.Services {
			s := &b.Services[i]
			r := &serviceRow{Service: s, versionKey: query.VersionKey(s.Version), text: store.SearchText(s.Banner)}
			r.hi, r.lo = hilo(s.IP)
			// the whole observation: lookups read it instead of two dozen
			// columns (mergeColumns keeps a grab's details over a bare
			// SYN-ACK's); its lists as the columns keep them, without
			// empty elements
			d := *s
			d.Tags, d.CPE, d.Vulns = nonEmpty(d.Tags), nonEmpty(d.CPE), nonEmpty(d.Vulns)
			if d.TLS != nil && len(nonEmpty(d.TLS.SANs)) != len(d.TLS.SANs) {
				t := *d.TLS
				t.SANs = nonEmpty(t.SANs)
				d.TLS = &t
			}
			r.details = d.AppendJSON(nil)
			svs = append(svs, r)
		}
	}
	return &columns{events: events.build(evs), services: stageServices.build(svs)}
}

// rows is how many records the columns hold.
func (c *columns) rows() int64 {
	var n int64
	for _, r := range []arrow.RecordBatch{c.events, c.services} {
		if r != nil {
			n += r.NumRows()
		}
	}
	return n
}

func (c *columns) release() {
	for _, r := range []arrow.RecordBatch{c.events, c.services} {
		if r != nil {
			r.Release()
		}
	}
	c.events, c.services = nil, nil
}

// micros is a time in microseconds since the epoch, 0 for the zero time.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}
