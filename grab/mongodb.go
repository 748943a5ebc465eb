package grab

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"syscall"
)

// MongoDB wire protocol: the client speaks first. The handshake every
// driver opens with is an OP_QUERY {isMaster: 1} on admin.$cmd: servers
// of every version answer it, before authentication (5.1 and later
// accept OP_QUERY for nothing else). The reply tells the wire versions
// and the node's role. Then {buildInfo: 1}, also allowed before
// authentication, as OP_MSG when the server speaks it (wire version 6,
// MongoDB 3.6) and as OP_QUERY otherwise, tells the version. Should a
// server on MongoDB's own port hang up on OP_QUERY, a second connection
// says hello in OP_MSG.
func init() {
	Register(Module{
		Name:  "mongodb",
		Ports: []uint16{27017},
		Rank:  65,
		Grab:  grabMongoDB,
	})
}

const (
	mongoOpReply  = 1
	mongoOpQuery  = 2004
	mongoOpMsg    = 2013
	mongoMaxReply = 64 << 10 // an isMaster reply is a few hundred bytes
	mongoMaxElems = 256      // elements read from one document
)

// bsonValue is a scalar BSON value; documents, arrays and the rest are
// skipped and keep only their type.
type bsonValue struct {
	typ byte
	str string
	num float64 // double, int32, int64
	b   bool
}

func (v bsonValue) int() (int64, bool) {
	switch v.typ {
	case 0x01, 0x10, 0x12:
		if v.num >= -1e15 && v.num <= 1e15 && v.num == math.Trunc(v.num) {
			return int64(v.num), true
		}
	}
	return 0, false
}

// truthy is BSON's idea of true for flags: a true boolean or a
// non-zero number.
func (v bsonValue) truthy() bool {
	switch v.typ {
	case 0x08:
		return v.b
	case 0x01, 0x10, 0x12:
		return v.num != 0
	}
	return false
}

// parseBSON reads the document at the start of b: int32 total length,
// elements, a zero byte. Top-level scalars are kept (the first of a
// repeated name); nested documents and arrays are checked for length
// and skipped. It returns the bytes the document took.
func parseBSON(b []byte) (map[string]bsonValue, int, error) {
	if len(b) < 5 {
		return nil, 0, errors.New("bson: short document")
	}
	n := int(int32(binary.LittleEndian.Uint32(b)))
	if n < 5 || n > len(b) {
		return nil, 0, fmt.Errorf("bson: document length %d of %d bytes", n, len(b))
	}
	if b[n-1] != 0 {
		return nil, 0, errors.New("bson: document not terminated")
	}
	out := map[string]bsonValue{}
	p := b[4 : n-1]
	for range mongoMaxElems {
		if len(p) == 0 {
			return out, n, nil
		}
		typ := p[0]
		i := bytes.IndexByte(p[1:], 0)
		if i < 0 {
			return nil, 0, errors.New("bson: element name not terminated")
		}
		name := string(p[1 : 1+i])
		p = p[2+i:]
		v, size, err := bsonElement(typ, p)
		if err != nil {
			return nil, 0, fmt.Errorf("bson: %q: %w", name, err)
		}
		p = p[size:]
		if _, dup := out[name]; !dup {
			out[name] = v
		}
	}
	return out, n, fmt.Errorf("bson: more than %d elements", mongoMaxElems)
}

// bsonElement reads one value of type typ at the start of p.
func bsonElement(typ byte, p []byte) (bsonValue, int, error) {
	v := bsonValue{typ: typ}
	fixed := func(k int) (bsonValue, int, error) {
		if len(p) < k {
			return v, 0, errors.New("value past the end")
		}
		return v, k, nil
	}
	// lenPrefixed is a value led by its int32 length; extra bytes
	// follow the length (the binary subtype) and min is the smallest
	// length allowed
	lenPrefixed := func(extra, min int) (int, error) {
		if len(p) < 4 {
			return 0, errors.New("length past the end")
		}
		l := int(int32(binary.LittleEndian.Uint32(p)))
		if l < min || l > len(p)-4-extra {
			return 0, fmt.Errorf("length %d", l)
		}
		return 4 + extra + l, nil
	}
	switch typ {
	case 0x01: // double
		if len(p) < 8 {
			return v, 0, errors.New("value past the end")
		}
		v.num = math.Float64frombits(binary.LittleEndian.Uint64(p))
		return v, 8, nil
	case 0x02, 0x0D, 0x0E: // string, JavaScript code, symbol
		n, err := lenPrefixed(0, 1)
		if err != nil {
			return v, 0, err
		}
		if p[n-1] != 0 {
			return v, 0, errors.New("string not terminated")
		}
		if n-5 <= 1024 {
			v.str = string(p[4 : n-1])
		}
		return v, n, nil
	case 0x03, 0x04: // document, array: checked by length only
		if len(p) < 5 {
			return v, 0, errors.New("value past the end")
		}
		l := int(int32(binary.LittleEndian.Uint32(p)))
		if l < 5 || l > len(p) || p[l-1] != 0 {
			return v, 0, fmt.Errorf("embedded document length %d", l)
		}
		return v, l, nil
	case 0x05: // binary: length, subtype, bytes
		n, err := lenPrefixed(1, 0)
		return v, n, err
	case 0x06, 0x0A, 0x7F, 0xFF: // undefined, null, max key, min key
		return v, 0, nil
	case 0x07: // ObjectId
		return fixed(12)
	case 0x08: // boolean
		if len(p) < 1 || p[0] > 1 {
			return v, 0, errors.New("bad boolean")
		}
		v.b = p[0] == 1
		return v, 1, nil
	case 0x09, 0x11: // UTC datetime, timestamp
		return fixed(8)
	case 0x0B: // regular expression: two cstrings
		i := bytes.IndexByte(p, 0)
		if i < 0 {
			return v, 0, errors.New("regex not terminated")
		}
		j := bytes.IndexByte(p[i+1:], 0)
		if j < 0 {
			return v, 0, errors.New("regex options not terminated")
		}
		return v, i + j + 2, nil
	case 0x0C: // DBPointer: string, ObjectId
		n, err := lenPrefixed(0, 1)
		if err != nil || n+12 > len(p) {
			return v, 0, errors.New("DBPointer past the end")
		}
		return v, n + 12, nil
	case 0x0F: // code with scope: int32 total, string, document
		if len(p) < 4 {
			return v, 0, errors.New("value past the end")
		}
		l := int(int32(binary.LittleEndian.Uint32(p)))
		if l < 14 || l > len(p) {
			return v, 0, fmt.Errorf("code with scope length %d", l)
		}
		return v, l, nil
	case 0x10: // int32
		if len(p) < 4 {
			return v, 0, errors.New("value past the end")
		}
		v.num = float64(int32(binary.LittleEndian.Uint32(p)))
		return v, 4, nil
	case 0x12: // int64
		if len(p) < 8 {
			return v, 0, errors.New("value past the end")
		}
		v.num = float64(int64(binary.LittleEndian.Uint64(p)))
		return v, 8, nil
	case 0x13: // decimal128
		return fixed(16)
	}
	return v, 0, fmt.Errorf("unknown element type %#x", typ)
}

// bsonDoc is a BSON document writer for the few commands we send: int32
// values and strings.
type bsonDoc []byte

func (d bsonDoc) int32(name string, v int32) bsonDoc {
	d = append(d, 0x10)
	d = append(append(d, name...), 0)
	return binary.LittleEndian.AppendUint32(d, uint32(v))
}

func (d bsonDoc) bool(name string, v bool) bsonDoc {
	d = append(d, 0x08)
	d = append(append(d, name...), 0)
	if v {
		return append(d, 1)
	}
	return append(d, 0)
}

func (d bsonDoc) string(name, v string) bsonDoc {
	d = append(d, 0x02)
	d = append(append(d, name...), 0)
	d = binary.LittleEndian.AppendUint32(d, uint32(len(v)+1))
	return append(append(d, v...), 0)
}

func (d bsonDoc) bytes() []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(4+len(d)+1))
	return append(append(out, d...), 0)
}

// mongoHeader is the MsgHeader that leads every message.
func mongoHeader(b []byte, length int, requestID int32, opCode int32) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(length))
	b = binary.LittleEndian.AppendUint32(b, uint32(requestID))
	b = binary.LittleEndian.AppendUint32(b, 0) // responseTo
	return binary.LittleEndian.AppendUint32(b, uint32(opCode))
}

// mongoQuery builds an OP_QUERY of a command on admin.$cmd.
func mongoQuery(requestID int32, cmd []byte) []byte {
	const coll = "admin.$cmd"
	n := 16 + 4 + len(coll) + 1 + 4 + 4 + len(cmd)
	b := mongoHeader(make([]byte, 0, n), n, requestID, mongoOpQuery)
	b = binary.LittleEndian.AppendUint32(b, 0) // flags
	b = append(append(b, coll...), 0)
	b = binary.LittleEndian.AppendUint32(b, 0)          // numberToSkip
	b = binary.LittleEndian.AppendUint32(b, 0xffffffff) // numberToReturn -1: one batch, close the cursor
	return append(b, cmd...)
}

// mongoMsg builds an OP_MSG with one body section.
func mongoMsg(requestID int32, cmd []byte) []byte {
	n := 16 + 4 + 1 + len(cmd)
	b := mongoHeader(make([]byte, 0, n), n, requestID, mongoOpMsg)
	b = binary.LittleEndian.AppendUint32(b, 0) // flagBits
	b = append(b, 0)                           // section kind 0: body
	return append(b, cmd...)
}

// parseMongoReply reads a reply message to requestID (its whole bytes,
// header included) and returns the first document it carries.
func parseMongoReply(b []byte, requestID int32) (map[string]bsonValue, error) {
	if len(b) < 16 {
		return nil, NotMine("short MongoDB reply")
	}
	n := int(int32(binary.LittleEndian.Uint32(b)))
	respTo := int32(binary.LittleEndian.Uint32(b[8:]))
	op := int32(binary.LittleEndian.Uint32(b[12:]))
	if n != len(b) || respTo != requestID || op != mongoOpReply && op != mongoOpMsg {
		return nil, NotMine("not a MongoDB reply: length %d, responseTo %d, opCode %d", n, respTo, op)
	}
	p := b[16:]
	switch op {
	case mongoOpReply:
		// responseFlags 4, cursorID 8, startingFrom 4, numberReturned 4
		if len(p) < 20+5 {
			return nil, NotMine("OP_REPLY without a document")
		}
		if nr := int32(binary.LittleEndian.Uint32(p[16:])); nr < 1 {
			return nil, NotMine("OP_REPLY with %d documents", nr)
		}
		doc, _, err := parseBSON(p[20:])
		if err != nil {
			return nil, NotMine("OP_REPLY: %v", err)
		}
		return doc, nil
	default:
		if len(p) < 4 {
			return nil, NotMine("OP_MSG without flags")
		}
		flags := binary.LittleEndian.Uint32(p)
		p = p[4:]
		if flags&1 != 0 { // checksumPresent: CRC-32C at the end
			if len(p) < 4 {
				return nil, NotMine("OP_MSG checksum missing")
			}
			p = p[:len(p)-4]
		}
		for range 8 {
			if len(p) == 0 {
				break
			}
			kind := p[0]
			p = p[1:]
			switch kind {
			case 0:
				doc, _, err := parseBSON(p)
				if err != nil {
					return nil, NotMine("OP_MSG: %v", err)
				}
				return doc, nil
			case 1: // document sequence: int32 size, identifier, documents
				if len(p) < 4 {
					return nil, NotMine("OP_MSG sequence cut short")
				}
				l := int(int32(binary.LittleEndian.Uint32(p)))
				if l < 4 || l > len(p) {
					return nil, NotMine("OP_MSG sequence length %d", l)
				}
				p = p[l:]
			default:
				return nil, NotMine("OP_MSG section kind %d", kind)
			}
		}
		return nil, NotMine("OP_MSG without a body")
	}
}

// mongoRoundTrip sends msg and reads the reply to requestID.
func mongoRoundTrip(s *Session, msg []byte, requestID int32) (map[string]bsonValue, []byte, error) {
	if err := s.Write(msg); err != nil {
		return nil, nil, err
	}
	hdr, err := s.ReadFull(16)
	if err != nil {
		return nil, nil, err
	}
	n := int(int32(binary.LittleEndian.Uint32(hdr)))
	respTo := int32(binary.LittleEndian.Uint32(hdr[8:]))
	op := int32(binary.LittleEndian.Uint32(hdr[12:]))
	if respTo != requestID || op != mongoOpReply && op != mongoOpMsg || n < 16+5 {
		return nil, nil, NotMine("not a MongoDB reply: % x", hdr)
	}
	if n > mongoMaxReply {
		return nil, nil, fmt.Errorf("%w: MongoDB reply of %d bytes", ErrTooLarge, n)
	}
	body, err := s.ReadFull(n - 16)
	if err != nil {
		return nil, nil, err
	}
	raw := append(bytes.Clone(hdr), body...)
	doc, err := parseMongoReply(raw, requestID)
	return doc, raw, err
}

func grabMongoDB(ctx context.Context, s *Session) (*Result, error) {
	id := int32(rand.Uint32() & 0x3fffffff)
	hello := bsonDoc{}.int32("isMaster", 1).bool("helloOk", true).bytes()
	doc, raw, err := mongoRoundTrip(s, mongoQuery(id, hello), id)
	own := s.Target.Protocol == "mongodb" || s.Target.Addr.Port() == 27017
	if err != nil && own && mongoHungUp(err) {
		// a server that takes OP_MSG only and hung up on OP_QUERY: say
		// hello again, on a new connection
		again, rerr := s.Redial(ctx)
		if rerr != nil {
			return nil, err
		}
		defer again.Close()
		s = again
		msg := mongoMsg(id, bsonDoc{}.int32("hello", 1).string("$db", "admin").bytes())
		doc, raw, err = mongoRoundTrip(s, msg, id)
	}
	if err != nil {
		return nil, err
	}
	_, hasOK := doc["ok"]
	_, hasWire := doc["maxWireVersion"]
	_, hasMaster := doc["ismaster"]
	if !hasOK && !hasWire && !hasMaster {
		return nil, NotMine("MongoDB-framed reply without ok, ismaster or maxWireVersion")
	}
	r := &Result{Protocol: "mongodb", Banner: raw[:min(len(raw), 2048)]}
	mongoHello(r, doc)
	// buildInfo: OP_MSG from wire version 6 on, OP_QUERY before
	wire, _ := doc["maxWireVersion"].int()
	bi := bsonDoc{}.int32("buildInfo", 1)
	var msg []byte
	if wire >= 6 {
		msg = mongoMsg(id+1, bi.string("$db", "admin").bytes())
	} else {
		msg = mongoQuery(id+1, bi.bytes())
	}
	if info, _, err := mongoRoundTrip(s, msg, id+1); err == nil {
		mongoBuildInfo(r, info)
	}
	return r, nil
}

// mongoHungUp reports whether the server closed the connection on us,
// as a server does with a message it will not take.
func mongoHungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// mongoHello records what the isMaster reply says.
func mongoHello(r *Result, doc map[string]bsonValue) {
	for _, k := range []struct{ field, key string }{
		{"maxWireVersion", "mongodb.max_wire_version"},
		{"minWireVersion", "mongodb.min_wire_version"},
	} {
		if v, ok := doc[k.field].int(); ok {
			r.Set(k.key, strconv.FormatInt(v, 10))
		}
	}
	primary, ok := doc["isWritablePrimary"]
	if !ok {
		primary, ok = doc["ismaster"]
	}
	if ok {
		r.Set("mongodb.is_writable_primary", strconv.FormatBool(primary.truthy()))
	}
	if v, ok := doc["secondary"]; ok {
		r.Set("mongodb.secondary", strconv.FormatBool(v.truthy()))
	}
	if v := doc["setName"]; v.typ == 0x02 && mongoPrintable(v.str) {
		r.Set("mongodb.set_name", v.str)
	}
	if v := doc["msg"]; v.typ == 0x02 && mongoPrintable(v.str) {
		r.Set("mongodb.msg", v.str) // "isdbgrid" from a mongos router
	}
	if v, ok := doc["readOnly"]; ok {
		r.Set("mongodb.read_only", strconv.FormatBool(v.truthy()))
	}
	if v := doc["errmsg"]; v.typ == 0x02 && mongoPrintable(v.str) {
		r.Set("mongodb.error", v.str)
	}
}

// mongoBuildInfo records the version buildInfo states; an error reply
// ("command buildInfo requires authentication") is kept as such.
func mongoBuildInfo(r *Result, doc map[string]bsonValue) {
	if v := doc["version"]; v.typ == 0x02 && v.str != "" && len(v.str) <= 64 && mongoPrintable(v.str) {
		r.Product, r.Version = "MongoDB", v.str
	}
	if v := doc["gitVersion"]; v.typ == 0x02 && len(v.str) <= 64 && mongoPrintable(v.str) {
		r.Set("mongodb.git_version", v.str)
	}
	if v := doc["errmsg"]; v.typ == 0x02 && mongoPrintable(v.str) {
		r.Set("mongodb.buildinfo_error", v.str)
	}
}

func mongoPrintable(s string) bool {
	return len(s) <= 256 && mysqlPrintable([]byte(s))
}
