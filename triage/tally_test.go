package triage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/vantagehq/vantage/store"
)

// logGen is an endless-until-size log: nginx, iptables and sshd lines
// (and 1% malformed ones) from a bounded set of source addresses.
type logGen struct {
	size, sent int64
	sources    int
	n          int
	buf        bytes.Buffer
	lines, bad int
}

func (g *logGen) Read(p []byte) (int, error) {
	for g.buf.Len() < len(p) && g.sent+int64(g.buf.Len()) < g.size {
		i := g.n
		g.n++
		g.lines++
		ip := fmt.Sprintf("10.%d.%d.%d", i%g.sources>>16&255, i%g.sources>>8&255, i%g.sources&255)
		switch {
		case i%101 == 100:
			g.bad++
			fmt.Fprintf(&g.buf, "garbage line %d without an address\n", i)
		case i%3 == 0:
			fmt.Fprintf(&g.buf, "%s - - [27/Nov/2026:10:00:01 +0000] \"GET /wp-login.php?i=%d HTTP/1.1\" 404 153 \"-\" \"Mozilla/5.0\"\n", ip, i)
		case i%3 == 1:
			fmt.Fprintf(&g.buf, "Nov 27 10:01:00 gw kernel: [1.2] IN=eth0 OUT= SRC=%s DST=198.18.0.1 LEN=40 PROTO=TCP SPT=%d DPT=%d SYN\n", ip, 1024+i%60000, []int{22, 23, 80, 443, 445, 3389, 8080, 2323}[i%8])
		default:
			fmt.Fprintf(&g.buf, "Nov 27 10:02:00 host sshd[%d]: Failed password for root from %s port %d ssh2\n", i%30000, ip, 1024+i%60000)
		}
	}
	if g.buf.Len() == 0 || g.sent >= g.size {
		return 0, io.EOF
	}
	n, _ := g.buf.Read(p[:min(len(p), int(g.size-g.sent))])
	g.sent += int64(n)
	return n, nil
}

// retained is the live heap after a collection.
func retained() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestBoundedMemory: a tally keeps per-source state only, so reading a log
// ten times as long from the same sources keeps about the same heap, and
// the heap stays far below the size of the log.
func TestBoundedMemory(t *testing.T) {
	const sources = 10000
	size := int64(50 << 20)
	if testing.Short() {
		size = 20 << 20
	}
	measure := func(size int64) (uint64, *Tally, *logGen) {
		before := retained()
		tl := NewTally()
		g := &logGen{size: size, sources: sources}
		if _, err := tl.Read("gen.log", g); err != nil {
			t.Fatal(err)
		}
		after := retained()
		runtime.KeepAlive(tl)
		if after < before {
			return 0, tl, g
		}
		return after - before, tl, g
	}
	small, _, _ := measure(size / 10)
	big, tl, g := measure(size)
	t.Logf("%d MB, %d lines, %d sources: heap %.1f MB retained (%.1f MB after a tenth of it)", size>>20, tl.Lines, len(tl.Sources()), float64(big)/(1<<20), float64(small)/(1<<20))
	if len(tl.Sources()) != sources || tl.Lines != g.lines || tl.Unreadable < g.bad-1 || tl.Unreadable > g.bad+1 {
		t.Errorf("%d sources, %d lines, %d unreadable; generated %d lines, %d malformed", len(tl.Sources()), tl.Lines, tl.Unreadable, g.lines, g.bad)
	}
	if big > 16<<20 {
		t.Errorf("a tally of %d sources holds %d MB after a %d MB log", sources, big>>20, size>>20)
	}
	if big > small+4<<20 {
		t.Errorf("the heap grew with the log: %d KB after %d MB, %d KB after %d MB", small>>10, size/10>>20, big>>10, size>>20)
	}
}

func TestTallyFiles(t *testing.T) {
	tl := NewTally()
	if _, err := tl.Read("a.log", strings.NewReader("192.0.2.1\nnope 1\n192.0.2.2\n")); err != nil {
		t.Fatal(err)
	}
	st, err := tl.Read("b.log", strings.NewReader("nope 2\nnope 3\nnope 4\nnope 5\nnope 6\n"+strings.Repeat("y", MaxLine+1)+"\n# comment\n\n192.0.2.1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != 9 || st.Unreadable != 5 || st.TooLong != 1 || len(st.Examples) != 4 || st.Addrs != 1 {
		t.Errorf("b.log: %+v", st)
	}
	if tl.Lines != 12 || tl.Malformed() != 7 || tl.Addrs != 2 || len(tl.Examples) != MaxExamples || tl.Formats[FormatList] != 3 {
		t.Errorf("tally: %+v", tl.Stats)
	}
	if e := tl.Examples[0]; e.File != "a.log" || e.Line != 2 || e.Text != "nope 1" {
		t.Errorf("first example %+v", e)
	}
	s := tl.Sources()[0]
	if s.File != "a.log" || s.FirstLine != 1 || s.LastFile != "b.log" || s.LastLine != 9 || s.Hits != 2 {
		t.Errorf("192.0.2.1: %+v", s)
	}
	long := NewTally()
	long.Read("", strings.NewReader(strings.Repeat("é", 300)+" x\n"))
	if e := long.Examples[0].Text; len(e) > exampleLen || !strings.HasPrefix(e, "éé") || strings.ContainsRune(e, '\uFFFD') {
		t.Errorf("a long example: %q", e)
	}
}

func TestMaxSources(t *testing.T) {
	tl := NewTally()
	tl.MaxSources = 2
	_, err := tl.Read("", strings.NewReader("192.0.2.1\n192.0.2.2\n192.0.2.1\n192.0.2.3\n"))
	if !errors.Is(err, ErrTooManySources) || len(tl.Sources()) != 2 {
		t.Errorf("%v, %d sources", err, len(tl.Sources()))
	}
}

func TestClassify(t *testing.T) {
	src := &Source{Addr: netip.MustParseAddr("192.0.2.1"), Hits: 1}
	for _, c := range []struct {
		name    string
		sum     store.Summary
		verdict string
		why     string
		optOut  string
	}{
		{"unseen", store.Summary{}, NotSeen, "look closer", ""},
		{"malicious", store.Summary{Noise: true, Classification: "malicious", Tags: []string{"SSH_BRUTEFORCE"}, Sensors: 1, Destinations: 1}, Malicious, "attacks the sensors: SSH_BRUTEFORCE (seen by 1 sensor at 1 address)", ""},
		{"benign", store.Summary{Noise: true, Classification: "benign", Actor: "Shodan", Sensors: 3, Destinations: 3}, Benign, "Shodan, a known scanner (opt out: https://www.shodan.io/)", "https://www.shodan.io/"},
		{"benign unnamed", store.Summary{Noise: true, Classification: "benign"}, Benign, "a known scanner", ""},
		{"rare", store.Summary{Noise: true, Classification: "unknown", Sensors: 1, Destinations: 1, Tags: []string{"TCP_SYN"}}, Rare, "seen by only 1 sensor at 1 address: not clearly Internet-wide; look closer (TCP_SYN)", ""},
		{"noise by addresses", store.Summary{Noise: true, Classification: "unknown", Sensors: 1, Destinations: 3, Tags: []string{"ZMAP"}}, Noise, "scans everyone (seen by 1 sensor at 3 addresses), intent unknown: ZMAP", ""},
		{"noise by sensors", store.Summary{Noise: true, Classification: "unknown", Sensors: 2, Destinations: 1}, Noise, "seen by 2 sensors at 1 address", ""},
		{"noise from an older server", store.Summary{Noise: true, Classification: "unknown"}, Noise, "scans everyone, intent unknown", ""},
	} {
		r := Classify(src, c.sum, nil)
		if r.Verdict != c.verdict || !strings.Contains(r.Why, c.why) || r.OptOut != c.optOut || r.Attention != attention[c.verdict] {
			t.Errorf("%s: %+v", c.name, r)
		}
	}
}

func TestTriageSortAndJSON(t *testing.T) {
	tl := NewTally()
	tl.Read("x.log", strings.NewReader("192.0.2.1\n192.0.2.2\n192.0.2.2\n192.0.2.3\n192.0.2.4\n192.0.2.4\nnot one\n"))
	sums := map[string]store.Summary{
		"192.0.2.1": {Noise: true, Classification: "benign", Actor: "SHODAN"},
		"192.0.2.2": {Noise: true, Classification: "unknown", Sensors: 4, Destinations: 9},
		"192.0.2.3": {Noise: true, Classification: "malicious"},
	}
	calls := 0
	rows, err := Triage(t.Context(), tl.Sources(), func(_ context.Context, ips []netip.Addr) ([]store.Summary, error) {
		calls++
		var out []store.Summary
		for _, ip := range ips {
			s := sums[ip.String()]
			s.IP = ip
			out = append(out, s)
		}
		return out, nil
	}, nil)
	if err != nil || calls != 1 {
		t.Fatal(err, calls)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.Addr.String()+" "+r.Verdict)
	}
	if g := strings.Join(got, ", "); g != "192.0.2.4 not seen, 192.0.2.3 malicious, 192.0.2.2 noise, 192.0.2.1 benign" {
		t.Errorf("order: %s", g)
	}
	var buf bytes.Buffer
	rep := tl.Report(rows)
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(rep)
	var a, b any
	if err := json.Unmarshal(buf.Bytes(), &a); err != nil {
		t.Fatalf("%v:\n%s", err, buf.String())
	}
	json.Unmarshal(want, &b)
	if fmt.Sprint(a) != fmt.Sprint(b) || rep.Malformed != 1 || !strings.Contains(buf.String(), `"opt_out":"https://www.shodan.io/"`) {
		t.Errorf("streamed JSON differs:\n%s\n%s", buf.String(), want)
	}
	empty := NewTally().Report(nil)
	buf.Reset()
	empty.WriteJSON(&buf)
	if !json.Valid(buf.Bytes()) || !strings.Contains(buf.String(), `"sources":[`) || !strings.Contains(buf.String(), `"malformed_examples":[]`) {
		t.Errorf("empty report: %s", buf.String())
	}
}

// BenchmarkRead: the parse rate of the generated mix (b.N logs of 16 MB,
// about 160,000 lines each).
func BenchmarkRead(b *testing.B) {
	log, _ := io.ReadAll(&logGen{size: 16 << 20, sources: 10000})
	b.SetBytes(int64(len(log)))
	lines := 0
	for b.Loop() {
		st, err := NewTally().Read("", bytes.NewReader(log))
		if err != nil {
			b.Fatal(err)
		}
		lines += st.Lines
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}
