package grab

import (
	"bytes"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// smbFake is an SMB2 server on direct TCP that checks the NEGOTIATE
// request against MS-SMB2 2.2.3 and answers as 2.2.4 describes.
type smbFake struct {
	// respond builds the SMB message (without NetBIOS header) answering a
	// valid request that offered dialects; nil closes.
	respond func(dialects []uint16) []byte
	raw     func(c net.Conn)
	bad     chan string // request defects found
}

func newSMBFake(t *testing.T, f *smbFake) netip.AddrPort {
	t.Helper()
	f.bad = make(chan string, 16)
	t.Cleanup(func() {
		select {
		case msg := <-f.bad:
			t.Errorf("fake server: request defect: %s", msg)
		default:
		}
	})
	return fakeServer(t, f.serve)
}

func (f *smbFake) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if f.raw != nil {
		f.raw(c)
		return
	}
	h := make([]byte, 4)
	if _, err := io.ReadFull(c, h); err != nil || h[0] != 0 {
		return
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	if n < 64 || n > 4096 {
		return
	}
	m := make([]byte, n)
	if _, err := io.ReadFull(c, m); err != nil || !bytes.HasPrefix(m, []byte{0xfe, 'S', 'M', 'B'}) {
		return
	}
	dialects, err := smbCheckNegotiate(m)
	if err != nil {
		f.bad <- err.Error()
		return
	}
	resp := f.respond(dialects)
	if resp == nil {
		return
	}
	out := []byte{0, byte(len(resp) >> 16), byte(len(resp) >> 8), byte(len(resp))}
	c.Write(append(out, resp...))
	io.Copy(io.Discard, c)
}

// smbCheckNegotiate validates an SMB2 NEGOTIATE request the way a server
// must before answering, and returns the dialects offered.
func smbCheckNegotiate(m []byte) ([]uint16, error) {
	le := binary.LittleEndian
	if le.Uint16(m[4:]) != 64 || le.Uint16(m[12:]) != 0 {
		return nil, errors.New("header: structure size or command")
	}
	body := m[64:]
	if len(body) < 36 || le.Uint16(body) != 36 {
		return nil, errors.New("body structure size")
	}
	count := int(le.Uint16(body[2:]))
	if body[4]&1 == 0 {
		return nil, errors.New("signing not enabled in security mode")
	}
	if 36+2*count > len(body) {
		return nil, errors.New("dialects truncated")
	}
	var dialects []uint16
	has311 := false
	for i := range count {
		d := le.Uint16(body[36+2*i:])
		dialects = append(dialects, d)
		has311 = has311 || d == 0x0311
	}
	if !has311 {
		return dialects, nil
	}
	off, cnt := int(le.Uint32(body[28:])), int(le.Uint16(body[32:]))
	if off%8 != 0 || off < 64+36+2*count {
		return nil, fmt.Errorf("context offset %d", off)
	}
	seen := map[uint16]bool{}
	for i := range cnt {
		if off+8 > len(m) {
			return nil, fmt.Errorf("context %d outside", i)
		}
		typ, dl := le.Uint16(m[off:]), int(le.Uint16(m[off+2:]))
		if off+8+dl > len(m) {
			return nil, fmt.Errorf("context %d truncated", i)
		}
		d := m[off+8 : off+8+dl]
		switch typ {
		case 1:
			if le.Uint16(d) < 1 || le.Uint16(d[4:]) != 1 || int(le.Uint16(d[2:])) != len(d)-4-2*int(le.Uint16(d)) {
				return nil, errors.New("preauth context: want SHA-512 and a consistent salt")
			}
		case 2:
			if le.Uint16(d) < 1 || 2+2*int(le.Uint16(d)) != len(d) {
				return nil, errors.New("encryption context")
			}
		}
		seen[typ] = true
		off = (off + 8 + dl + 7) &^ 7
	}
	if !seen[1] || !seen[2] {
		return nil, errors.New("3.1.1 offered without preauth and encryption contexts")
	}
	return dialects, nil
}

// smbSPNEGO builds a NegTokenInit as servers send in the NEGOTIATE
// response: GSS-API framing, SPNEGO OID, mechTypes and (like Windows and
// Samba) the negHints hint name.
func smbSPNEGO(mechs ...asn1.ObjectIdentifier) []byte {
	der := func(tag byte, parts ...[]byte) []byte {
		c := bytes.Join(parts, nil)
		out := []byte{tag}
		switch n := len(c); {
		case n < 0x80:
			out = append(out, byte(n))
		case n < 0x100:
			out = append(out, 0x81, byte(n))
		default:
			out = append(out, 0x82, byte(n>>8), byte(n))
		}
		return append(out, c...)
	}
	oid := func(o asn1.ObjectIdentifier) []byte {
		b, _ := asn1.Marshal(o)
		return b
	}
	var list [][]byte
	for _, m := range mechs {
		list = append(list, oid(m))
	}
	init := der(0x30,
		der(0xa0, der(0x30, list...)),
		der(0xa3, der(0x30, der(0xa0, der(0x1b, []byte("not_defined_in_RFC4178@please_ignore"))))),
	)
	return der(0x60, oid(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 2}), der(0xa0, init))
}

var (
	smbOIDNTLM   = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 2, 10}
	smbOIDKRB5   = asn1.ObjectIdentifier{1, 2, 840, 113554, 1, 2, 2}
	smbOIDMSKRB5 = asn1.ObjectIdentifier{1, 2, 840, 48018, 1, 2, 2}
	smbOIDNEGOEX = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 2, 30}
	smbTestTime  = uint64(133500000000000000)
)

// smb2Response builds an SMB2 NEGOTIATE response (MS-SMB2 2.2.4).
type smb2Response struct {
	status   uint32
	mode     uint16
	dialect  uint16
	caps     uint32
	maxSize  uint32
	start    uint64
	blob     []byte
	contexts [][]byte // complete contexts (type, length, reserved, data)
}

func smbContext(typ uint16, data []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, typ)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
	b = append(b, 0, 0, 0, 0)
	return append(b, data...)
}

func (r smb2Response) bytes() []byte {
	le := binary.LittleEndian
	h := make([]byte, 64)
	copy(h, []byte{0xfe, 'S', 'M', 'B'})
	le.PutUint16(h[4:], 64)
	le.PutUint32(h[8:], r.status)
	le.PutUint16(h[14:], 1) // credits granted
	le.PutUint32(h[16:], 1) // SMB2_FLAGS_SERVER_TO_REDIR
	if r.status != 0 {
		// SMB2 ERROR response, 2.2.2
		return append(h, 9, 0, 0, 0, 0, 0, 0, 0, 0)
	}
	b := le.AppendUint16(h, 65)
	b = le.AppendUint16(b, r.mode)
	b = le.AppendUint16(b, r.dialect)
	b = le.AppendUint16(b, uint16(len(r.contexts)))
	b = append(b, 0x4d, 0x3c, 0x2b, 0x1a, 0x6f, 0x5e, 0x81, 0x70, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8, 0x09)
	b = le.AppendUint32(b, r.caps)
	b = le.AppendUint32(b, r.maxSize)
	b = le.AppendUint32(b, r.maxSize)
	b = le.AppendUint32(b, r.maxSize)
	b = le.AppendUint64(b, smbTestTime)
	b = le.AppendUint64(b, r.start)
	b = le.AppendUint16(b, 128)
	b = le.AppendUint16(b, uint16(len(r.blob)))
	ctxOffPos := len(b)
	b = le.AppendUint32(b, 0)
	b = append(b, r.blob...)
	for i, c := range r.contexts {
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		if i == 0 {
			le.PutUint32(b[ctxOffPos:], uint32(len(b)))
		}
		b = append(b, c...)
	}
	return b
}

func smbPickDialect(dialects []uint16, best uint16) uint16 {
	var d uint16
	for _, x := range dialects {
		if x <= best && x > d {
			d = x
		}
	}
	return d
}

func TestSMB(t *testing.T) {
	windows := func(ds []uint16) []byte {
		return smb2Response{
			mode: 0x3, dialect: smbPickDialect(ds, 0x0311), caps: 0x2f, maxSize: 8 << 20,
			blob: smbSPNEGO(smbOIDNEGOEX, smbOIDMSKRB5, smbOIDKRB5, smbOIDNTLM),
			contexts: [][]byte{
				smbContext(1, append([]byte{1, 0, 32, 0, 1, 0}, bytes.Repeat([]byte{0x5a}, 32)...)),
				smbContext(2, []byte{1, 0, 2, 0}),
				smbContext(8, []byte{1, 0, 2, 0}),
			},
		}.bytes()
	}
	samba := func(ds []uint16) []byte {
		return smb2Response{
			mode: 0x1, dialect: smbPickDialect(ds, 0x0311), caps: 0x4f, maxSize: 8 << 20,
			blob: smbSPNEGO(smbOIDNTLM),
			contexts: [][]byte{
				smbContext(1, append([]byte{1, 0, 32, 0, 1, 0}, bytes.Repeat([]byte{0x33}, 32)...)),
				smbContext(2, []byte{1, 0, 4, 0}),
			},
		}.bytes()
	}
	smb21 := func(ds []uint16) []byte {
		return smb2Response{mode: 0x1, dialect: smbPickDialect(ds, 0x0210), caps: 0x7, maxSize: 1 << 20, start: smbTestTime - 864000000000, blob: smbSPNEGO(smbOIDNTLM)}.bytes()
	}
	refused := func([]uint16) []byte { return smb2Response{status: 0xc00000bb}.bytes() }
	tests := []struct {
		name    string
		respond func([]uint16) []byte
		blind   bool
		want    map[string]string
	}{
		{"windows 3.1.1", windows, false, map[string]string{
			"smb.version": "3", "smb.dialect": "3.1.1", "smb.signing": "required",
			"smb.guid": "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809", "smb.capabilities": "dfs,leasing,large_mtu,multi_channel,directory_leasing",
			"smb.auth": "negoex,ms-kerberos,kerberos,ntlmssp", "smb.cipher": "aes-128-gcm", "smb.signing_algorithm": "aes-gmac",
			"smb.preauth_hash": "sha512", "smb.contexts": "preauth_integrity,encryption,signing",
			"smb.max_sizes": "transact=8388608 read=8388608 write=8388608", "smb.time": "2024-01-17T21:20:00Z",
		}},
		{"samba 3.1.1 found blind", samba, true, map[string]string{
			"smb.dialect": "3.1.1", "smb.signing": "enabled", "smb.auth": "ntlmssp", "smb.cipher": "aes-256-gcm",
			"smb.capabilities": "dfs,leasing,large_mtu,multi_channel,encryption",
		}},
		{"smb 2.1 only", smb21, false, map[string]string{
			"smb.version": "2", "smb.dialect": "2.1", "smb.signing": "enabled", "smb.start_time": "2024-01-16T21:20:00Z",
		}},
		{"error status", refused, false, map[string]string{"smb.version": "2", "smb.status": "STATUS_NOT_SUPPORTED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := newSMBFake(t, &smbFake{respond: tt.respond})
			target := Target{Addr: addr, Protocol: "smb"}
			if tt.blind {
				target.Protocol = ""
			}
			svc, _, err := grabC2(t, target, Config{})
			if err != nil {
				t.Fatalf("grab: %v", err)
			}
			if svc.Protocol != "smb" {
				t.Fatalf("protocol %q, want smb", svc.Protocol)
			}
			for k, v := range tt.want {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q", k, svc.Data[k], v)
				}
			}
			if !bytes.HasPrefix(svc.Banner, []byte{0xfe, 'S', 'M', 'B'}) {
				t.Errorf("banner % x", clip(svc.Banner, 8))
			}
		})
	}
}

func TestSMBOddServers(t *testing.T) {
	smb1 := func(c net.Conn) {
		c.Read(make([]byte, 512))
		// SMB1 header answering with STATUS_NOT_SUPPORTED, no parameters
		m := make([]byte, 35)
		copy(m, []byte{0xff, 'S', 'M', 'B', 0x72})
		binary.LittleEndian.PutUint32(m[5:], 0xc00000bb)
		m[9] = 0x98
		binary.LittleEndian.PutUint16(m[10:], 0xc001)
		c.Write(append([]byte{0, 0, 0, byte(len(m))}, m...))
	}
	keepalive := func(c net.Conn) {
		c.Read(make([]byte, 512))
		c.Write([]byte{0x85, 0, 0, 0})
		smbFakeAnswer(c, smb2Response{mode: 1, dialect: 0x0302, caps: 0x7, maxSize: 1 << 16}.bytes())
	}
	tests := []struct {
		name string
		raw  func(net.Conn)
		want map[string]string
		ok   bool
	}{
		{"smb1 reply", smb1, map[string]string{"smb.version": "1", "smb.status": "STATUS_NOT_SUPPORTED"}, true},
		{"keepalive first", keepalive, map[string]string{"smb.version": "3", "smb.dialect": "3.0.2"}, true},
		{"netbios negative session response", func(c net.Conn) {
			c.Read(make([]byte, 512))
			c.Write([]byte{0x83, 0, 0, 1, 0x80})
		}, nil, false},
		{"huge length", func(c net.Conn) {
			c.Read(make([]byte, 512))
			c.Write([]byte{0, 0xff, 0xff, 0xff, 0xfe, 'S', 'M', 'B'})
			junk := make([]byte, 8192)
			for {
				if _, err := c.Write(junk); err != nil {
					return
				}
			}
		}, nil, false},
		{"slow drip", func(c net.Conn) {
			c.Read(make([]byte, 512))
			for _, b := range append([]byte{0, 0, 0, 200}, bytes.Repeat([]byte{0xfe}, 200)...) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}, nil, false},
		{"endless text", func(c net.Conn) {
			for {
				if _, err := io.WriteString(c, "HELLO HELLO HELLO\r\n"); err != nil {
					return
				}
			}
		}, nil, false},
		{"context offset out of range", func(c net.Conn) {
			c.Read(make([]byte, 512))
			r := smb2Response{mode: 1, dialect: 0x0311, contexts: [][]byte{smbContext(2, []byte{1, 0, 2, 0})}}.bytes()
			binary.LittleEndian.PutUint32(r[64+60:], 0xfffffff0)
			smbFakeAnswer(c, r)
		}, map[string]string{"smb.dialect": "3.1.1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := newSMBFake(t, &smbFake{raw: tt.raw})
			start := time.Now()
			svc, _, _ := grabC2(t, Target{Addr: addr, Protocol: "smb"}, Config{Timeout: time.Second})
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			if (svc.Protocol == "smb") != tt.ok {
				t.Fatalf("protocol %q (data %v)", svc.Protocol, svc.Data)
			}
			for k, v := range tt.want {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q", k, svc.Data[k], v)
				}
			}
		})
	}
}

func smbFakeAnswer(c net.Conn, m []byte) {
	c.Write(append([]byte{0, byte(len(m) >> 16), byte(len(m) >> 8), byte(len(m))}, m...))
	io.Copy(io.Discard, c)
}

func TestSMBRequest(t *testing.T) {
	req := smbNegotiateRequest()
	n := int(req[1])<<16 | int(req[2])<<8 | int(req[3])
	if req[0] != 0 || n != len(req)-4 {
		t.Fatalf("NetBIOS header % x for %d bytes", req[:4], len(req))
	}
	ds, err := smbCheckNegotiate(req[4:])
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ds) != fmt.Sprint(smbDialects) {
		t.Errorf("dialects %x", ds)
	}
}

func TestSPNEGOMechs(t *testing.T) {
	got := spnegoMechs(smbSPNEGO(smbOIDKRB5, smbOIDNTLM, asn1.ObjectIdentifier{1, 2, 3, 4}))
	if fmt.Sprint(got) != "[kerberos ntlmssp 1.2.3.4]" {
		t.Errorf("got %v", got)
	}
	// a long-form length, and junk
	spnegoMechs([]byte{0x30, 0x83, 0xff, 0xff, 0xff})
	spnegoMechs(bytes.Repeat([]byte{0x30, 0x80}, 100))
}

func FuzzSMB2Negotiate(f *testing.F) {
	f.Add(smb2Response{mode: 3, dialect: 0x0311, caps: 0x2f, maxSize: 1 << 23, blob: smbSPNEGO(smbOIDKRB5, smbOIDNTLM),
		contexts: [][]byte{smbContext(1, []byte{1, 0, 0, 0, 1, 0}), smbContext(2, []byte{1, 0, 2, 0})}}.bytes())
	f.Add(smb2Response{status: 0xc0000022}.bytes())
	f.Add([]byte{0xff, 'S', 'M', 'B', 0x72, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseSMBNegotiate(b)
		if err != nil && n.Version == 0 && !errors.Is(err, ErrNotMine) {
			t.Fatalf("error %v without a version", err)
		}
		spnegoMechs(n.SecurityBlob)
		smbCaps(n.Capabilities)
		smbGUID(n.ServerGUID)
		smbFiletime(n.SystemTime)
	})
}
