package respond

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// smb2Negotiate builds an SMB2 NEGOTIATE request ([MS-SMB2] 2.2.3) in a
// NetBIOS session message.
func smb2Negotiate(msgID uint64, dialects ...uint16) []byte {
	h := make([]byte, 64)
	copy(h, "\xfeSMB")
	binary.LittleEndian.PutUint16(h[4:], 64)
	binary.LittleEndian.PutUint64(h[24:], msgID)
	b := make([]byte, 36)
	binary.LittleEndian.PutUint16(b, 36)
	binary.LittleEndian.PutUint16(b[2:], uint16(len(dialects)))
	binary.LittleEndian.PutUint16(b[4:], 1)
	for _, d := range dialects {
		b = binary.LittleEndian.AppendUint16(b, d)
	}
	m := append(h, b...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(m))), m...)
}

// smb1Negotiate builds an SMB1 NEGOTIATE ([MS-CIFS] 2.2.4.52.1).
func smb1Negotiate(names ...string) []byte {
	h := make([]byte, 32)
	copy(h, "\xffSMBr")
	var data []byte
	for _, n := range names {
		data = append(append(append(data, 2), n...), 0)
	}
	m := append(h, 0)
	m = binary.LittleEndian.AppendUint16(m, uint16(len(data)))
	m = append(m, data...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(m))), m...)
}

func readSMBResponse(t *testing.T, c net.Conn) (dialect uint16, msgID uint64) {
	t.Helper()
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatal(err)
	}
	m := make([]byte, binary.BigEndian.Uint32(hdr))
	if _, err := io.ReadFull(c, m); err != nil {
		t.Fatal(err)
	}
	if string(m[:4]) != "\xfeSMB" || binary.LittleEndian.Uint16(m[64:]) != 65 {
		t.Fatalf("response % x", m)
	}
	off := binary.LittleEndian.Uint16(m[64+56:])
	l := binary.LittleEndian.Uint16(m[64+58:])
	if int(off)+int(l) != len(m) || m[off] != 0x60 {
		t.Errorf("security buffer %d+%d of %d", off, l, len(m))
	}
	return binary.LittleEndian.Uint16(m[64+4:]), binary.LittleEndian.Uint64(m[24:])
}

func TestSMB2Negotiate(t *testing.T) {
	addr, ch := listen(t, 445, Limits{})
	c := dial(t, addr)
	c.Write(smb2Negotiate(7, 0x0202, 0x0210, 0x0300, 0x0302, 0x0311))
	if d, id := readSMBResponse(t, c); d != 0x0302 || id != 7 {
		t.Errorf("dialect %#x id %d", d, id)
	}
	c.Close()
	s := wait(t, ch, 5*time.Second)
	if s.info.Facts["smb.dialects"] != "0x0202,0x0210,0x0300,0x0302,0x0311" || s.info.Facts["smb.version"] != "2" {
		t.Errorf("%v", s.info.Facts)
	}
}

func TestSMB1Negotiate(t *testing.T) {
	addr, ch := listen(t, 445, Limits{})
	c := dial(t, addr)
	c.Write(smb1Negotiate("PC NETWORK PROGRAM 1.0", "NT LM 0.12", "SMB 2.002", "SMB 2.???"))
	if d, _ := readSMBResponse(t, c); d != 0x02ff {
		t.Errorf("dialect %#x", d)
	}
	c.Close()
	s := wait(t, ch, 5*time.Second)
	if s.info.Facts["smb.dialects"] != "PC NETWORK PROGRAM 1.0,NT LM 0.12,SMB 2.002,SMB 2.???" {
		t.Errorf("%v", s.info.Facts)
	}
	// SMB1 only: recorded, not answered.
	c = dial(t, addr)
	c.Write(smb1Negotiate("NT LM 0.12"))
	if n, _ := c.Read(make([]byte, 10)); n != 0 {
		t.Error("answered an SMB1-only negotiate")
	}
	if s := wait(t, ch, 5*time.Second); s.info.Facts["smb.version"] != "1" {
		t.Errorf("%v", s.info.Facts)
	}
}
