package record

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func fullService() Service {
	return Service{
		ID: HashID("t"), Time: time.Date(2026, 11, 28, 1, 2, 3, 400500600, time.UTC), ScanID: "scan-1",
		IP: netip.MustParseAddr("198.18.0.1"), Port: 443, Transport: "tcp", State: "open", TTL: 64, Window: 65535,
		Protocol: "http", Product: "nginx", Version: "1.22.1", CPE: []string{"cpe:2.3:a:f5:nginx:1.22.1:*:*:*:*:*:*:*"},
		Banner: []byte("HTTP/1.1 200 OK\r\n\xff\x00"),
		HTTP: &HTTP{Status: 200, Title: "<b>Welcome</b> & \"hi\"", Server: "nginx/1.22.1",
			Headers:     []Header{{"Server", "nginx/1.22.1"}, {"X-Odd", "a\u2028b\u2029c\x7f\x01\t\n\r\b\f\\"}},
			FaviconHash: -123456, BodySHA256: "ab", Location: "/login?a=1&b=2"},
		TLS: &TLS{Version: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", JA3S: "x", SHA256: "y", Subject: "CN=é,O=Ω",
			Issuer: "CN=ca", SANs: []string{"a.test", "10.0.0.1"}, NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600)),
			NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), Chain: [][]byte{{0x30, 0x82}, nil, {}}},
		SSH: &SSH{Banner: "SSH-2.0-OpenSSH_9.2p1", HASSH: "h", HostKeyType: "ssh-ed25519", HostKeySHA256: "k",
			KexAlgorithms: []string{"curve25519-sha256", "diffie-hellman-group14-sha256"}},
		Tags: []string{"a", "b"}, Vulns: []string{"CVE-2024-6387"},
		Data: map[string]string{"z": "1", "a": "2", "m\xff": "\xfe3"},
		Geo:  Geo{Country: "DE", ASN: 64500, Org: "Org & Co", Label: "lab"},
	}
}

// AppendJSON writes exactly what json.Marshal writes, for the services a
// grabber produces and for the corners of encoding/json's escaping.
func TestAppendJSON(t *testing.T) {
	full := fullService()
	for _, c := range []struct {
		name string
		svc  Service
	}{
		{"zero", Service{}},
		{"full", full},
		{"ipv6 and empty parts", Service{IP: netip.MustParseAddr("2001:db8::1%eth0"), HTTP: &HTTP{}, TLS: &TLS{}, SSH: &SSH{},
			CPE: []string{}, Data: map[string]string{}, Banner: []byte{}}},
		{"mapped address, bad UTF-8", Service{IP: netip.MustParseAddr("::ffff:192.0.2.1"), Product: "\xc3\x28 \xed\xa0\x80 \xf0\x9f\x98\x80"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, err := json.Marshal(&c.svc)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.svc.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestFullServiceCoversEveryField: fullService sets every field of
// Service and of the structs inside it, so a field added to them without
// a line in AppendJSON makes TestAppendJSON fail rather than go missing
// from grab output and from the stores' details.
func TestFullServiceCoversEveryField(t *testing.T) {
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				t.Errorf("%s is nil in fullService", path)
				return
			}
			walk(path, v.Elem())
		case reflect.Struct:
			if v.Type() == reflect.TypeFor[time.Time]() || v.Type() == reflect.TypeFor[netip.Addr]() {
				if v.IsZero() {
					t.Errorf("%s is zero in fullService", path)
				}
				return
			}
			for i := range v.NumField() {
				walk(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
		case reflect.Slice:
			if v.Len() == 0 {
				t.Errorf("%s is empty in fullService", path)
				return
			}
			walk(path+"[0]", v.Index(0))
		default:
			if v.IsZero() {
				t.Errorf("%s is zero in fullService", path)
			}
		}
	}
	walk("Service", reflect.ValueOf(fullService()))
}

// FuzzAppendJSON compares AppendJSON with json.Marshal on services built
// from arbitrary strings, bytes and numbers.
func FuzzAppendJSON(f *testing.F) {
	f.Add("nginx", "1.22.1", "<title>", []byte("SSH-2.0-x\r\n"), uint16(80), int32(-5), int64(0), "key", "\xff\u2028")
	f.Add("", "", "", []byte(nil), uint16(0), int32(0), int64(1<<62), "", "")
	f.Fuzz(func(t *testing.T, product, version, title string, banner []byte, port uint16, favicon int32, nanos int64, key, value string) {
		s := Service{
			Time: time.Unix(0, nanos).UTC(), IP: netip.AddrFrom4([4]byte{192, 0, 2, byte(port)}), Port: port,
			Transport: "tcp", Product: product, Version: version, Banner: banner, CPE: []string{product, version},
			HTTP: &HTTP{Title: title, FaviconHash: favicon, Headers: []Header{{key, value}}},
			TLS:  &TLS{Subject: title, Chain: [][]byte{banner}, NotAfter: time.Unix(0, nanos).In(time.FixedZone("", int(favicon%50000)))},
			Data: map[string]string{key: value, value: key},
			Geo:  Geo{Org: value, ASN: uint32(favicon)},
		}
		want, err := json.Marshal(&s)
		if err != nil {
			t.Skipf("json.Marshal refuses this service: %v", err)
		}
		if got := s.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	s := fullService()
	b.Run("json.Marshal", func(b *testing.B) {
		for range b.N {
			if _, err := json.Marshal(&s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		for range b.N {
			buf = s.AppendJSON(buf[:0])
		}
	})
}
