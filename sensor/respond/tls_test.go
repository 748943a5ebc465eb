package respond

import (
	"crypto/tls"
	"encoding/binary"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// buildClientHello builds a TLS record holding a ClientHello with the
// given fields (extension bodies as given).
func buildClientHello(version uint16, ciphers []uint16, exts [][2]any) []byte {
	var body []byte
	body = binary.BigEndian.AppendUint16(body, version)
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = binary.BigEndian.AppendUint16(body, uint16(2*len(ciphers)))
	for _, c := range ciphers {
		body = binary.BigEndian.AppendUint16(body, c)
	}
	body = append(body, 1, 0) // compression: null
	var e []byte
	for _, x := range exts {
		data := x[1].([]byte)
		e = binary.BigEndian.AppendUint16(e, x[0].(uint16))
		e = binary.BigEndian.AppendUint16(e, uint16(len(data)))
		e = append(e, data...)
	}
	body = binary.BigEndian.AppendUint16(body, uint16(len(e)))
	body = append(body, e...)
	hs := append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	rec := []byte{0x16, 3, 1, byte(len(hs) >> 8), byte(len(hs))}
	return append(rec, hs...)
}

func u16list(prefix int, vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	if prefix == 2 {
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
	}
	return b
}

// jsa3Example is the example in the JA3 README: the string and its MD5.
const (
	ja3Example     = "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
	ja3ExampleHash = "ada70206e40642a3e4461f35503241d5"
)

func exampleHello(grease bool) []byte {
	return exampleHelloALPN(grease, grease)
}

func exampleHelloALPN(grease, alpn bool) []byte {
	ciphers := []uint16{47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4}
	curves := []uint16{23, 24, 25}
	sni := []byte("\x00\x0e\x00\x00\x0bexample.com")
	exts := [][2]any{
		{uint16(0), sni},
		{uint16(10), u16list(2, curves...)},
		{uint16(11), []byte{1, 0}},
	}
	if grease {
		ciphers = append([]uint16{0x0a0a}, ciphers...)
		curves = append([]uint16{0xfafa}, curves...)
		exts[1][1] = u16list(2, curves...)
		exts = append([][2]any{{uint16(0x1a1a), []byte{}}}, exts...)
		exts = append(exts, [2]any{uint16(0x2a2a), []byte{0}})
	}
	if alpn {
		exts = append(exts, [2]any{uint16(16), []byte("\x00\x0c\x02h2\x08http/1.1")})
	}
	return buildClientHello(0x0301, ciphers, exts)
}

func TestJA3Example(t *testing.T) {
	for _, grease := range []bool{false, true} {
		rec := exampleHello(grease)
		ch, err := parseClientHello(rec[9:])
		if err != nil {
			t.Fatal(err)
		}
		want := ja3Example
		if grease { // GREASE values vanish; the ALPN extension (16) stays
			want = strings.Replace(ja3Example, ",0-10-11,", ",0-10-11-16,", 1)
		}
		if ch.JA3() != want || !grease && ch.JA3Hash() != ja3ExampleHash {
			t.Errorf("grease=%v: %s %s", grease, ch.JA3(), ch.JA3Hash())
		}
		if ch.SNI != "example.com" {
			t.Errorf("SNI %q", ch.SNI)
		}
		if grease && strings.Join(ch.ALPN, ",") != "h2,http/1.1" {
			t.Errorf("ALPN %q", ch.ALPN)
		}
	}
	if !isGREASE(0x0a0a) || !isGREASE(0xfafa) || isGREASE(0x0a1a) || isGREASE(0x0a0b) {
		t.Error("isGREASE")
	}
}

// TestTLSSplitRecords: a ClientHello split over several records (and
// dripped in small writes) is reassembled.
func TestTLSSplitRecords(t *testing.T) {
	addr, ch := listen(t, 443, Limits{})
	rec := exampleHelloALPN(true, false)
	hs := rec[5:]
	c := dial(t, addr)
	for len(hs) > 0 {
		n := min(len(hs), 7)
		c.Write(append([]byte{0x16, 3, 1, 0, byte(n)}, hs[:n]...))
		hs = hs[n:]
		time.Sleep(5 * time.Millisecond)
	}
	alert := make([]byte, 7)
	if _, err := c.Read(alert); err != nil || alert[0] != 21 || alert[6] != 40 {
		t.Errorf("alert %v %v", alert, err)
	}
	s := wait(t, ch, 5*time.Second)
	if s.ev.JA3 != ja3ExampleHash || s.ev.SNI != "example.com" {
		t.Errorf("%+v %v", s.ev, s.info.Facts)
	}
}

func TestTLSOpenSSL(t *testing.T) {
	need(t, "openssl")
	addr, ch := listen(t, 443, Limits{})
	cmd := exec.Command("openssl", "s_client", "-connect", addr, "-servername", "bank.example",
		"-alpn", "h2,http/1.1", "-tls1_2")
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "handshake failure") {
		t.Errorf("openssl did not see a handshake failure: %s", out)
	}
	s := wait(t, ch, 5*time.Second)
	if s.ev.SNI != "bank.example" || s.info.Facts["tls.alpn"] != "h2,http/1.1" || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(s.ev.JA3) {
		t.Errorf("%+v %v", s.ev, s.info.Facts)
	}
	ja3 := s.info.Facts["tls.ja3"]
	// -tls1_2 caps the legacy version at 771; OpenSSL offers SNI (0),
	// supported_groups (10) and ALPN (16).
	if !strings.HasPrefix(ja3, "771,") || !regexp.MustCompile(`,(\d+-)*0-(\d+-)*10-(\d+-)*16(-\d+)*,`).MatchString(ja3) {
		t.Errorf("ja3 %s", ja3)
	}
	t.Logf("openssl JA3 %s = %s", ja3, s.ev.JA3)
}

func TestTLSGoClient(t *testing.T) {
	addr, ch := listen(t, 8443, Limits{})
	c := dial(t, addr)
	tc := tls.Client(c, &tls.Config{ServerName: "go.example", NextProtos: []string{"h2"},
		MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		CurvePreferences: []tls.CurveID{tls.X25519}})
	err := tc.Handshake()
	if err == nil || !strings.Contains(err.Error(), "handshake failure") {
		t.Errorf("handshake: %v", err)
	}
	s := wait(t, ch, 5*time.Second)
	ja3 := s.info.Facts["tls.ja3"]
	if s.ev.SNI != "go.example" || !strings.HasPrefix(ja3, "771,49199,") || !strings.HasSuffix(ja3, ",29,0") {
		t.Errorf("%+v %s", s.ev, ja3)
	}
}
