package respond

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"testing"
	"time"
)

// x224CR builds a Connection Request as [MS-RDPBCGR] 2.2.1.1 describes.
func x224CR(cookie string, protocols uint32, neg bool) []byte {
	v := []byte(cookie)
	if neg {
		n := []byte{1, 0, 8, 0, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(n[4:], protocols)
		v = append(v, n...)
	}
	li := 6 + len(v)
	b := []byte{3, 0, 0, 0, byte(li), 0xe0, 0, 0, 0, 0, 0}
	b = append(b, v...)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

func TestRDPConfirmThenTLS(t *testing.T) {
	addr, ch := listen(t, 3389, Limits{})
	c := dial(t, addr)
	c.Write(x224CR("Cookie: mstshash=Administr\r\n", 0x0b, true))
	cc := make([]byte, 19)
	if _, err := io.ReadFull(c, cc); err != nil {
		t.Fatal(err)
	}
	if cc[0] != 3 || binary.BigEndian.Uint16(cc[2:]) != 19 || cc[5] != 0xd0 || cc[11] != 2 ||
		binary.LittleEndian.Uint32(cc[15:]) != 1 {
		t.Errorf("confirm % x", cc)
	}
	// The client goes on to TLS on the same connection.
	err := tls.Client(c, &tls.Config{ServerName: "rdp.example", InsecureSkipVerify: true}).Handshake()
	if err == nil {
		t.Error("TLS succeeded")
	}
	s := wait(t, ch, 5*time.Second)
	if s.ev.Username != "Administr" || s.info.Facts["rdp.protocols"] != "ssl,hybrid,hybrid_ex" ||
		s.ev.JA3 == "" || s.ev.SNI != "rdp.example" {
		t.Errorf("%+v %v", s.ev, s.info.Facts)
	}
}

func TestRDPNoSSL(t *testing.T) {
	addr, ch := listen(t, 3389, Limits{})
	c := dial(t, addr)
	c.Write(x224CR("Cookie: msts=3640205228.15629.0000\r\n", 0, true))
	cc := make([]byte, 19)
	if _, err := io.ReadFull(c, cc); err != nil {
		t.Fatal(err)
	}
	if cc[11] != 3 || binary.LittleEndian.Uint32(cc[15:]) != 1 {
		t.Errorf("want a failure SSL_REQUIRED_BY_SERVER: % x", cc)
	}
	s := wait(t, ch, 5*time.Second)
	if s.ev.Username != "" || s.info.Facts["rdp.token"] != "msts=3640205228.15629.0000" || s.info.Facts["rdp.protocols"] != "rdp" {
		t.Errorf("%+v %v", s.ev, s.info.Facts)
	}

	// Legacy: no negotiation request, a bare confirm.
	c = dial(t, addr)
	c.Write(x224CR("Cookie: mstshash=nmap\r\n", 0, false))
	cc = make([]byte, 11)
	if _, err := io.ReadFull(c, cc); err != nil || cc[5] != 0xd0 || cc[3] != 11 {
		t.Errorf("legacy confirm % x %v", cc, err)
	}
	s = wait(t, ch, 5*time.Second)
	if s.ev.Username != "nmap" {
		t.Errorf("%+v", s.ev)
	}
}
