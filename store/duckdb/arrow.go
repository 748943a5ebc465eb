//go:build duckdb_arrow

package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/vantagehq/vantage/record"
)

// Events go into DuckDB through its Arrow interface: columns are built in
// Go without a call into C per value, and DuckDB copies whole vectors. With
// a transaction of more than one row group (122,880 rows) DuckDB also
// writes the data straight into the database file instead of the WAL. In
// this project's measurements that is about 3x the appender's rate.

// eventSchema is the events table's column order (schema.go).
var eventSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: &arrow.FixedSizeBinaryType{ByteWidth: 16}},
	{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	{Name: "seq", Type: arrow.PrimitiveTypes.Int64}, // replaced under the writer lock
	{Name: "sensor", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "src_hi", Type: arrow.PrimitiveTypes.Uint64},
	{Name: "src_lo", Type: arrow.PrimitiveTypes.Uint64},
	{Name: "src_port", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
	{Name: "dst_hi", Type: arrow.PrimitiveTypes.Uint64},
	{Name: "dst_lo", Type: arrow.PrimitiveTypes.Uint64},
	{Name: "dst_port", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
	{Name: "transport", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "icmp_type", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
	{Name: "icmp_code", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
	{Name: "ttl", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
	{Name: "ip_id", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
	{Name: "tcp_flags", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
	{Name: "tcp_window", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
	{Name: "tcp_seq", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
	{Name: "tcp_options", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "handshake", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "payload", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "payload_text", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "http_method", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "http_path", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "user_agent", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ja3", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "hassh", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "sni", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "username", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "password", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "classification", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "actor", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "src_country", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "src_asn", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
	{Name: "src_org", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "dst_country", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// eventBuilder fills the Arrow columns of the events table.
type eventBuilder struct {
	b *array.RecordBuilder
	// typed column builders, by position
	id                                                    *array.FixedSizeBinaryBuilder
	ts                                                    *array.TimestampBuilder
	seq                                                   *array.Int64Builder
	srcHi, srcLo, dstHi, dstLo                            *array.Uint64Builder
	srcPort, dstPort, ipid, win                           *array.Uint16Builder
	icmpType, icmpCode, ttl, flags                        *array.Uint8Builder
	tcpSeq, asn                                           *array.Uint32Builder
	handshake                                             *array.BooleanBuilder
	payload                                               *array.BinaryBuilder
	tags                                                  *array.ListBuilder
	tagVals                                               *array.StringBuilder
	sensor, transport, opts, ptext, method, path, ua, ja3 *array.StringBuilder
	hassh, sni, user, pass, class, actor, sc, so, dc      *array.StringBuilder
}

func newEventBuilder() *eventBuilder {
	b := array.NewRecordBuilder(memory.DefaultAllocator, eventSchema)
	str := func(i int) *array.StringBuilder { return b.Field(i).(*array.StringBuilder) }
	eb := &eventBuilder{b: b,
		id: b.Field(0).(*array.FixedSizeBinaryBuilder), ts: b.Field(1).(*array.TimestampBuilder),
		seq: b.Field(2).(*array.Int64Builder), sensor: str(3),
		srcHi: b.Field(4).(*array.Uint64Builder), srcLo: b.Field(5).(*array.Uint64Builder),
		srcPort: b.Field(6).(*array.Uint16Builder), dstHi: b.Field(7).(*array.Uint64Builder),
		dstLo: b.Field(8).(*array.Uint64Builder), dstPort: b.Field(9).(*array.Uint16Builder),
		transport: str(10), icmpType: b.Field(11).(*array.Uint8Builder), icmpCode: b.Field(12).(*array.Uint8Builder),
		ttl: b.Field(13).(*array.Uint8Builder), ipid: b.Field(14).(*array.Uint16Builder),
		flags: b.Field(15).(*array.Uint8Builder), win: b.Field(16).(*array.Uint16Builder),
		tcpSeq: b.Field(17).(*array.Uint32Builder), opts: str(18), handshake: b.Field(19).(*array.BooleanBuilder),
		payload: b.Field(20).(*array.BinaryBuilder), ptext: str(21), method: str(22), path: str(23), ua: str(24),
		ja3: str(25), hassh: str(26), sni: str(27), user: str(28), pass: str(29),
		tags: b.Field(30).(*array.ListBuilder), class: str(31), actor: str(32), sc: str(33),
		asn: b.Field(34).(*array.Uint32Builder), so: str(35), dc: str(36),
	}
	eb.tagVals = eb.tags.ValueBuilder().(*array.StringBuilder)
	return eb
}

func (eb *eventBuilder) add(e *record.Event) {
	eb.id.Append(e.ID[:])
	if e.Time.IsZero() {
		eb.ts.AppendNull()
	} else {
		eb.ts.Append(arrow.Timestamp(e.Time.UnixMicro()))
	}
	eb.seq.Append(0) // replaced at insert
	appendStr(eb.sensor, e.Sensor)
	sh, sl := hilo(e.Src)
	dh, dl := hilo(e.Dst)
	eb.srcHi.Append(sh)
	eb.srcLo.Append(sl)
	appendU16(eb.srcPort, e.SrcPort)
	eb.dstHi.Append(dh)
	eb.dstLo.Append(dl)
	appendU16(eb.dstPort, e.DstPort)
	appendStr(eb.transport, e.Transport)
	appendU8(eb.icmpType, e.ICMPType)
	appendU8(eb.icmpCode, e.ICMPCode)
	appendU8(eb.ttl, e.TTL)
	appendU16(eb.ipid, e.IPID)
	appendU8(eb.flags, e.TCPFlags)
	appendU16(eb.win, e.TCPWindow)
	if e.TCPSeq != 0 {
		eb.tcpSeq.Append(e.TCPSeq)
	} else {
		eb.tcpSeq.AppendNull()
	}
	appendStr(eb.opts, e.TCPOptions)
	eb.handshake.Append(e.Handshake)
	if len(e.Payload) > 0 {
		eb.payload.Append(e.Payload)
		eb.ptext.Append(searchText(e.Payload).(string))
	} else {
		eb.payload.AppendNull()
		eb.ptext.AppendNull()
	}
	appendStr(eb.method, e.HTTPMethod)
	appendStr(eb.path, e.HTTPPath)
	appendStr(eb.ua, e.UserAgent)
	appendStr(eb.ja3, e.JA3)
	appendStr(eb.hassh, e.HASSH)
	appendStr(eb.sni, e.SNI)
	appendStr(eb.user, e.Username)
	appendStr(eb.pass, e.Password)
	if len(e.Tags) > 0 {
		eb.tags.Append(true)
		for _, t := range e.Tags {
			appendStr(eb.tagVals, t)
		}
	} else {
		eb.tags.AppendNull()
	}
	appendStr(eb.class, e.Classification)
	appendStr(eb.actor, e.Actor)
	appendStr(eb.sc, e.SrcGeo.Country)
	if e.SrcGeo.ASN != 0 {
		eb.asn.Append(e.SrcGeo.ASN)
	} else {
		eb.asn.AppendNull()
	}
	appendStr(eb.so, e.SrcGeo.Org)
	appendStr(eb.dc, e.DstCountry)
}

// appendStr appends a VARCHAR value: NULL when empty, invalid UTF-8 made
// valid (DuckDB would reject it).
func appendStr(b *array.StringBuilder, s string) {
	switch {
	case s == "":
		b.AppendNull()
	case !utf8.ValidString(s):
		b.Append(strings.ToValidUTF8(s, "\uFFFD"))
	default:
		b.Append(s)
	}
}

func appendU8(b *array.Uint8Builder, v uint8) {
	if v == 0 {
		b.AppendNull()
	} else {
		b.Append(v)
	}
}

func appendU16(b *array.Uint16Builder, v uint16) {
	if v == 0 {
		b.AppendNull()
	} else {
		b.Append(v)
	}
}

// eventColumns are the events of some batches as an Arrow record.
type eventColumns struct {
	rec arrow.RecordBatch // nil when there are no events
}

// buildEvents builds the columns of the batches' events.
func buildEvents(batches []*record.Batch) *eventColumns {
	n := 0
	for _, b := range batches {
		n += len(b.Events)
	}
	if n == 0 {
		return &eventColumns{}
	}
	eb := newEventBuilder()
	defer eb.b.Release()
	for _, b := range batches {
		for i := range b.Events {
			eb.add(&b.Events[i])
		}
	}
	return &eventColumns{rec: eb.b.NewRecordBatch()}
}

func (c *eventColumns) release() {
	if c.rec != nil {
		c.rec.Release()
		c.rec = nil
	}
}

// insert inserts the events in one statement, stamped with the ingest seq.
// The seq column is swapped in here, under the writer lock (selecting a
// constant in its place makes DuckDB's Arrow scan crash).
func (c *eventColumns) insert(ctx context.Context, conn driver.Conn, seq int64) error {
	if c.rec == nil {
		return nil
	}
	n := int(c.rec.NumRows())
	sb := array.NewInt64Builder(memory.DefaultAllocator)
	defer sb.Release()
	sb.Reserve(n)
	for i := 0; i < n; i++ {
		sb.UnsafeAppend(seq)
	}
	seqs := sb.NewInt64Array()
	defer seqs.Release()
	cols := slices.Clone(c.rec.Columns())
	cols[2] = seqs
	rec := array.NewRecordBatch(eventSchema, cols, int64(n))
	defer rec.Release()
	rdr, err := array.NewRecordReader(eventSchema, []arrow.RecordBatch{rec})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer rdr.Release()
	ar, err := duckdb.NewArrowFromConn(conn)
	if err != nil {
		return fmt.Errorf("events: arrow: %w", err)
	}
	release, err := ar.RegisterView(rdr, "incoming_events")
	if err != nil {
		return fmt.Errorf("events: arrow view: %w", err)
	}
	defer release()
	if _, err := conn.(driver.ExecerContext).ExecContext(ctx, "INSERT INTO events SELECT * FROM incoming_events", nil); err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	return nil
}
