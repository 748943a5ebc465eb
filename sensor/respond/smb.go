package respond

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/vantagehq/vantage/record"
)

// SMB ([MS-SMB2] 2.2.3/2.2.4, [MS-CIFS] 2.2.4.52 over NetBIOS session
// service framing, RFC 1002 4.3): parses an SMB1 or SMB2 NEGOTIATE request,
// records the offered dialects (fact "smb.dialects"), answers an SMB2
// NEGOTIATE response (to an SMB1 negotiate that offers "SMB 2.???", the
// multi-protocol 0x02FF answer) and reads the next message (usually a
// SESSION_SETUP) into the payload before closing. No session is set up.
func init() {
	Register(&Responder{Name: "smb", Detect: detectSMB, Serve: serveSMB})
}

func detectSMB(b []byte) bool {
	return len(b) >= 8 && b[0] == 0 && (b[4] == 0xff || b[4] == 0xfe) && string(b[5:8]) == "SMB"
}

// smbNegotiate is what a NEGOTIATE request offered.
type smbNegotiate struct {
	SMB2      bool
	MessageID uint64
	Dialects  []uint16 // SMB2 dialect revisions
	Names     []string // SMB1 dialect strings
}

// parseSMBNegotiate parses one SMB message (without the 4-byte NetBIOS
// header).
func parseSMBNegotiate(m []byte) (*smbNegotiate, error) {
	if len(m) < 4 {
		return nil, errShort
	}
	switch {
	case m[0] == 0xff && string(m[1:4]) == "SMB":
		if len(m) < 35 || m[4] != 0x72 { // SMB_COM_NEGOTIATE
			return nil, errBadRequest
		}
		wc := int(m[32])
		off := 33 + 2*wc
		if off+2 > len(m) {
			return nil, errShort
		}
		bc := int(binary.LittleEndian.Uint16(m[off:]))
		data := m[off+2:]
		if bc < len(data) {
			data = data[:bc]
		}
		n := &smbNegotiate{}
		for len(data) > 0 && len(n.Names) < 64 {
			if data[0] != 2 { // buffer format: dialect
				break
			}
			end := bytes.IndexByte(data[1:], 0)
			if end < 0 {
				n.Names = append(n.Names, string(data[1:]))
				break
			}
			n.Names = append(n.Names, string(data[1:1+end]))
			data = data[end+2:]
		}
		return n, nil
	case m[0] == 0xfe && string(m[1:4]) == "SMB":
		if len(m) < 64+36 || binary.LittleEndian.Uint16(m[12:]) != 0 { // NEGOTIATE
			return nil, errBadRequest
		}
		n := &smbNegotiate{SMB2: true, MessageID: binary.LittleEndian.Uint64(m[24:])}
		body := m[64:]
		count := int(binary.LittleEndian.Uint16(body[2:]))
		d := body[36:]
		for i := 0; i < count && 2*i+2 <= len(d) && i < 64; i++ {
			n.Dialects = append(n.Dialects, binary.LittleEndian.Uint16(d[2*i:]))
		}
		return n, nil
	}
	return nil, errBadRequest
}

// smbServerGUID is stable for the process, like a real server's.
var smbServerGUID = func() (g [16]byte) { rand.Read(g[:]); return }()

// spnegoNTLM is a SPNEGO negTokenInit offering NTLMSSP (RFC 4178), DER.
var spnegoNTLM = []byte{
	0x60, 0x1c, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02,
	0xa0, 0x12, 0x30, 0x10, 0xa0, 0x0e, 0x30, 0x0c,
	0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a,
}

// smbNegotiateResponse builds an SMB2 NEGOTIATE response with the NetBIOS
// header.
func smbNegotiateResponse(dialect uint16, msgID uint64, now time.Time) []byte {
	h := make([]byte, 64)
	copy(h, "\xfeSMB")
	binary.LittleEndian.PutUint16(h[4:], 64) // StructureSize
	binary.LittleEndian.PutUint16(h[14:], 1) // CreditResponse
	binary.LittleEndian.PutUint32(h[16:], 1) // SMB2_FLAGS_SERVER_TO_REDIR
	binary.LittleEndian.PutUint64(h[24:], msgID)
	b := make([]byte, 64)
	binary.LittleEndian.PutUint16(b[0:], 65) // StructureSize
	binary.LittleEndian.PutUint16(b[2:], 1)  // SecurityMode: signing enabled
	binary.LittleEndian.PutUint16(b[4:], dialect)
	copy(b[8:24], smbServerGUID[:])
	binary.LittleEndian.PutUint32(b[24:], 0x7)   // DFS, LEASING, LARGE_MTU
	binary.LittleEndian.PutUint32(b[28:], 8<<20) // MaxTransactSize
	binary.LittleEndian.PutUint32(b[32:], 8<<20) // MaxReadSize
	binary.LittleEndian.PutUint32(b[36:], 8<<20) // MaxWriteSize
	ft := uint64(now.UnixNano()/100) + 116444736000000000
	binary.LittleEndian.PutUint64(b[40:], ft)  // SystemTime
	binary.LittleEndian.PutUint16(b[56:], 128) // SecurityBufferOffset
	binary.LittleEndian.PutUint16(b[58:], uint16(len(spnegoNTLM)))
	msg := append(append(h, b...), spnegoNTLM...)
	out := make([]byte, 4, 4+len(msg))
	binary.BigEndian.PutUint32(out, uint32(len(msg)))
	return append(out, msg...)
}

// smbChoose picks the dialect to answer: the highest offered up to 3.0.2
// (3.1.1 would need negotiate contexts), 0x02FF for SMB1 clients that
// offer SMB2, 0 when nothing fits.
func smbChoose(n *smbNegotiate) uint16 {
	if !n.SMB2 {
		for _, s := range n.Names {
			if s == "SMB 2.???" || s == "SMB 2.002" {
				return 0x02ff
			}
		}
		return 0
	}
	best := uint16(0)
	for _, d := range n.Dialects {
		if d >= 0x0202 && d <= 0x0302 && d != 0x02ff && d > best {
			best = d
		}
	}
	return best
}

// readNetBIOS reads one NetBIOS session message and returns its body.
func readNetBIOS(c *Conn) ([]byte, error) {
	hdr, err := c.ReadFull(4)
	if err != nil {
		return nil, err
	}
	if hdr[0] != 0 {
		return nil, errBadRequest
	}
	n := int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	return c.ReadFull(n) // ErrLimit beyond MaxMessage
}

func serveSMB(ctx context.Context, c *Conn, ev *record.Event) error {
	m, err := readNetBIOS(c)
	if err != nil {
		return err
	}
	n, err := parseSMBNegotiate(m)
	if err != nil {
		return err
	}
	if n.SMB2 {
		var ds []string
		for _, d := range n.Dialects {
			ds = append(ds, fmt.Sprintf("0x%04x", d))
		}
		c.Fact("smb.version", "2")
		c.Fact("smb.dialects", strings.Join(ds, ","))
	} else {
		c.Fact("smb.version", "1")
		c.Fact("smb.dialects", strings.Join(n.Names, ","))
	}
	d := smbChoose(n)
	if d == 0 {
		return nil
	}
	if err := c.Write(smbNegotiateResponse(d, n.MessageID, time.Now())); err != nil {
		return err
	}
	// The next message (a NEGOTIATE again after 0x02FF, or SESSION_SETUP)
	// lands in the payload; nothing more is answered.
	c.WaitRead(2 * time.Second)
	defer c.Restore()
	_, err = readNetBIOS(c)
	if isTimeout(err) {
		return nil
	}
	return err
}
