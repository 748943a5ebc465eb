package tag

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/vantagehq/vantage/record"
)

// sampleEvent is the TOML form of a record.Event in testdata/samples.toml.
type sampleEvent struct {
	Src         string `toml:"src"`
	Dst         string `toml:"dst"`
	SrcPort     uint16 `toml:"src_port"`
	DstPort     uint16 `toml:"dst_port"`
	Transport   string `toml:"transport"`
	ICMPType    uint8  `toml:"icmp_type"`
	ICMPCode    uint8  `toml:"icmp_code"`
	TTL         uint8  `toml:"ttl"`
	IPID        uint16 `toml:"ip_id"`
	IPIDMasscan bool   `toml:"ip_id_masscan"` // compute the masscan IP ID
	TCPFlags    string `toml:"tcp_flags"`     // letters, as in the rules
	Window      uint16 `toml:"window"`
	Seq         uint32 `toml:"seq"`
	SeqIsDst    bool   `toml:"seq_is_dst"`
	TCPOptions  string `toml:"tcp_options"`
	Handshake   bool   `toml:"handshake"`
	Payload     string `toml:"payload"`
	PayloadHex  string `toml:"payload_hex"`
	HTTPMethod  string `toml:"http_method"`
	HTTPPath    string `toml:"http_path"`
	UserAgent   string `toml:"user_agent"`
	JA3         string `toml:"ja3"`
	HASSH       string `toml:"hassh"`
	SNI         string `toml:"sni"`
	Username    string `toml:"username"`
	Password    string `toml:"password"`
	Actor       string `toml:"actor"`
}

type sample struct {
	Name   string      `toml:"name"`
	Want   []string    `toml:"want"`
	Not    []string    `toml:"not"`
	Exact  bool        `toml:"exact"`
	Repeat int         `toml:"repeat"`
	Event  sampleEvent `toml:"event"`
}

func (s sampleEvent) event(i int) (record.Event, error) {
	ev := record.Event{
		ID: record.HashID("sample", fmt.Sprint(i)), Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Sensor: "test",
		SrcPort: s.SrcPort, DstPort: s.DstPort, Transport: s.Transport, ICMPType: s.ICMPType, ICMPCode: s.ICMPCode,
		TTL: s.TTL, IPID: s.IPID, TCPWindow: s.Window, TCPSeq: s.Seq, TCPOptions: s.TCPOptions, Handshake: s.Handshake,
		Payload: []byte(s.Payload), HTTPMethod: s.HTTPMethod, HTTPPath: s.HTTPPath, UserAgent: s.UserAgent,
		JA3: s.JA3, HASSH: s.HASSH, SNI: s.SNI, Username: s.Username, Password: s.Password, Actor: s.Actor,
	}
	if ev.Transport == "" {
		ev.Transport = "tcp"
	}
	var err error
	src := s.Src
	if src == "" {
		src = fmt.Sprintf("10.%d.%d.1", i/256, i%256)
	}
	if ev.Src, err = netip.ParseAddr(src); err != nil {
		return ev, err
	}
	dst := s.Dst
	if dst == "" {
		dst = "198.51.100.130"
	}
	if ev.Dst, err = netip.ParseAddr(dst); err != nil {
		return ev, err
	}
	if s.TCPFlags != "" {
		f, err := parseFlags(s.TCPFlags)
		if err != nil {
			return ev, err
		}
		ev.TCPFlags = uint8(f)
	}
	if s.PayloadHex != "" {
		if ev.Payload, err = hex.DecodeString(s.PayloadHex); err != nil {
			return ev, err
		}
	}
	var d uint32
	if ev.Dst.Is4() {
		d4 := ev.Dst.As4()
		d = binary.BigEndian.Uint32(d4[:])
	}
	if s.SeqIsDst {
		ev.TCPSeq = d
	}
	if s.IPIDMasscan {
		ev.IPID = uint16(d ^ uint32(ev.DstPort) ^ ev.TCPSeq)
	}
	return ev, nil
}

func loadSamples(t testing.TB) []sample {
	b, err := os.ReadFile("testdata/samples.toml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Sample []sample `toml:"sample"`
	}
	md, err := toml.Decode(string(b), &f)
	if err != nil {
		t.Fatal(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Fatalf("samples.toml: unknown key %s", und[0])
	}
	return f.Sample
}

func freshEngine(t testing.TB) *Engine {
	e, err := LoadFS(embedded, "rules", Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestSamples runs the golden table and checks that no tag and no rule is
// dead: every tag and every match block fires on at least one sample.
func TestSamples(t *testing.T) {
	e := freshEngine(t)
	samples := loadSamples(t)
	seenTag := map[string]bool{}
	seenRule := map[string]bool{}
	for i, s := range samples {
		ev, err := s.Event.event(i)
		if err != nil {
			t.Fatalf("sample %q: %v", s.Name, err)
		}
		n := max(s.Repeat, 1)
		var got []Match
		for k := 0; k < n; k++ {
			ev.Time = ev.Time.Add(time.Second)
			got = e.Tag(&ev)
		}
		slugs := Slugs(got)
		for _, m := range got {
			seenTag[m.Slug] = true
			seenRule[m.Rule] = true
			if m.Evidence == "" || m.Rule == "" {
				t.Errorf("sample %q: match %+v without rule or evidence", s.Name, m)
			}
		}
		for _, w := range s.Want {
			if _, ok := e.Meta(w); !ok {
				t.Errorf("sample %q: wants unknown tag %s", s.Name, w)
			}
			if !slices.Contains(slugs, w) {
				t.Errorf("sample %q: want %s, got %v", s.Name, w, got)
			}
		}
		for _, w := range s.Not {
			if slices.Contains(slugs, w) {
				t.Errorf("sample %q: unwanted %s in %v", s.Name, w, got)
			}
		}
		if s.Exact {
			a, b := slices.Clone(slugs), slices.Clone(s.Want)
			slices.Sort(a)
			slices.Sort(b)
			if !slices.Equal(a, b) {
				t.Errorf("sample %q: want exactly %v, got %v", s.Name, b, got)
			}
		}
	}
	for _, m := range e.Tags() {
		if !seenTag[m.Slug] {
			t.Errorf("tag %s is dead: no sample earns it", m.Slug)
		}
	}
	for _, b := range e.blocks {
		if !seenRule[b.id] {
			t.Errorf("rule %s (%s) is dead: no sample fires it", b.id, b.summary)
		}
	}
	t.Logf("%d samples, %d tags, %d rules", len(samples), len(e.metas), len(e.blocks))
}
