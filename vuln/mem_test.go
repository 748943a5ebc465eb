package vuln

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// synth writes a synthetic NVD 2.0 feed of n CVEs over products
// vendor:product pairs, shaped like the real feed: a description of pad
// bytes, a CVSS v3.1 metric, references, and 1 to 8 match entries per
// CVE (ranges of the four bound kinds, exact version lists, all
// versions). every, if set, is called every 1000 items.
func synth(w io.Writer, n, products, pad int, every func(i int)) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	r := rand.New(rand.NewPCG(1, 2))
	desc := strings.Repeat("A crafted request lets a remote attacker do something bad. ", pad/50+1)[:pad]
	ver := func() string {
		return fmt.Sprintf("%d.%d.%d", r.IntN(12), r.IntN(20), r.IntN(60))
	}
	fmt.Fprintf(bw, `{"resultsPerPage":%d,"startIndex":0,"totalResults":%d,"format":"NVD_CVE","version":"2.0","timestamp":"2026-11-27T00:00:00.000","vulnerabilities":[`, n, n)
	for i := range n {
		if i > 0 {
			bw.WriteByte(',')
		}
		if every != nil && i%1000 == 0 {
			every(i)
		}
		p := int(float64(products) * r.Float64() * r.Float64()) // skewed: few products have many CVEs
		fmt.Fprintf(bw, `{"cve":{"id":"CVE-%d-%05d","sourceIdentifier":"cve@mitre.org","published":"2024-01-01T00:00:00.000","lastModified":"2024-02-01T00:00:00.000","vulnStatus":"Analyzed","cveTags":[],"descriptions":[{"lang":"en","value":"%s"}],`, 1999+i/100000, i%100000, desc)
		fmt.Fprintf(bw, `"metrics":{"cvssMetricV31":[{"source":"nvd@nist.gov","type":"Primary","cvssData":{"version":"3.1","vectorString":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H","baseScore":%.1f,"baseSeverity":"HIGH","attackVector":"NETWORK"},"exploitabilityScore":3.9,"impactScore":5.9}]},`, float64(r.IntN(100))/10)
		bw.WriteString(`"weaknesses":[{"source":"nvd@nist.gov","type":"Primary","description":[{"lang":"en","value":"CWE-79"}]}],"configurations":[{"nodes":[{"operator":"OR","negate":false,"cpeMatch":[`)
		k := 1 + r.IntN(8)
		for j := range k {
			if j > 0 {
				bw.WriteByte(',')
			}
			crit := fmt.Sprintf("cpe:2.3:a:vendor%d:product%d", p/4, p)
			switch r.IntN(6) {
			case 0:
				fmt.Fprintf(bw, `{"vulnerable":true,"criteria":"%s:*:*:*:*:*:*:*:*","versionEndExcluding":"%s","matchCriteriaId":"9A5B8D3C-0000-4000-8000-%012d"}`, crit, ver(), i)
			case 1:
				fmt.Fprintf(bw, `{"vulnerable":true,"criteria":"%s:*:*:*:*:*:*:*:*","versionStartIncluding":"%s","versionEndExcluding":"%s","matchCriteriaId":"9A5B8D3C-0000-4000-8000-%012d"}`, crit, ver(), ver(), i)
			case 2:
				fmt.Fprintf(bw, `{"vulnerable":true,"criteria":"%s:*:*:*:*:*:*:*:*","versionStartExcluding":"%s","versionEndIncluding":"%s","matchCriteriaId":"9A5B8D3C-0000-4000-8000-%012d"}`, crit, ver(), ver(), i)
			case 3:
				fmt.Fprintf(bw, `{"vulnerable":false,"criteria":"cpe:2.3:o:linux:linux_kernel:-:*:*:*:*:*:*:*","matchCriteriaId":"9A5B8D3C-0000-4000-8000-%012d"}`, i)
			default:
				fmt.Fprintf(bw, `{"vulnerable":true,"criteria":"%s:%s:*:*:*:*:*:*:*","matchCriteriaId":"9A5B8D3C-0000-4000-8000-%012d"}`, crit, ver(), i)
			}
		}
		fmt.Fprintf(bw, `]}]}],"references":[{"url":"https://example.com/advisories/%d","source":"cve@mitre.org","tags":["Vendor Advisory"]}]}}`, i)
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// loadSynth streams a synthetic feed through a pipe (never whole in
// memory) and returns the DB, the peak HeapInuse seen while loading, and
// the bytes streamed.
func loadSynth(t testing.TB, n, products, pad int) (*DB, uint64, int64) {
	pr, pw := io.Pipe()
	var peak uint64
	var written int64
	cw := &countWriter{w: pw, n: &written}
	go func() {
		err := synth(cw, n, products, pad, func(int) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		})
		pw.CloseWithError(err)
	}()
	im := NewImporter()
	if err := im.Add("synthetic", pr); err != nil {
		t.Fatal(err)
	}
	return im.DB(), peak, written
}

type countWriter struct {
	w io.Writer
	n *int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	*c.n += int64(len(p))
	return c.w.Write(p)
}

// TestStreamBounded feeds a 256 MB feed through a pipe: the heap in use
// stays far below the stream's size, as one item is decoded at a time.
func TestStreamBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 256 MB")
	}
	start := time.Now()
	const items, pad = 16 << 10, 16 << 10 // 16 Ki items of about 17 KB
	db, peak, n := loadSynth(t, items, 50, pad)
	st := db.Stats()
	if st.Items != items || st.Skipped != 0 {
		t.Fatalf("Items = %d, Skipped = %d, want %d, 0", st.Items, st.Skipped, items)
	}
	t.Logf("streamed %d MB in %v (%.0f MB/s): %d CVEs, %d entries; peak HeapInuse %.1f MiB",
		n>>20, time.Since(start).Round(time.Millisecond), float64(n)/1e6/time.Since(start).Seconds(), st.CVEs, st.Entries, float64(peak)/(1<<20))
	if n < 250<<20 {
		t.Errorf("streamed only %d bytes", n)
	}
	if peak > 48<<20 {
		t.Errorf("peak HeapInuse %d MiB for a %d MiB stream: not bounded", peak>>20, n>>20)
	}
}

// BenchmarkLoad200k reports the heap a synthetic 200,000-CVE feed takes
// once loaded (heap-MiB, B/entry), the peak heap in use while loading
// (peak-MiB), and the load rate; the feed is generated as it is read.
// Run it with -benchtime 1x.
func BenchmarkLoad200k(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		db, peak, n := loadSynth(b, 200_000, 20_000, 0)
		took := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		st := db.Stats()
		heap := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		b.Logf("200k CVEs: %d MB streamed in %v; %d CVEs, %d entries, %d products",
			n>>20, took.Round(time.Millisecond), st.CVEs, st.Entries, len(db.products))
		b.ReportMetric(heap, "heap-MiB")
		b.ReportMetric(heap*(1<<20)/float64(st.Entries), "B/entry")
		b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
		b.ReportMetric(200_000/took.Seconds(), "CVEs/s")
		b.ReportMetric(float64(n)/1e6/took.Seconds(), "MB/s")
		runtime.KeepAlive(db)
	}
}

func BenchmarkLoad(b *testing.B) {
	var buf bytes.Buffer
	if err := synth(&buf, 10_000, 2_000, 300, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		im := NewImporter()
		if err := im.Add("bench", bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
		im.DB()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10_000, "ns/CVE")
}

var (
	benchOnce sync.Once
	benchDB   *DB
)

func BenchmarkMatch(b *testing.B) {
	benchOnce.Do(func() { benchDB, _, _ = loadSynth(b, 200_000, 20_000, 0) })
	r := rand.New(rand.NewPCG(3, 4))
	var cpes []string
	for range 1024 {
		p := int(20_000 * r.Float64() * r.Float64())
		cpes = append(cpes, fmt.Sprintf("cpe:2.3:a:vendor%d:product%d:%d.%d.%d:*:*:*:*:*:*:*", p/4, p, r.IntN(12), r.IntN(20), r.IntN(60)))
	}
	b.ReportAllocs()
	hits, i := 0, 0
	for b.Loop() {
		hits += len(benchDB.Match(cpes[i%len(cpes)]))
		i++
	}
	b.ReportMetric(float64(hits)/float64(i), "cves/match")
}
