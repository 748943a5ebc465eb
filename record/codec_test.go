package record

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func sampleBatch(rng *rand.Rand, n int) *Batch {
	str := func() string {
		const chars = "abcdefghij0123456789 /.-:\"\\\x00é"
		b := make([]rune, rng.IntN(12))
		r := []rune(chars)
		for i := range b {
			b[i] = r[rng.IntN(len(r))]
		}
		return string(b)
	}
	blob := func() []byte {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.IntN(256)) // not UTF-8: must survive byte for byte
		}
		if len(b) == 0 {
			return nil
		}
		return b
	}
	strs := func() []string {
		var out []string
		for i := rng.IntN(4); i > 0; i-- {
			out = append(out, str())
		}
		return out
	}
	addr := func() netip.Addr {
		if rng.IntN(3) == 0 {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
	}
	tm := func() time.Time {
		if rng.IntN(5) == 0 {
			return time.Time{}
		}
		return time.Unix(rng.Int64N(4e9)-1e9, rng.Int64N(1e9)).UTC()
	}
	b := &Batch{ID: NewID(), Producer: str()}
	for i := 0; i < n; i++ {
		s := Service{
			ID: NewID(), Time: tm(), ScanID: str(), IP: addr(), Port: uint16(rng.IntN(65536)), Transport: str(),
			State: str(), TTL: uint8(rng.IntN(256)), Window: uint16(rng.IntN(65536)), Protocol: str(), Product: str(),
			Version: str(), CPE: strs(), Banner: blob(), Tags: strs(), Vulns: strs(),
			Geo: Geo{Country: str(), ASN: rng.Uint32(), Org: str(), Label: str()},
		}
		if rng.IntN(2) == 0 {
			s.Data = map[string]string{str(): str(), "k" + str(): ""}
		}
		if rng.IntN(2) == 0 {
			s.HTTP = &HTTP{Status: rng.IntN(600) - 50, Title: str(), Server: str(), FaviconHash: int32(rng.Uint32()),
				BodySHA256: str(), Location: str(), Headers: []Header{{str(), str()}, {str(), ""}}}
		}
		if rng.IntN(2) == 0 {
			s.TLS = &TLS{Version: str(), Cipher: str(), JA3S: str(), SHA256: str(), Subject: str(), Issuer: str(),
				SANs: strs(), NotBefore: tm(), NotAfter: tm(), Chain: [][]byte{blob(), {1, 2, 3}}}
			if s.TLS.Chain[0] == nil {
				s.TLS.Chain = s.TLS.Chain[1:]
			}
		}
		if rng.IntN(2) == 0 {
			s.SSH = &SSH{Banner: str(), HASSH: str(), HostKeyType: str(), HostKeySHA256: str(), KexAlgorithms: strs()}
		}
		b.Services = append(b.Services, s)
		b.Events = append(b.Events, Event{
			ID: NewID(), Time: tm(), Sensor: str(), Src: addr(), SrcPort: uint16(rng.IntN(65536)), Dst: addr(),
			DstPort: uint16(rng.IntN(65536)), Transport: str(), ICMPType: uint8(rng.IntN(256)), ICMPCode: uint8(rng.IntN(256)),
			TTL: uint8(rng.IntN(256)), IPID: uint16(rng.IntN(65536)), TCPFlags: uint8(rng.IntN(256)),
			TCPWindow: uint16(rng.IntN(65536)), TCPSeq: rng.Uint32(), TCPOptions: str(), Handshake: rng.IntN(2) == 0,
			Payload: blob(), HTTPMethod: str(), HTTPPath: str(), UserAgent: str(), JA3: str(), HASSH: str(), SNI: str(),
			Username: str(), Password: str(), Tags: strs(), Classification: str(), Actor: str(),
			SrcGeo: Geo{Country: str(), ASN: rng.Uint32(), Org: str()}, DstCountry: str(),
		})
	}
	return b
}

func TestBatchRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for iter := 0; iter < 200; iter++ {
		b := sampleBatch(rng, rng.IntN(5))
		got, err := UnmarshalBatch(b.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalize(b), normalize(got)) {
			w, _ := json.MarshalIndent(b, "", " ")
			g, _ := json.MarshalIndent(got, "", " ")
			t.Fatalf("round trip differs:\nwant %s\ngot  %s", w, g)
		}
		// the next decodes may fill this batch's slice: nothing of it
		// may show through in them
		if got.Recycle(); got.Events != nil {
			t.Fatalf("a recycled batch still has %d events", len(got.Events))
		}
	}
	// the epoch is a time like any other
	ep := &Batch{ID: NewID(), Events: []Event{{Time: time.Unix(0, 0).UTC()}}}
	got, _ := UnmarshalBatch(ep.Marshal())
	if !got.Events[0].Time.Equal(time.Unix(0, 0)) {
		t.Fatalf("epoch read back as %v", got.Events[0].Time)
	}
}

// normalize makes empty and nil slices compare equal.
func normalize(b *Batch) *Batch {
	j, _ := json.Marshal(b)
	var out Batch
	json.Unmarshal(j, &out)
	return &out
}

func TestUnknownFieldsSkipped(t *testing.T) {
	b := &Batch{ID: NewID(), Producer: "p", Events: []Event{{Sensor: "s", DstPort: 22}}}
	data := b.Marshal()
	// a newer producer adds field 99 (varint) and 100 (bytes) to the batch
	e := encoder{b: data}
	e.uint(99, 12345)
	e.str(100, "from the future")
	got, err := UnmarshalBatch(e.b)
	if err != nil || got.Producer != "p" || got.Events[0].DstPort != 22 {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestMalformedBatches(t *testing.T) {
	good := (&Batch{ID: NewID(), Events: []Event{{Sensor: "s", Src: netip.MustParseAddr("192.0.2.1")}}}).Marshal()
	tests := map[string][]byte{
		"no id":        (&Batch{Producer: "x"}).Marshal(),
		"truncated":    good[:len(good)-3],
		"field zero":   {0x00, 0x01},
		"fixed64 wire": {0x09, 1, 2, 3, 4, 5, 6, 7, 8},
		"huge length":  {0x12, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad address size": func() []byte {
			e := encoder{}
			e.id(1, NewID())
			e.msg(4, func(e *encoder) { e.bytes(4, []byte{1, 2, 3}) })
			return e.b
		}(),
		"port too big": func() []byte {
			e := encoder{}
			e.id(1, NewID())
			e.msg(4, func(e *encoder) { e.uint(7, 70000) })
			return e.b
		}(),
	}
	for name, data := range tests {
		if _, err := UnmarshalBatch(data); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, err := UnmarshalBatch(good); err != nil {
		t.Fatalf("good batch: %v", err)
	}
}

func TestIDs(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.1")
	if ServiceID("s", ip, 80, "tcp") != ServiceID("s", ip, 80, "tcp") || ServiceID("s", ip, 80, "tcp") == ServiceID("s", ip, 81, "tcp") {
		t.Fatal("service ids not stable or not distinct")
	}
	// IDs are stable across versions: a redelivered record must keep its ID
	if got := ServiceID("scan-1", netip.MustParseAddr("198.18.0.7"), 443, "tcp").String(); got != "1300ec385c44caf7409134f905eb64ec" {
		t.Errorf("ServiceID changed: %s", got)
	}
	if got := HashID("a", "", "ünï").String(); got != "813dcf10564cb89a545b2cfca7068ebc" {
		t.Errorf("HashID changed: %s", got)
	}
	if HashID("ab", "c") == HashID("a", "bc") {
		t.Fatal("hash ids ambiguous across part boundaries")
	}
	id := NewID()
	var back ID
	if err := back.UnmarshalText([]byte(id.String())); err != nil || back != id {
		t.Fatalf("text round trip: %v", err)
	}
}

func FuzzUnmarshalBatch(f *testing.F) {
	rng := rand.New(rand.NewPCG(2, 2))
	f.Add(sampleBatch(rng, 1).Marshal())
	f.Add(sampleBatch(rng, 3).Marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := UnmarshalBatch(data)
		if err != nil {
			return
		}
		// what decoded re-encodes to something that decodes to the same
		again, err := UnmarshalBatch(b.Marshal())
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if !bytes.Equal(b.Marshal(), again.Marshal()) {
			t.Fatal("encoding not stable")
		}
	})
}

func BenchmarkEventCodec(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	batch := sampleBatch(rng, 1000)
	batch.Services = nil
	data := batch.Marshal()
	b.Run("encode", func(b *testing.B) {
		buf := make([]byte, 0, len(data))
		for i := 0; i < b.N; i++ {
			buf = AppendBatch(buf[:0], batch)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
	})
	b.Run("marshal", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = batch.Marshal()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
	})
	b.Run("with-encoding", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			batch.WithEncoding(func([]byte) error { return nil })
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
	})
	b.Run("decode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := UnmarshalBatch(data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
	})
	b.Run("json-decode", func(b *testing.B) {
		j, _ := json.Marshal(batch)
		for i := 0; i < b.N; i++ {
			var out Batch
			if err := json.Unmarshal(j, &out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/event")
	})
}
