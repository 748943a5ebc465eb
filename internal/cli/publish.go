package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/client"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/scan"
	"github.com/vantagehq/vantage/spool"
)

// publisher sends a scan's TCP results to the platform as services, in
// batches, over HTTP (--server) or straight onto the bus (--nats).
type publisher struct {
	batcher   *record.Batcher
	spool     *spool.Spool
	stopSpool context.CancelFunc
	closeFn   func()
	stderr    io.Writer
}

func newPublisher(ctx context.Context, serverURL, key, natsURL string, log *slog.Logger, stderr io.Writer) (*publisher, error) {
	return newStreamPublisher(ctx, pubConfig{role: "scanner", stream: bus.StreamResults, endpoint: "results",
		server: serverURL, key: key, nats: natsURL}, log, stderr)
}

// pubConfig says where a role's batches go.
type pubConfig struct {
	role, stream, endpoint string // "sensor", bus.StreamEvents, "events"
	server, key, nats      string
	// spoolDir keeps every batch on disk until the far side has it, so an
	// unreachable bus or a restart loses nothing
	spoolDir string
	maxDelay time.Duration
}

// newStreamPublisher publishes batches from a role ("scanner", "sensor")
// to a bus stream, or to the server's ingest endpoint of the same name.
func newStreamPublisher(ctx context.Context, pc pubConfig, log *slog.Logger, stderr io.Writer) (*publisher, error) {
	role, stream, endpoint, serverURL, key, natsURL := pc.role, pc.stream, pc.endpoint, pc.server, pc.key, pc.nats
	host, _ := os.Hostname()
	producer := role + "/" + host
	p := &publisher{stderr: stderr, closeFn: func() {}}
	var send func(context.Context, *record.Batch) error
	switch {
	case natsURL != "":
		b, err := bus.Open(ctx, bus.Config{URL: natsURL, Token: os.Getenv("VANTAGE_NATS_TOKEN"), CredsFile: os.Getenv("VANTAGE_NATS_CREDS")}, log)
		if err != nil {
			return nil, err
		}
		p.closeFn = b.Close
		subject := bus.Subject(stream, producer)
		send = func(ctx context.Context, batch *record.Batch) error { return b.Publish(ctx, subject, batch) }
	default:
		c := client.New(serverURL, key)
		send = func(ctx context.Context, batch *record.Batch) error { return c.Ingest(ctx, endpoint, batch) }
	}
	if pc.spoolDir != "" {
		sctx, cancel := context.WithCancel(context.Background())
		sp, err := spool.Open(sctx, spool.Config{Dir: pc.spoolDir, Send: send, Log: log})
		if err != nil {
			cancel()
			return nil, err
		}
		p.spool, p.stopSpool = sp, cancel
		send = func(_ context.Context, b *record.Batch) error { return sp.Put(b) }
	}
	if pc.maxDelay <= 0 {
		pc.maxDelay = time.Second
	}
	p.batcher = record.NewBatcher(record.BatcherConfig{
		Producer: producer, Send: send, MaxRecords: 1000, MaxDelay: pc.maxDelay,
		OnError: func(err error, attempt int) {
			if attempt == 1 || attempt%10 == 0 {
				fmt.Fprintf(stderr, "vantage: publishing results (will retry): %v\n", err)
			}
		},
	})
	return p, nil
}

// Write is the scan.Writer side: TCP results become service records.
func (p *publisher) Write(r *scan.Result) error {
	if r.Proto != "tcp" {
		return nil // address-only results are not services
	}
	s := record.Service{Time: r.Time.UTC(), ScanID: r.ScanID, IP: r.IP, Port: r.Port, Transport: "tcp",
		State: r.State.String(), TTL: r.TTL, Window: r.Window}
	s.ID = record.ServiceID(s.ScanID, s.IP, s.Port, s.Transport)
	p.batcher.AddService(s)
	return nil
}

func (p *publisher) Flush() error { return nil }

// Close sends what is left, waiting up to a minute.
func (p *publisher) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := p.batcher.Close(ctx)
	if p.spool != nil {
		if derr := p.spool.Drain(ctx); derr != nil && err == nil {
			err = fmt.Errorf("%w (they are delivered at the next start)", derr)
		}
		p.stopSpool()
	}
	batches, records, _ := p.batcher.Sent()
	fmt.Fprintf(p.stderr, "vantage: published %d records in %d batches\n", records, batches)
	p.closeFn()
	return err
}

// teeWriter writes results to several writers.
type teeWriter []scan.Writer

func (t teeWriter) Write(r *scan.Result) error {
	for _, w := range t {
		if err := w.Write(r); err != nil {
			return err
		}
	}
	return nil
}

func (t teeWriter) Flush() error {
	for _, w := range t {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}
