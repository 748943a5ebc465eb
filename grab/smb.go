package grab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SMB2/3 (MS-SMB2) over direct TCP (port 445, RFC 1002 framing reduced to
// a 4-byte length header): one NEGOTIATE request offering 2.0.2 up to
// 3.1.1, the response parsed, then the connection closed. No SESSION_SETUP
// is ever sent, so nothing authenticates, not even anonymously.
//
// The NEGOTIATE response tells the chosen dialect, whether signing is
// required, the server GUID, capabilities, the server's clock and (from
// the SPNEGO token it carries) the authentication mechanisms offered.
// Samba and Windows are not told apart here: that needs a session setup.
//
// Port 139 (NetBIOS session service) is not supported: it wants a NetBIOS
// SESSION REQUEST naming the server before any SMB, and answers anything
// else with a negative session response, which is reported as not SMB.

func init() {
	Register(Module{
		Name:  "smb",
		Ports: []uint16{445},
		Rank:  55,
		Grab:  grabSMB,
	})
}

const (
	smbMaxMessage = 64 << 10 // a NEGOTIATE response is a few hundred bytes
	smbMaxFrames  = 4        // NetBIOS keepalives skipped before the response
	smbMaxContext = 16       // negotiate contexts parsed

	smb2HeaderLen = 64
)

// the dialects offered, oldest first
var smbDialects = []uint16{0x0202, 0x0210, 0x0300, 0x0302, 0x0311}

// smbNegotiateRequest builds the NetBIOS-framed SMB2 NEGOTIATE request
// (MS-SMB2 2.2.3) with the negotiate contexts 3.1.1 requires:
// preauthentication integrity (SHA-512) and encryption, plus signing
// capabilities so a 3.1.1 server says which signing algorithm it takes.
func smbNegotiateRequest() []byte {
	b := make([]byte, 4, 256)
	// SMB2 header, MS-SMB2 2.2.1.2 (sync)
	b = append(b, 0xfe, 'S', 'M', 'B')
	b = binary.LittleEndian.AppendUint16(b, smb2HeaderLen) // StructureSize
	b = binary.LittleEndian.AppendUint16(b, 0)             // CreditCharge
	b = binary.LittleEndian.AppendUint32(b, 0)             // Status
	b = binary.LittleEndian.AppendUint16(b, 0)             // Command NEGOTIATE
	b = binary.LittleEndian.AppendUint16(b, 1)             // CreditRequest
	b = binary.LittleEndian.AppendUint32(b, 0)             // Flags
	b = binary.LittleEndian.AppendUint32(b, 0)             // NextCommand
	b = binary.LittleEndian.AppendUint64(b, 0)             // MessageId
	b = binary.LittleEndian.AppendUint32(b, 0)             // Reserved
	b = binary.LittleEndian.AppendUint32(b, 0)             // TreeId
	b = binary.LittleEndian.AppendUint64(b, 0)             // SessionId
	b = append(b, make([]byte, 16)...)                     // Signature
	// NEGOTIATE request body
	const ctxCount = 3
	b = binary.LittleEndian.AppendUint16(b, 36) // StructureSize
	b = binary.LittleEndian.AppendUint16(b, uint16(len(smbDialects)))
	b = binary.LittleEndian.AppendUint16(b, 0x0001) // SecurityMode: signing enabled
	b = binary.LittleEndian.AppendUint16(b, 0)      // Reserved
	// Capabilities: DFS, leasing, large MTU, multi-channel, persistent
	// handles, directory leasing, encryption
	b = binary.LittleEndian.AppendUint32(b, 0x7f)
	var guid [16]byte
	rand.Read(guid[:])
	b = append(b, guid[:]...)
	ctxOffPos := len(b)
	b = binary.LittleEndian.AppendUint32(b, 0) // NegotiateContextOffset, below
	b = binary.LittleEndian.AppendUint16(b, ctxCount)
	b = binary.LittleEndian.AppendUint16(b, 0) // Reserved2
	for _, d := range smbDialects {
		b = binary.LittleEndian.AppendUint16(b, d)
	}
	pad8 := func() {
		for (len(b)-4)%8 != 0 {
			b = append(b, 0)
		}
	}
	pad8()
	binary.LittleEndian.PutUint32(b[ctxOffPos:], uint32(len(b)-4))
	ctx := func(typ uint16, data []byte) {
		pad8()
		b = binary.LittleEndian.AppendUint16(b, typ)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = append(b, data...)
	}
	// SMB2_PREAUTH_INTEGRITY_CAPABILITIES: one algorithm (SHA-512), 32-byte salt
	pre := []byte{1, 0, 32, 0, 1, 0}
	salt := make([]byte, 32)
	rand.Read(salt)
	ctx(0x0001, append(pre, salt...))
	// SMB2_ENCRYPTION_CAPABILITIES: AES-128-GCM, AES-128-CCM, AES-256-GCM, AES-256-CCM
	ctx(0x0002, []byte{4, 0, 2, 0, 1, 0, 4, 0, 3, 0})
	// SMB2_SIGNING_CAPABILITIES: AES-GMAC, AES-CMAC, HMAC-SHA256
	ctx(0x0008, []byte{3, 0, 2, 0, 1, 0, 0, 0})
	n := len(b) - 4
	b[0] = 0 // NetBIOS session message
	b[1], b[2], b[3] = byte(n>>16), byte(n>>8), byte(n)
	return b
}

// smbNegotiate is what a NEGOTIATE response says.
type smbNegotiate struct {
	Version      int // 1 or 2 (SMB2 and SMB3 share the SMB2 packet format)
	Status       uint32
	Command      uint16
	Dialect      uint16
	SecurityMode uint16
	ServerGUID   [16]byte
	Capabilities uint32
	MaxTransact  uint32
	MaxRead      uint32
	MaxWrite     uint32
	SystemTime   uint64 // FILETIME
	StartTime    uint64
	SecurityBlob []byte
	// from the 3.1.1 negotiate contexts
	Contexts    []uint16
	PreauthHash uint16
	Cipher      uint16
	HasCipher   bool
	Signing     uint16
	HasSigning  bool
	Compression []uint16
}

var errSMBShort = errors.New("smb: response truncated")

// parseSMBNegotiate parses an SMB message (without its 4-byte NetBIOS
// header): an SMB2 NEGOTIATE response, or any SMB1 reply. Bytes that are
// neither give an error wrapping ErrNotMine.
func parseSMBNegotiate(m []byte) (smbNegotiate, error) {
	var n smbNegotiate
	if len(m) < 4 {
		return n, NotMine("smb: %d-byte message", len(m))
	}
	switch {
	case bytes.Equal(m[:4], []byte{0xff, 'S', 'M', 'B'}):
		n.Version = 1
		if len(m) < 32 {
			return n, errSMBShort
		}
		n.Command = uint16(m[4])
		n.Status = binary.LittleEndian.Uint32(m[5:])
		return n, nil
	case !bytes.Equal(m[:4], []byte{0xfe, 'S', 'M', 'B'}):
		return n, NotMine("smb: protocol id % x", m[:4])
	}
	n.Version = 2
	if len(m) < smb2HeaderLen {
		return n, errSMBShort
	}
	le := binary.LittleEndian
	n.Status = le.Uint32(m[8:])
	n.Command = le.Uint16(m[12:])
	if n.Status != 0 || n.Command != 0 {
		// an error response, or not a NEGOTIATE: it is SMB2 all the same
		return n, nil
	}
	body := m[smb2HeaderLen:]
	if len(body) < 64 {
		return n, errSMBShort
	}
	n.SecurityMode = le.Uint16(body[2:])
	n.Dialect = le.Uint16(body[4:])
	ctxCount := int(le.Uint16(body[6:]))
	copy(n.ServerGUID[:], body[8:24])
	n.Capabilities = le.Uint32(body[24:])
	n.MaxTransact = le.Uint32(body[28:])
	n.MaxRead = le.Uint32(body[32:])
	n.MaxWrite = le.Uint32(body[36:])
	n.SystemTime = le.Uint64(body[40:])
	n.StartTime = le.Uint64(body[48:])
	secOff, secLen := int(le.Uint16(body[56:])), int(le.Uint16(body[58:]))
	ctxOff := int(le.Uint32(body[60:]))
	if secLen > 0 {
		if secOff < smb2HeaderLen || secOff+secLen > len(m) {
			return n, fmt.Errorf("smb: security buffer %d+%d outside %d bytes", secOff, secLen, len(m))
		}
		n.SecurityBlob = m[secOff : secOff+secLen : secOff+secLen]
	}
	if n.Dialect != 0x0311 || ctxCount == 0 {
		return n, nil
	}
	off := ctxOff
	for i := 0; i < ctxCount && i < smbMaxContext; i++ {
		if off < smb2HeaderLen || off+8 > len(m) {
			return n, fmt.Errorf("smb: negotiate context %d at %d outside %d bytes", i, off, len(m))
		}
		typ, dlen := le.Uint16(m[off:]), int(le.Uint16(m[off+2:]))
		if off+8+dlen > len(m) {
			return n, fmt.Errorf("smb: negotiate context %d truncated", i)
		}
		d := m[off+8 : off+8+dlen]
		n.Contexts = append(n.Contexts, typ)
		switch typ {
		case 0x0001: // preauth integrity: count, salt length, algorithms
			if len(d) >= 6 && le.Uint16(d) > 0 {
				n.PreauthHash = le.Uint16(d[4:])
			}
		case 0x0002: // encryption: count, ciphers (0 means none in common)
			if len(d) >= 4 && le.Uint16(d) > 0 {
				n.Cipher, n.HasCipher = le.Uint16(d[2:]), true
			}
		case 0x0003: // compression: count, padding, flags, algorithms
			if len(d) >= 8 {
				c := int(le.Uint16(d))
				for j := 0; j < c && j < 8 && 8+2*j+2 <= len(d); j++ {
					n.Compression = append(n.Compression, le.Uint16(d[8+2*j:]))
				}
			}
		case 0x0008: // signing: count, algorithms
			if len(d) >= 4 && le.Uint16(d) > 0 {
				n.Signing, n.HasSigning = le.Uint16(d[2:]), true
			}
		}
		off = (off + 8 + dlen + 7) &^ 7
	}
	return n, nil
}

func smbDialectName(d uint16) string {
	switch d {
	case 0x0202:
		return "2.0.2"
	case 0x0210:
		return "2.1"
	case 0x0300:
		return "3.0"
	case 0x0302:
		return "3.0.2"
	case 0x0311:
		return "3.1.1"
	case 0x02ff:
		return "2.???"
	}
	return fmt.Sprintf("%#04x", d)
}

// smbGUID formats a GUID as Windows does (the first three fields little-endian).
func smbGUID(g [16]byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(g[0:]), le.Uint16(g[4:]), le.Uint16(g[6:]), g[8:10], g[10:])
}

// smbFiletime converts a FILETIME (100 ns ticks since 1601) to time.
func smbFiletime(ft uint64) (time.Time, bool) {
	const epochDiff = 116444736000000000 // 1601 to 1970 in ticks
	if ft <= epochDiff || ft >= 1<<62 {
		return time.Time{}, false
	}
	ft -= epochDiff
	return time.Unix(int64(ft/1e7), int64(ft%1e7)*100).UTC(), true
}

var smbCapNames = []string{"dfs", "leasing", "large_mtu", "multi_channel", "persistent_handles", "directory_leasing", "encryption", "notifications"}

func smbCaps(c uint32) string {
	var out []string
	for i, name := range smbCapNames {
		if c&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	if rest := c &^ (1<<len(smbCapNames) - 1); rest != 0 {
		out = append(out, fmt.Sprintf("%#x", rest))
	}
	return strings.Join(out, ",")
}

func smbName(names map[uint16]string, v uint16) string {
	if s, ok := names[v]; ok {
		return s
	}
	return fmt.Sprintf("%#04x", v)
}

var (
	smbHashNames        = map[uint16]string{1: "sha512"}
	smbCipherNames      = map[uint16]string{0: "none", 1: "aes-128-ccm", 2: "aes-128-gcm", 3: "aes-256-ccm", 4: "aes-256-gcm"}
	smbSigningNames     = map[uint16]string{0: "hmac-sha256", 1: "aes-cmac", 2: "aes-gmac"}
	smbCompressionNames = map[uint16]string{0: "none", 1: "lznt1", 2: "lz77", 3: "lz77+huffman", 4: "pattern_v1", 5: "lz4"}
	smbContextNames     = map[uint16]string{1: "preauth_integrity", 2: "encryption", 3: "compression", 5: "netname", 6: "transport", 7: "rdma_transform", 8: "signing", 0x100: "posix"}
	smbStatusNames      = map[uint32]string{
		0xc0000002: "STATUS_NOT_IMPLEMENTED", 0xc000000d: "STATUS_INVALID_PARAMETER",
		0xc0000022: "STATUS_ACCESS_DENIED", 0xc00000bb: "STATUS_NOT_SUPPORTED",
		0xc0000016: "STATUS_MORE_PROCESSING_REQUIRED", 0xc0000001: "STATUS_UNSUCCESSFUL",
	}
)

// spnegoMechs lists the mechanisms named by OIDs in a SPNEGO token (RFC
// 4178 NegTokenInit, usually with the GSS-API framing of RFC 2743 3.1):
// it walks the DER structure, bounded in depth and count, and collects
// every OID after the SPNEGO one.
func spnegoMechs(blob []byte) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(b []byte, depth int)
	walk = func(b []byte, depth int) {
		for len(b) >= 2 && depth < 8 && len(out) < 16 {
			tag := b[0]
			l, hl := int(b[1]), 2
			if l&0x80 != 0 {
				k := l & 0x7f
				if k == 0 || k > 3 || len(b) < 2+k {
					return
				}
				l = 0
				for _, c := range b[2 : 2+k] {
					l = l<<8 | int(c)
				}
				hl = 2 + k
			}
			if l > len(b)-hl {
				return
			}
			v := b[hl : hl+l]
			switch {
			case tag == 0x06:
				if oid := derOID(v); oid != "" && oid != "1.3.6.1.5.5.2" && !seen[oid] {
					seen[oid] = true
					out = append(out, smbMechName(oid))
				}
			case tag&0x20 != 0: // constructed
				walk(v, depth+1)
			}
			b = b[hl+l:]
		}
	}
	walk(blob, 0)
	return out
}

func derOID(v []byte) string {
	if len(v) == 0 || len(v) > 32 {
		return ""
	}
	var parts []string
	var x uint64
	for i, c := range v {
		x = x<<7 | uint64(c&0x7f)
		if x > 1<<40 {
			return ""
		}
		if c&0x80 != 0 {
			if i == len(v)-1 {
				return ""
			}
			continue
		}
		if len(parts) == 0 {
			f := min(x/40, 2)
			parts = append(parts, strconv.FormatUint(f, 10), strconv.FormatUint(x-40*f, 10))
		} else {
			parts = append(parts, strconv.FormatUint(x, 10))
		}
		x = 0
	}
	return strings.Join(parts, ".")
}

func smbMechName(oid string) string {
	switch oid {
	case "1.3.6.1.4.1.311.2.2.10":
		return "ntlmssp"
	case "1.2.840.113554.1.2.2":
		return "kerberos"
	case "1.2.840.48018.1.2.2":
		return "ms-kerberos"
	case "1.2.840.113554.1.2.2.3":
		return "kerberos-u2u"
	case "1.3.6.1.4.1.311.2.2.30":
		return "negoex"
	}
	return oid
}

func grabSMB(ctx context.Context, s *Session) (*Result, error) {
	if err := s.Write(smbNegotiateRequest()); err != nil {
		return nil, err
	}
	var msg []byte
	for range smbMaxFrames {
		h, err := s.ReadFull(4)
		if err != nil {
			return nil, err
		}
		switch h[0] {
		case 0x00: // session message: 24-bit length on direct TCP
		case 0x85: // keepalive
			continue
		case 0x82, 0x83:
			return nil, NotMine("smb: NetBIOS session response %#x (port 139 needs a session request)", h[0])
		default:
			return nil, NotMine("smb: no NetBIOS/direct-TCP frame: % x", h)
		}
		n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
		if n < 4 {
			return nil, NotMine("smb: %d-byte frame", n)
		}
		// peek at the protocol id before trusting the length
		id, err := s.ReadFull(4)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(id[1:], []byte("SMB")) || (id[0] != 0xfe && id[0] != 0xff) {
			return nil, NotMine("smb: protocol id % x", id)
		}
		if n > smbMaxMessage {
			return nil, fmt.Errorf("smb: %w: %d-byte message announced", ErrTooLarge, n)
		}
		rest, err := s.ReadFull(n - 4)
		if err != nil {
			return nil, err
		}
		msg = append(bytes.Clone(id), rest...)
		break
	}
	if msg == nil {
		return nil, errors.New("smb: only keepalives")
	}
	neg, err := parseSMBNegotiate(msg)
	if errors.Is(err, ErrNotMine) {
		return nil, err
	}
	r := &Result{Protocol: "smb", Banner: msg}
	if err != nil {
		// it is SMB, but the response is malformed: keep what is there
		r.Set("smb.error", err.Error())
	}
	r.Set("smb.version", strconv.Itoa(neg.Version))
	if neg.Status != 0 {
		st := fmt.Sprintf("%#08x", neg.Status)
		if name, ok := smbStatusNames[neg.Status]; ok {
			st = name
		}
		r.Set("smb.status", st)
	}
	if neg.Version == 1 || neg.Status != 0 || neg.Command != 0 || neg.Dialect == 0 {
		return r, nil
	}
	if neg.Dialect >= 0x0300 {
		r.Set("smb.version", "3")
	}
	r.Set("smb.dialect", smbDialectName(neg.Dialect))
	switch {
	case neg.SecurityMode&0x2 != 0:
		r.Set("smb.signing", "required")
	case neg.SecurityMode&0x1 != 0:
		r.Set("smb.signing", "enabled")
	default:
		r.Set("smb.signing", "disabled")
	}
	r.Set("smb.guid", smbGUID(neg.ServerGUID))
	r.Set("smb.capabilities", smbCaps(neg.Capabilities))
	r.Set("smb.max_sizes", fmt.Sprintf("transact=%d read=%d write=%d", neg.MaxTransact, neg.MaxRead, neg.MaxWrite))
	if t, ok := smbFiletime(neg.SystemTime); ok {
		r.Set("smb.time", t.Format(time.RFC3339))
	}
	if t, ok := smbFiletime(neg.StartTime); ok {
		r.Set("smb.start_time", t.Format(time.RFC3339))
	}
	r.Set("smb.auth", strings.Join(spnegoMechs(neg.SecurityBlob), ","))
	var ctxs []string
	for _, c := range neg.Contexts {
		ctxs = append(ctxs, smbName(smbContextNames, c))
	}
	r.Set("smb.contexts", strings.Join(ctxs, ","))
	if neg.PreauthHash != 0 {
		r.Set("smb.preauth_hash", smbName(smbHashNames, neg.PreauthHash))
	}
	if neg.HasCipher {
		r.Set("smb.cipher", smbName(smbCipherNames, neg.Cipher))
	}
	if neg.HasSigning {
		r.Set("smb.signing_algorithm", smbName(smbSigningNames, neg.Signing))
	}
	var comp []string
	for _, c := range neg.Compression {
		comp = append(comp, smbName(smbCompressionNames, c))
	}
	r.Set("smb.compression", strings.Join(comp, ","))
	return r, nil
}
