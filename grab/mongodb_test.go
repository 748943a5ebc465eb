package grab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"testing"
	"time"
)

// mongoTB builds BSON documents for the fake server (BSON spec 1.1).
type mongoTB struct{ b []byte }

func (d *mongoTB) key(t byte, k string) *mongoTB {
	d.b = append(d.b, t)
	d.b = append(append(d.b, k...), 0)
	return d
}
func (d *mongoTB) double(k string, v float64) *mongoTB {
	d.key(0x01, k).b = binary.LittleEndian.AppendUint64(d.b, math.Float64bits(v))
	return d
}
func (d *mongoTB) str(k, v string) *mongoTB {
	d.key(0x02, k).b = binary.LittleEndian.AppendUint32(d.b, uint32(len(v)+1))
	d.b = append(append(d.b, v...), 0)
	return d
}
func (d *mongoTB) doc(k string, sub *mongoTB) *mongoTB {
	d.key(0x03, k).b = append(d.b, sub.bytes()...)
	return d
}
func (d *mongoTB) array(k string, sub *mongoTB) *mongoTB {
	d.key(0x04, k).b = append(d.b, sub.bytes()...)
	return d
}
func (d *mongoTB) oid(k string) *mongoTB {
	d.key(0x07, k).b = append(d.b, bytes.Repeat([]byte{0x65}, 12)...)
	return d
}
func (d *mongoTB) boolean(k string, v bool) *mongoTB {
	d.key(0x08, k)
	if v {
		d.b = append(d.b, 1)
	} else {
		d.b = append(d.b, 0)
	}
	return d
}
func (d *mongoTB) date(k string) *mongoTB {
	d.key(0x09, k).b = binary.LittleEndian.AppendUint64(d.b, uint64(1732712345000))
	return d
}
func (d *mongoTB) i32(k string, v int32) *mongoTB {
	d.key(0x10, k).b = binary.LittleEndian.AppendUint32(d.b, uint32(v))
	return d
}
func (d *mongoTB) i64(k string, v int64) *mongoTB {
	d.key(0x12, k).b = binary.LittleEndian.AppendUint64(d.b, uint64(v))
	return d
}
func (d *mongoTB) bytes() []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(d.b)+5))
	return append(append(out, d.b...), 0)
}

// mongoIsMaster is a mongod 7.0 standalone's isMaster reply.
func mongoIsMaster(wire int32) []byte {
	d := &mongoTB{}
	d.boolean("helloOk", true).boolean("ismaster", true)
	d.doc("topologyVersion", (&mongoTB{}).oid("processId").i64("counter", 0))
	d.i32("maxBsonObjectSize", 16777216).i32("maxMessageSizeBytes", 48000000).i32("maxWriteBatchSize", 100000)
	d.date("localTime").i32("logicalSessionTimeoutMinutes", 30).i32("connectionId", 12)
	d.i32("minWireVersion", 0).i32("maxWireVersion", wire).boolean("readOnly", false).double("ok", 1)
	return d.bytes()
}

func mongoSecondary() []byte {
	d := &mongoTB{}
	d.str("setName", "rs0").i64("setVersion", 3).boolean("ismaster", false).boolean("secondary", true)
	d.array("hosts", (&mongoTB{}).str("0", "db1.example.test:27017").str("1", "db2.example.test:27017"))
	d.str("primary", "db1.example.test:27017").str("me", "db2.example.test:27017")
	d.i32("minWireVersion", 0).i32("maxWireVersion", 17).double("ok", 1)
	return d.bytes()
}

func mongoBuildInfoDoc(version string) []byte {
	d := &mongoTB{}
	d.str("version", version).str("gitVersion", "ce59cfc6a3c5e5c067dca0d30697edd68d4f5188")
	d.array("modules", &mongoTB{}).str("allocator", "tcmalloc").str("javascriptEngine", "mozjs").str("sysInfo", "deprecated")
	d.array("versionArray", (&mongoTB{}).i32("0", 7).i32("1", 0).i32("2", 14).i32("3", 0))
	d.doc("openssl", (&mongoTB{}).str("running", "OpenSSL 3.0.2 15 Mar 2022").str("compiled", "OpenSSL 3.0.2 15 Mar 2022"))
	d.i32("bits", 64).boolean("debug", false).i32("maxBsonObjectSize", 16777216)
	d.array("storageEngines", (&mongoTB{}).str("0", "devnull").str("1", "wiredTiger")).double("ok", 1)
	return d.bytes()
}

func mongoUnauthorized() []byte {
	d := &mongoTB{}
	d.double("ok", 0).str("errmsg", "command buildInfo requires authentication").i32("code", 13).str("codeName", "Unauthorized")
	return d.bytes()
}

// mongoFake plays mongod. It answers OP_QUERY on admin.$cmd with
// OP_REPLY, and OP_MSG (only when opMsg, as from 3.6 on) with OP_MSG;
// reply picks the document by the command's name.
type mongoFake struct {
	opMsg     bool
	noOpQuery bool // OP_MSG only: OP_QUERY gets the connection closed
	reply     func(cmd string) []byte

	mu   sync.Mutex
	ops  []int32
	errs []error
}

func (f *mongoFake) handle(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for range 4 {
		hdr := make([]byte, 16)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		n := int32(binary.LittleEndian.Uint32(hdr))
		reqID := int32(binary.LittleEndian.Uint32(hdr[4:]))
		op := int32(binary.LittleEndian.Uint32(hdr[12:]))
		if n < 16+5 || n > 48000000 || op != mongoOpQuery && op != mongoOpMsg {
			return // not a message mongod would read: it drops the connection
		}
		body := make([]byte, n-16)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		f.mu.Lock()
		f.ops = append(f.ops, op)
		f.mu.Unlock()
		var doc []byte
		if op == mongoOpQuery && f.noOpQuery {
			return
		}
		if op == mongoOpQuery {
			// flags, "admin.$cmd", skip, return, query
			if len(body) < 4+11+8 || string(body[4:15]) != "admin.$cmd\x00" {
				f.fail(errors.New("OP_QUERY not on admin.$cmd"))
				return
			}
			doc = body[23:]
		} else {
			if !f.opMsg {
				return // before 3.6: "unknown opcode", connection closed
			}
			if len(body) < 5 || binary.LittleEndian.Uint32(body) != 0 || body[4] != 0 {
				f.fail(errors.New("OP_MSG flags or section kind"))
				return
			}
			doc = body[5:]
			if !bytes.Contains(doc, []byte("\x02$db\x00\x06\x00\x00\x00admin\x00")) {
				f.fail(errors.New("OP_MSG without $db admin"))
			}
		}
		// the command is the first element's name
		if len(doc) < 6 {
			f.fail(errors.New("empty command"))
			return
		}
		name, _, _ := bytes.Cut(doc[5:], []byte{0})
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		out := f.reply(string(name))
		if out == nil {
			f.fail(errors.New("unexpected command " + string(name)))
			return
		}
		var msg []byte
		if op == mongoOpQuery {
			msg = mongoHeader(nil, 16+20+len(out), 99, mongoOpReply)
			msg = binary.LittleEndian.AppendUint32(msg, 8) // AwaitCapable
			msg = binary.LittleEndian.AppendUint64(msg, 0) // cursorID
			msg = binary.LittleEndian.AppendUint32(msg, 0) // startingFrom
			msg = binary.LittleEndian.AppendUint32(msg, 1) // numberReturned
		} else {
			msg = mongoHeader(nil, 16+5+len(out), 99, mongoOpMsg)
			msg = binary.LittleEndian.AppendUint32(msg, 0)
			msg = append(msg, 0)
		}
		binary.LittleEndian.PutUint32(msg[8:], uint32(reqID)) // responseTo
		c.Write(append(msg, out...))
	}
}

func (f *mongoFake) fail(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
}

func TestMongoDB(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fake    *mongoFake
		port    uint16
		proto   string
		want    string
		product string
		version string
		data    map[string]string
		ops     []int32
	}{
		{
			name: "mongod 7.0",
			fake: &mongoFake{opMsg: true, reply: func(cmd string) []byte {
				switch cmd {
				case "isMaster":
					return mongoIsMaster(21)
				case "buildInfo":
					return mongoBuildInfoDoc("7.0.14")
				}
				return nil
			}},
			port: 27017, want: "mongodb", product: "MongoDB", version: "7.0.14",
			data: map[string]string{"mongodb.max_wire_version": "21", "mongodb.min_wire_version": "0",
				"mongodb.is_writable_primary": "true", "mongodb.read_only": "false",
				"mongodb.git_version": "ce59cfc6a3c5e5c067dca0d30697edd68d4f5188"},
			ops: []int32{mongoOpQuery, mongoOpMsg},
		},
		{
			name: "mongod 3.4 has no OP_MSG",
			fake: &mongoFake{reply: func(cmd string) []byte {
				switch cmd {
				case "isMaster":
					return mongoIsMaster(5)
				case "buildInfo":
					return mongoBuildInfoDoc("3.4.24")
				}
				return nil
			}},
			proto: "mongodb", want: "mongodb", product: "MongoDB", version: "3.4.24",
			data: map[string]string{"mongodb.max_wire_version": "5"},
			ops:  []int32{mongoOpQuery, mongoOpQuery},
		},
		{
			name: "secondary, blind on another port",
			fake: &mongoFake{opMsg: true, reply: func(cmd string) []byte {
				switch cmd {
				case "isMaster":
					return mongoSecondary()
				case "buildInfo":
					return mongoBuildInfoDoc("6.0.19")
				}
				return nil
			}},
			want: "mongodb", product: "MongoDB", version: "6.0.19",
			data: map[string]string{"mongodb.set_name": "rs0", "mongodb.secondary": "true", "mongodb.is_writable_primary": "false"},
		},
		{
			name: "buildInfo wants authentication",
			fake: &mongoFake{opMsg: true, reply: func(cmd string) []byte {
				if cmd == "isMaster" {
					return mongoIsMaster(25)
				}
				return mongoUnauthorized()
			}},
			port: 27017, want: "mongodb",
			data: map[string]string{"mongodb.max_wire_version": "25", "mongodb.buildinfo_error": "command buildInfo requires authentication"},
		},
		{
			name: "OP_MSG only: hello on a second connection",
			fake: &mongoFake{opMsg: true, noOpQuery: true, reply: func(cmd string) []byte {
				switch cmd {
				case "hello":
					return mongoIsMaster(27)
				case "buildInfo":
					return mongoBuildInfoDoc("9.0.0")
				}
				return nil
			}},
			port: 27017, want: "mongodb", product: "MongoDB", version: "9.0.0",
			data: map[string]string{"mongodb.max_wire_version": "27"},
			ops:  []int32{mongoOpQuery, mongoOpMsg, mongoOpMsg},
		},
		{
			name: "a framed reply that says nothing",
			fake: &mongoFake{reply: func(cmd string) []byte {
				return (&mongoTB{}).str("hello", "world").bytes()
			}},
			proto: "mongodb", want: "unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, tt.fake.handle)
			port := tt.port
			if port == 0 {
				port = addr.Port()
			}
			out := dbtGrab(t, addr, dbtTarget(port, tt.proto), 3*time.Second)
			if out.err != nil {
				t.Fatal(out.err)
			}
			f := tt.fake
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, err := range f.errs {
				t.Error(err)
			}
			svc := out.svc
			if svc.Protocol != tt.want || svc.Product != tt.product || svc.Version != tt.version {
				t.Fatalf("got %q %q %q, want %q %q %q (%v)", svc.Protocol, svc.Product, svc.Version, tt.want, tt.product, tt.version, svc.Data)
			}
			for k, v := range tt.data {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q", k, svc.Data[k], v)
				}
			}
			if tt.ops != nil && !equalInt32s(f.ops, tt.ops) {
				t.Errorf("opcodes %v, want %v", f.ops, tt.ops)
			}
		})
	}
}

func equalInt32s(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMongoDBHostile(t *testing.T) {
	t.Parallel()
	// a header that answers our request but announces 2 GB
	huge := func(c net.Conn) {
		hdr := make([]byte, 16)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		rest := make([]byte, binary.LittleEndian.Uint32(hdr)-16)
		io.ReadFull(c, rest)
		out := mongoHeader(nil, 0x7fffffff, 1, mongoOpReply)
		copy(out[8:12], hdr[4:8])
		c.Write(out)
		dbtHold(c)
	}
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"2 GB reply", huge},
		{"endless bytes", dbtEndless(nil)},
		{"slow drip", dbtDrip(mongoIsMaster(21))},
		{"silent", dbtHold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, tt.handle)
			out := dbtGrab(t, addr, dbtTarget(27017, "mongodb"), 1500*time.Millisecond)
			if out.took > 3*time.Second {
				t.Fatalf("took %v", out.took)
			}
			if out.svc.Protocol == "mongodb" {
				t.Fatalf("identified %+v", out.svc)
			}
		})
	}
}

func TestMongoReplyParse(t *testing.T) {
	doc := mongoBuildInfoDoc("8.0.3")
	// OP_MSG with a checksum and a document sequence before the body
	seq := append(binary.LittleEndian.AppendUint32(nil, uint32(4+len("docs\x00")+len(doc))), "docs\x00"...)
	seq = append(seq, doc...)
	body := binary.LittleEndian.AppendUint32(nil, 1) // checksumPresent
	body = append(append(body, 1), seq...)
	body = append(append(body, 0), doc...)
	body = append(body, 0xde, 0xad, 0xbe, 0xef)
	msg := append(mongoHeader(nil, 16+len(body), 5, mongoOpMsg), body...)
	binary.LittleEndian.PutUint32(msg[8:], 7)
	got, err := parseMongoReply(msg, 7)
	if err != nil || got["version"].str != "8.0.3" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := parseMongoReply(msg, 8); !errors.Is(err, ErrNotMine) {
		t.Fatalf("wrong responseTo: %v", err)
	}
	v, n, err := parseBSON(doc)
	if err != nil || n != len(doc) || v["bits"].num != 64 || v["debug"].typ != 0x08 || v["versionArray"].typ != 0x04 {
		t.Fatalf("%v %d %v", v, n, err)
	}
	for _, bad := range [][]byte{
		{5, 0, 0, 0, 1},                            // not terminated
		{4, 0, 0, 0},                               // too short
		{0xff, 0xff, 0xff, 0x7f, 0},                // longer than the input
		{12, 0, 0, 0, 0x02, 'a', 0, 9, 0, 0, 0, 0}, // string past the end
		{10, 0, 0, 0, 0x08, 'a', 0, 2, 0, 0},       // boolean 2
		{10, 0, 0, 0, 0x42, 'a', 0, 0, 0, 0},       // unknown type
	} {
		if _, _, err := parseBSON(bad); err == nil {
			t.Errorf("% x parsed", bad)
		}
	}
}

func FuzzBSON(f *testing.F) {
	f.Add(mongoIsMaster(21))
	f.Add(mongoBuildInfoDoc("7.0.14"))
	f.Add(mongoUnauthorized())
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, n, err := parseBSON(b)
		if err != nil {
			return
		}
		if n < 5 || n > len(b) || len(doc) > mongoMaxElems {
			t.Fatalf("document of %d bytes, %d elements, from %d", n, len(doc), len(b))
		}
		r := &Result{}
		mongoHello(r, doc)
		mongoBuildInfo(r, doc)
		if len(r.Version) > 64 {
			t.Fatalf("version %q", r.Version)
		}
	})
}

func FuzzMongoReply(f *testing.F) {
	reply := func(doc []byte) []byte {
		m := mongoHeader(nil, 16+20+len(doc), 1, mongoOpReply)
		binary.LittleEndian.PutUint32(m[8:], 3)
		m = binary.LittleEndian.AppendUint32(m, 0)
		m = binary.LittleEndian.AppendUint64(m, 0)
		m = binary.LittleEndian.AppendUint32(m, 0)
		m = binary.LittleEndian.AppendUint32(m, 1)
		return append(m, doc...)
	}
	f.Add(reply(mongoIsMaster(21)))
	f.Add(reply(mongoSecondary()))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseMongoReply(b, 3)
	})
}
