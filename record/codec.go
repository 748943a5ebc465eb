package record

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Limits a decoder enforces, so a hostile or broken producer cannot make
// the ingester allocate without bound: a message is also bounded by the
// bus's maximum payload.
const (
	MaxBatchRecords = 1 << 20
	maxListItems    = 4096
)

// AppendBatch appends the wire encoding of b to buf.
func AppendBatch(buf []byte, b *Batch) []byte {
	e := encoder{b: buf}
	e.id(1, b.ID)
	e.str(2, b.Producer)
	for i := range b.Services {
		e.msg(3, b.Services[i].encode)
	}
	for i := range b.Events {
		e.msg(4, b.Events[i].encode)
	}
	return e.b
}

// Marshal encodes a batch for the bus.
func (b *Batch) Marshal() []byte { return AppendBatch(nil, b) }

// encodeBufs are reused encoding buffers: a batch of a thousand events is
// hundreds of kilobytes, and growing a new buffer to that size cost more
// than the encoding itself (BenchmarkEventCodec: marshal against encode).
var encodeBufs = sync.Pool{New: func() any { return new([]byte) }}

// WithEncoding calls use with the batch's encoding in a buffer that is
// reused once use returns, so use must not keep it (a publish that copies
// it, a write to a file).
func (b *Batch) WithEncoding(use func(data []byte) error) error {
	buf := encodeBufs.Get().(*[]byte)
	*buf = AppendBatch((*buf)[:0], b)
	err := use(*buf)
	encodeBufs.Put(buf)
	return err
}

// eventSlices are the event slices of batches given back by Recycle, for
// the next batch decoded or filled by a Batcher. An ingester decodes a
// thousand-event batch for every bus message, and a fresh slice for each
// (over 400 bytes an event) was a third of what the ingest path allocated,
// for the garbage collector to trace and free.
var eventSlices sync.Pool // of *[]Event

// takeEvents returns an empty slice with room for n events.
func takeEvents(n int) []Event {
	if n == 0 {
		return nil
	}
	if p, ok := eventSlices.Get().(*[]Event); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]Event, 0, n)
}

// Recycle gives the batch's event slice back for the next UnmarshalBatch
// or Batcher to fill. Only the batch's owner may call it, once, when nothing uses the
// batch any more: it is left without events.
func (b *Batch) Recycle() {
	s := b.Events[:cap(b.Events)]
	b.Events = nil
	if len(s) == 0 {
		return
	}
	clear(s) // nothing of this batch stays reachable from the pool
	s = s[:0]
	eventSlices.Put(&s)
}

// UnmarshalBatch decodes a batch. A batch without an ID, with more than
// MaxBatchRecords records or with a malformed record is an error: the
// ingester refuses it whole, so nothing half-read is stored. The batch's
// strings and byte slices alias data, which must not change afterwards.
func UnmarshalBatch(data []byte) (*Batch, error) {
	b := &Batch{}
	// a first pass counts the records, so the slices are allocated once
	var services, events int
	for d := (decoder{b: data}); d.next(); d.skip() {
		switch d.field {
		case 3:
			services++
		case 4:
			events++
		}
		if services+events > MaxBatchRecords {
			return nil, fmt.Errorf("batch: more than %d records", MaxBatchRecords)
		}
	}
	b.Services = make([]Service, 0, services)
	b.Events = takeEvents(events)
	d := decoder{b: data}
	for d.next() {
		switch d.field {
		case 1:
			b.ID = d.id()
		case 2:
			b.Producer = d.str()
		case 3:
			b.Services = append(b.Services, Service{})
			d.sub(b.Services[len(b.Services)-1].decode)
		case 4:
			b.Events = append(b.Events, Event{})
			d.sub(b.Events[len(b.Events)-1].decode)
		default:
			d.skip()
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("batch: %w", d.err)
	}
	if b.ID.IsZero() {
		return nil, errors.New("batch: no id")
	}
	return b, nil
}

func appendStr(d *decoder, list []string) []string {
	if len(list) >= maxListItems {
		d.fail(fmt.Errorf("field %d: more than %d items", d.field, maxListItems))
		return list
	}
	return append(list, d.str())
}

func (s *Service) encode(e *encoder) {
	e.id(1, s.ID)
	e.time(2, s.Time)
	e.str(3, s.ScanID)
	e.addr(4, s.IP)
	e.uint(5, uint64(s.Port))
	e.str(6, s.Transport)
	e.str(7, s.State)
	e.uint(8, uint64(s.TTL))
	e.uint(9, uint64(s.Window))
	e.str(10, s.Protocol)
	e.str(11, s.Product)
	e.str(12, s.Version)
	e.strs(13, s.CPE)
	e.bytes(14, s.Banner)
	if s.HTTP != nil {
		e.msg(15, s.HTTP.encode)
	}
	if s.TLS != nil {
		e.msg(16, s.TLS.encode)
	}
	if s.SSH != nil {
		e.msg(17, s.SSH.encode)
	}
	e.strs(18, s.Tags)
	e.strs(19, s.Vulns)
	if s.Geo != (Geo{}) {
		e.msg(20, s.Geo.encode)
	}
	// sorted, so the same record always encodes to the same bytes
	for _, k := range slices.Sorted(maps.Keys(s.Data)) {
		e.msg(21, func(e *encoder) {
			e.str(1, k)
			e.str(2, s.Data[k])
		})
	}
}

func (s *Service) decode(d *decoder) {
	for d.next() {
		switch d.field {
		case 1:
			s.ID = d.id()
		case 2:
			s.Time = d.time()
		case 3:
			s.ScanID = d.str()
		case 4:
			s.IP = d.addr()
		case 5:
			s.Port = uint16(d.uintN(16))
		case 6:
			s.Transport = d.str()
		case 7:
			s.State = d.str()
		case 8:
			s.TTL = uint8(d.uintN(8))
		case 9:
			s.Window = uint16(d.uintN(16))
		case 10:
			s.Protocol = d.str()
		case 11:
			s.Product = d.str()
		case 12:
			s.Version = d.str()
		case 13:
			s.CPE = appendStr(d, s.CPE)
		case 14:
			s.Banner = d.bytes()
		case 15:
			s.HTTP = &HTTP{}
			d.sub(s.HTTP.decode)
		case 16:
			s.TLS = &TLS{}
			d.sub(s.TLS.decode)
		case 17:
			s.SSH = &SSH{}
			d.sub(s.SSH.decode)
		case 18:
			s.Tags = appendStr(d, s.Tags)
		case 19:
			s.Vulns = appendStr(d, s.Vulns)
		case 20:
			d.sub(s.Geo.decode)
		case 21:
			if len(s.Data) >= maxListItems {
				d.fail(fmt.Errorf("more than %d data items", maxListItems))
				break
			}
			var k, v string
			d.sub(func(d *decoder) {
				for d.next() {
					switch d.field {
					case 1:
						k = d.str()
					case 2:
						v = d.str()
					default:
						d.skip()
					}
				}
			})
			if s.Data == nil {
				s.Data = map[string]string{}
			}
			s.Data[k] = v
		default:
			d.skip()
		}
	}
}

func (h *HTTP) encode(e *encoder) {
	e.int(1, int64(h.Status))
	e.str(2, h.Title)
	e.str(3, h.Server)
	for _, hd := range h.Headers {
		e.msg(4, func(e *encoder) {
			e.str(1, hd.Name)
			e.str(2, hd.Value)
		})
	}
	e.int(5, int64(h.FaviconHash))
	e.str(6, h.BodySHA256)
	e.str(7, h.Location)
}

func (h *HTTP) decode(d *decoder) {
	for d.next() {
		switch d.field {
		case 1:
			h.Status = int(int32(d.int()))
		case 2:
			h.Title = d.str()
		case 3:
			h.Server = d.str()
		case 4:
			if len(h.Headers) >= maxListItems {
				d.fail(fmt.Errorf("more than %d headers", maxListItems))
				break
			}
			var hd Header
			d.sub(func(d *decoder) {
				for d.next() {
					switch d.field {
					case 1:
						hd.Name = d.str()
					case 2:
						hd.Value = d.str()
					default:
						d.skip()
					}
				}
			})
			h.Headers = append(h.Headers, hd)
		case 5:
			h.FaviconHash = int32(d.int())
		case 6:
			h.BodySHA256 = d.str()
		case 7:
			h.Location = d.str()
		default:
			d.skip()
		}
	}
}

func (t *TLS) encode(e *encoder) {
	e.str(1, t.Version)
	e.str(2, t.Cipher)
	e.str(3, t.JA3S)
	e.str(4, t.SHA256)
	e.str(5, t.Subject)
	e.str(6, t.Issuer)
	e.strs(7, t.SANs)
	e.time(8, t.NotBefore)
	e.time(9, t.NotAfter)
	for _, c := range t.Chain {
		e.bytes(10, c)
	}
}

func (t *TLS) decode(d *decoder) {
	for d.next() {
		switch d.field {
		case 1:
			t.Version = d.str()
		case 2:
			t.Cipher = d.str()
		case 3:
			t.JA3S = d.str()
		case 4:
			t.SHA256 = d.str()
		case 5:
			t.Subject = d.str()
		case 6:
			t.Issuer = d.str()
		case 7:
			t.SANs = appendStr(d, t.SANs)
		case 8:
			t.NotBefore = d.time()
		case 9:
			t.NotAfter = d.time()
		case 10:
			if len(t.Chain) >= 32 {
				d.fail(errors.New("certificate chain longer than 32"))
				break
			}
			t.Chain = append(t.Chain, d.bytes())
		default:
			d.skip()
		}
	}
}

func (s *SSH) encode(e *encoder) {
	e.str(1, s.Banner)
	e.str(2, s.HASSH)
	e.str(3, s.HostKeyType)
	e.str(4, s.HostKeySHA256)
	e.strs(5, s.KexAlgorithms)
}

func (s *SSH) decode(d *decoder) {
	for d.next() {
		switch d.field {
		case 1:
			s.Banner = d.str()
		case 2:
			s.HASSH = d.str()
		case 3:
			s.HostKeyType = d.str()
		case 4:
			s.HostKeySHA256 = d.str()
		case 5:
			s.KexAlgorithms = appendStr(d, s.KexAlgorithms)
		default:
			d.skip()
		}
	}
}

func (g *Geo) encode(e *encoder) {
	e.str(1, g.Country)
	e.uint(2, uint64(g.ASN))
	e.str(3, g.Org)
	e.str(4, g.Label)
}

func (g *Geo) decode(d *decoder) {
	for d.next() {
		switch d.field {
		case 1:
			g.Country = d.str()
		case 2:
			g.ASN = uint32(d.uintN(32))
		case 3:
			g.Org = d.str()
		case 4:
			g.Label = d.str()
		default:
			d.skip()
		}
	}
}

func (ev *Event) encode(e *encoder) {
	e.id(1, ev.ID)
	e.time(2, ev.Time)
	e.str(3, ev.Sensor)
	e.addr(4, ev.Src)
	e.uint(5, uint64(ev.SrcPort))
	e.addr(6, ev.Dst)
	e.uint(7, uint64(ev.DstPort))
	e.str(8, ev.Transport)
	e.uint(9, uint64(ev.ICMPType))
	e.uint(10, uint64(ev.ICMPCode))
	e.uint(11, uint64(ev.TTL))
	e.uint(12, uint64(ev.IPID))
	e.uint(13, uint64(ev.TCPFlags))
	e.uint(14, uint64(ev.TCPWindow))
	e.uint(15, uint64(ev.TCPSeq))
	e.str(16, ev.TCPOptions)
	e.bool(17, ev.Handshake)
	e.bytes(18, ev.Payload)
	e.str(19, ev.HTTPMethod)
	e.str(20, ev.HTTPPath)
	e.str(21, ev.UserAgent)
	e.str(22, ev.JA3)
	e.str(23, ev.HASSH)
	e.str(24, ev.SNI)
	e.str(25, ev.Username)
	e.str(26, ev.Password)
	e.strs(27, ev.Tags)
	e.str(28, ev.Classification)
	e.str(29, ev.Actor)
	if ev.SrcGeo != (Geo{}) {
		e.msg(30, ev.SrcGeo.encode)
	}
	e.str(31, ev.DstCountry)
}

func (ev *Event) decode(d *decoder) {
	for d.next() {
		switch d.field {
		case 1:
			ev.ID = d.id()
		case 2:
			ev.Time = d.time()
		case 3:
			ev.Sensor = d.str()
		case 4:
			ev.Src = d.addr()
		case 5:
			ev.SrcPort = uint16(d.uintN(16))
		case 6:
			ev.Dst = d.addr()
		case 7:
			ev.DstPort = uint16(d.uintN(16))
		case 8:
			ev.Transport = d.str()
		case 9:
			ev.ICMPType = uint8(d.uintN(8))
		case 10:
			ev.ICMPCode = uint8(d.uintN(8))
		case 11:
			ev.TTL = uint8(d.uintN(8))
		case 12:
			ev.IPID = uint16(d.uintN(16))
		case 13:
			ev.TCPFlags = uint8(d.uintN(8))
		case 14:
			ev.TCPWindow = uint16(d.uintN(16))
		case 15:
			ev.TCPSeq = uint32(d.uintN(32))
		case 16:
			ev.TCPOptions = d.str()
		case 17:
			ev.Handshake = d.uint() != 0
		case 18:
			ev.Payload = d.bytes()
		case 19:
			ev.HTTPMethod = d.str()
		case 20:
			ev.HTTPPath = d.str()
		case 21:
			ev.UserAgent = d.str()
		case 22:
			ev.JA3 = d.str()
		case 23:
			ev.HASSH = d.str()
		case 24:
			ev.SNI = d.str()
		case 25:
			ev.Username = d.str()
		case 26:
			ev.Password = d.str()
		case 27:
			ev.Tags = appendStr(d, ev.Tags)
		case 28:
			ev.Classification = d.str()
		case 29:
			ev.Actor = d.str()
		case 30:
			d.sub(ev.SrcGeo.decode)
		case 31:
			ev.DstCountry = d.str()
		default:
			d.skip()
		}
	}
}
