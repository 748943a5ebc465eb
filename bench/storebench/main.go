// Command storebench loads the embedded store with synthetic sensor events
// and scan results and measures what the platform core promises: the
// ingest rate (store only, and end to end from bus publish to queryable)
// and the latency of the API's main queries at that size.
//
//	go run -tags duckdb_arrow ./bench/storebench [-events 10000000] [-services 5000000] [-reps 200]
//
// There is no anchor tool here: the goals are absolute (issue: IP lookup
// p99 <= 5 ms, events per source country in 15 minutes <= 50 ms, top tags
// in the last hour <= 100 ms, a search with two facets <= 200 ms, ingest
// >= 300k events/s end to end).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/ingest"
	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/store/duckdb"
)

var (
	nEvents   = flag.Int("events", 10_000_000, "events to load")
	nServices = flag.Int("services", 5_000_000, "services to load")
	reps      = flag.Int("reps", 200, "repetitions of each query")
	e2e       = flag.Int("e2e", 2_000_000, "events for the end-to-end (bus to store) measure; 0 skips it")
	dir       = flag.String("dir", "", "work directory (default: a temporary one, removed at the end)")
	threads   = flag.Int("threads", 0, "DuckDB threads (0: all cores)")
	reuse     = flag.Bool("reuse", false, "with -dir: query the store loaded by an earlier run instead of loading again")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "storebench:", err)
		os.Exit(1)
	}
}

var (
	tags      = []string{"TCP_SYN", "ZMAP", "MASSCAN", "HTTP_SCANNER", "SSH_BRUTEFORCE", "TELNET_BRUTEFORCE", "MIRAI", "RDP_SCANNER", "SIP_SCANNER", "LOG4SHELL", "SHODAN", "CENSYS"}
	countries = []string{"US", "CN", "DE", "RU", "BR", "NL", "FR", "IN", "GB", "KR", "JP", "VN", "IR", "SG", "HK"}
	products  = []string{"OpenSSH", "nginx", "Apache httpd", "Microsoft IIS", "lighttpd", "Dropbear", "Redis", "MySQL", "PostgreSQL", "Exim"}
	orgs      = []string{"Example Telecom", "Big Cloud", "Hosting GmbH", "Residential ISP", "University Net", "Mobile Co"}
)

// addr spreads n sources over the IPv4 space deterministically.
func addr(i uint32) netip.Addr {
	k := i * 2654435761
	return netip.AddrFrom4([4]byte{byte(1 + k%220), byte(k >> 8), byte(k >> 16), byte(k >> 24)})
}

func events(rng *rand.Rand, n int, now time.Time, sources int) []record.Event {
	out := make([]record.Event, n)
	for i := range out {
		src := uint32(rng.IntN(sources))
		out[i] = record.Event{
			ID: record.NewID(), Time: now.Add(-time.Duration(rng.Int64N(int64(24 * time.Hour)))), Sensor: fmt.Sprintf("s%d", rng.IntN(8)),
			Src: addr(src), SrcPort: uint16(rng.IntN(65536)), Dst: netip.AddrFrom4([4]byte{198, 51, 100, byte(128 + rng.IntN(128))}),
			DstPort: uint16([]int{22, 23, 80, 443, 445, 3389, 5060, 8080}[rng.IntN(8)]), Transport: "tcp",
			TTL: uint8(40 + rng.IntN(200)), IPID: uint16(rng.IntN(65536)), TCPFlags: 2, TCPWindow: 1024, TCPSeq: rng.Uint32(),
			Tags:           []string{tags[src%uint32(len(tags))]},
			Classification: []string{"unknown", "malicious", "benign"}[src%3],
			SrcGeo:         record.Geo{Country: countries[src%uint32(len(countries))], ASN: 64500 + src%500, Org: orgs[src%uint32(len(orgs))]},
			DstCountry:     "DE",
		}
	}
	return out
}

func services(rng *rand.Rand, from, n int, now time.Time) []record.Service {
	out := make([]record.Service, n)
	for i := range out {
		k := uint32(from + i)
		ip := addr(k / 2)
		port := []uint16{22, 80, 443, 8080}[k%4]
		p := products[rng.IntN(len(products))]
		out[i] = record.Service{
			Time: now.Add(-time.Duration(rng.Int64N(int64(7 * 24 * time.Hour)))), ScanID: "bench", IP: ip, Port: port,
			Transport: "tcp", State: "open", Protocol: []string{"ssh", "http", "https", "http"}[k%4], Product: p,
			Version: fmt.Sprintf("%d.%d.%d", 1+rng.IntN(9), rng.IntN(20), rng.IntN(10)),
			Banner:  []byte("SSH-2.0-" + p), Geo: record.Geo{Country: countries[k%uint32(len(countries))], ASN: 64500 + k%500, Org: orgs[k%uint32(len(orgs))]},
		}
		out[i].ID = record.ServiceID("bench", ip, port, "tcp")
	}
	return out
}

func run() error {
	ctx := context.Background()
	work := *dir
	if work == "" {
		d, err := os.MkdirTemp("", "vantage-storebench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	}
	st, err := duckdb.Open(ctx, filepath.Join(work, "store"), duckdb.Options{Threads: *threads})
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UTC()
	rng := rand.New(rand.NewPCG(1, 2))
	const sources = 200_000

	fmt.Printf("# vantage store benchmark (DuckDB, %s)\n\n", time.Now().Format(time.DateTime))
	if *reuse {
		u, err := st.Usage(ctx)
		if err != nil {
			return err
		}
		*nEvents, *nServices = int(u.Tables["events"].Rows), int(u.Tables["services"].Rows)
		var last time.Time
		if r, err := st.SearchEvents(ctx, store.Search{Limit: 1}); err == nil && len(r.Events) > 0 {
			last = r.Events[0].Time
		}
		now = last
		fmt.Printf("reusing %d events (newest %s) and %d services\n\n", *nEvents, last.Format(time.DateTime), *nServices)
		return queries(ctx, st, now, rng, sources, work)
	}
	// load: events in calls of 160 batches of 1000, as the ingester groups
	// them, in time order over the last 24 hours, as sensors send them
	pool := events(rng, 500_000, now, sources)
	step := 24 * time.Hour / time.Duration(max(*nEvents, 1))
	start := time.Now()
	for done := 0; done < *nEvents; {
		var call []*record.Batch
		for j := 0; j < 160 && done < *nEvents; j++ {
			n := min(1000, *nEvents-done)
			evs := make([]record.Event, n)
			copy(evs, pool[done%len(pool):])
			for k := range evs {
				evs[k].ID = record.NewID()
				evs[k].Time = now.Add(-24*time.Hour + time.Duration(done+k)*step)
			}
			call = append(call, &record.Batch{ID: record.NewID(), Events: evs})
			done += n
		}
		if _, err := st.Ingest(ctx, call); err != nil {
			return err
		}
	}
	if err := st.Sync(ctx); err != nil {
		return err
	}
	evRate := float64(*nEvents) / time.Since(start).Seconds()
	start = time.Now()
	for done := 0; done < *nServices; {
		var call []*record.Batch
		for j := 0; j < 50 && done < *nServices; j++ {
			n := min(1000, *nServices-done)
			call = append(call, &record.Batch{ID: record.NewID(), Services: services(rng, done, n, now)})
			done += n
		}
		if _, err := st.Ingest(ctx, call); err != nil {
			return err
		}
	}
	svRate := float64(*nServices) / time.Since(start).Seconds()
	u, _ := st.Usage(ctx)
	fmt.Printf("loaded %d events (%.0f/s into the store, profiles included) and %d services (%.0f/s); %d profiles; %.1f GB on disk\n\n",
		*nEvents, evRate, *nServices, svRate, u.Tables["profiles"].Rows, float64(u.Bytes)/1e9)

	return queries(ctx, st, now, rng, sources, work)
}

func queries(ctx context.Context, st *duckdb.DB, now time.Time, rng *rand.Rand, sources int, work string) error {
	type q struct {
		name string
		goal time.Duration
		fn   func(i int) error
	}
	qs := []q{
		{"IP lookup (services + sensor profile)", 5 * time.Millisecond, func(i int) error {
			_, err := st.Host(ctx, addr(uint32(rng.IntN(*nServices/2))))
			if err == store.ErrNotFound {
				err = nil
			}
			return err
		}},
		{"sensor view of an IP (profile + 50 recent events)", 0, func(i int) error {
			_, err := st.Profile(ctx, addr(uint32(rng.IntN(sources))), 50)
			if err == store.ErrNotFound {
				err = nil
			}
			return err
		}},
		{"events per source country, last 15 minutes", 50 * time.Millisecond, func(i int) error {
			_, err := st.EventStats(ctx, store.Stats{Since: now.Add(-15 * time.Minute), By: "src_country", Now: now})
			return err
		}},
		{"top tags, last hour", 100 * time.Millisecond, func(i int) error {
			_, err := st.EventStats(ctx, store.Stats{Since: now.Add(-time.Hour), By: "tag", Now: now})
			return err
		}},
		{"country x country matrix, last hour", 0, func(i int) error {
			_, err := st.Matrix(ctx, now.Add(-time.Hour))
			return err
		}},
		{"search product:openssh version:<5.0 with facets country,org", 200 * time.Millisecond, func(i int) error {
			fs, err := query.ParseFacets("country,org", query.Services)
			if err != nil {
				return err
			}
			_, err = st.SearchServices(ctx, store.Search{Query: "product:openssh version:<5.0", Now: now, Limit: 20, Facets: fs})
			return err
		}},
		{"free text on banners: \"openssh\" (substring scan), with a count", 0, func(i int) error {
			_, err := st.SearchServices(ctx, store.Search{Query: `"SSH-2.0-OpenSSH"`, Now: now, Limit: 20})
			return err
		}},
		{"search port:443 with facets country,product (no filter on version)", 200 * time.Millisecond, func(i int) error {
			fs, _ := query.ParseFacets("country,product", query.Services)
			_, err := st.SearchServices(ctx, store.Search{Query: "port:443", Now: now, Limit: 20, Facets: fs})
			return err
		}},
	}
	// warm up: a running server has its hot data in DuckDB's buffer pool
	for i := 0; i < 200; i++ {
		st.Host(ctx, addr(uint32(rng.IntN(max(*nServices/2, 1)))))
	}
	fmt.Println("| query | runs | p50 ms | p90 ms | p99 ms | goal | |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, qq := range qs {
		n := *reps
		if qq.goal >= 50*time.Millisecond || qq.goal == 0 {
			n = max(*reps/10, 5)
		}
		var ds []time.Duration
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if err := qq.fn(i); err != nil {
				return fmt.Errorf("%s: %w", qq.name, err)
			}
			ds = append(ds, time.Since(t0))
		}
		slices.Sort(ds)
		p50, p90, p99 := ds[len(ds)/2], ds[len(ds)*9/10], ds[min(len(ds)-1, len(ds)*99/100)]
		verdict, goal := "", "-"
		if qq.goal > 0 {
			goal = fmt.Sprintf("p99 <= %d ms", qq.goal.Milliseconds())
			verdict = "ok"
			if p99 > qq.goal {
				verdict = "MISSED"
			}
		}
		fmt.Printf("| %s | %d | %.2f | %.2f | %.2f | %s | %s |\n", qq.name, n, ms(p50), ms(p90), ms(p99), goal, verdict)
	}
	if *e2e > 0 {
		rate, err := endToEnd(ctx, work, *e2e)
		if err != nil {
			return err
		}
		fmt.Printf("\nend to end, bus publish to queryable (embedded NATS, fresh store): %d events at %.0f events/s (goal 300000)\n", *e2e, rate)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// endToEnd publishes events on an embedded bus with a batching producer
// while an ingester stores them, and times it until the store counts them all.
func endToEnd(ctx context.Context, work string, n int) (float64, error) {
	d := filepath.Join(work, "e2e")
	b, err := bus.Open(ctx, bus.Config{Dir: d}, nil)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	st, err := duckdb.Open(ctx, filepath.Join(d, "store"), duckdb.Options{})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	in := ingest.New(ingest.Config{Bus: b, Store: st})
	ictx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { in.Run(ictx); close(done) }()
	defer func() { stop(); <-done }()

	rng := rand.New(rand.NewPCG(3, 4))
	pool := events(rng, 100_000, time.Now().UTC(), 20_000)
	var failures atomic.Int64
	start := time.Now()
	bt := record.NewBatcher(record.BatcherConfig{Producer: "bench", Queue: 64, Send: func(ctx context.Context, batch *record.Batch) error {
		return b.Publish(ctx, bus.Subject(bus.StreamEvents, "bench"), batch)
	}, OnError: func(error, int) { failures.Add(1) }})
	for i := 0; i < n; i++ {
		e := pool[i%len(pool)]
		e.ID = record.NewID()
		bt.AddEvent(e)
	}
	if err := bt.Close(ctx); err != nil {
		return 0, err
	}
	for {
		if s := in.Stats(); s.Events >= uint64(n) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return 0, fmt.Errorf("only %d of %d events stored after 10 minutes", in.Stats().Events, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
