package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

// BenchmarkIngest measures how many rows a second the store ingests per
// ClickHouse node: events (sensor traffic) and services (scan results,
// which also read and merge the stored state), on one node and on two
// shards (rows/s/node divides by the nodes), and the bytes on disk per row
// afterwards. Each Ingest call stores ten batches of 1000 records, as the
// ingester groups bus messages. The rows are synthetic (random addresses,
// one banner): real traffic compresses differently.
func BenchmarkIngest(b *testing.B) {
	for _, tp := range topologies {
		for _, kind := range []string{"events", "services"} {
			b.Run(fmt.Sprintf("%s/%s", tp.name, kind), func(b *testing.B) {
				servers := start(b, tp)
				s := open(b, servers, tp.cluster, "bench")
				ctx := context.Background()
				rng := rand.New(rand.NewPCG(7, 8))
				now := time.Now().UTC()
				const perCall, perBatch = 10, 1000
				calls := make([][]*record.Batch, 0, b.N)
				for range b.N {
					call := make([]*record.Batch, perCall)
					for j := range call {
						bt := &record.Batch{ID: record.NewID(), Producer: "bench"}
						if kind == "events" {
							bt.Events = synthEvents(rng, perBatch, now)
						} else {
							bt.Services = synthServices(rng, perBatch, now)
						}
						call[j] = bt
					}
					calls = append(calls, call)
				}
				b.ResetTimer()
				start := time.Now()
				for _, call := range calls {
					if _, err := s.Ingest(ctx, call); err != nil {
						b.Fatal(err)
					}
				}
				rows := float64(b.N * perCall * perBatch)
				secs := time.Since(start).Seconds()
				b.ReportMetric(rows/secs, "rows/s")
				b.ReportMetric(rows/secs/float64(tp.nodes), "rows/s/node")
				// on disk, compressed: for services, the current state and
				// the history row together
				if u, err := s.Usage(ctx); err == nil {
					b.ReportMetric(float64(u.Bytes)/rows, "disk-B/row")
				}
			})
		}
	}
}

func synthServices(rng *rand.Rand, n int, now time.Time) []record.Service {
	out := make([]record.Service, n)
	for i := range out {
		k := rng.Uint32()
		ip := netip.AddrFrom4([4]byte{byte(1 + k%220), byte(k >> 8), byte(k >> 16), byte(k >> 24)})
		port := uint16([]int{22, 80, 443, 8080}[rng.IntN(4)])
		out[i] = record.Service{ID: record.ServiceID("bench", ip, port, "tcp"), Time: now, ScanID: "bench", IP: ip, Port: port,
			Transport: "tcp", State: "open", TTL: 57, Window: 64240, Protocol: "http", Product: "nginx", Version: "1.18.0",
			Banner: []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n\x00\xff"), HTTP: &record.HTTP{Status: 200, Title: "Welcome"},
			Geo: record.Geo{Country: "DE", ASN: 64500, Org: "Org"}}
	}
	return out
}
