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
)

// publisher sends a scan's TCP results to the platform as services, in
// batches, over HTTP (--server) or straight onto the bus (--nats).
type publisher struct {
	batcher *record.Batcher
	closeFn func()
	stderr  io.Writer
}

func newPublisher(ctx context.Context, serverURL, key, natsURL string, log *slog.Logger, stderr io.Writer) (*publisher, error) {
	return newStreamPublisher(ctx, "scanner", bus.StreamResults, "results", serverURL, key, natsURL, log, stderr)
}

// newStreamPublisher publishes batches from a role ("scanner", "sensor")
// to a bus stream, or to the server's ingest endpoint of the same name.
func newStreamPublisher(ctx context.Context, role, stream, endpoint, serverURL, key, natsURL string, log *slog.Logger, stderr io.Writer) (*publisher, error) {
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
	p.batcher = record.NewBatcher(record.BatcherConfig{
		Producer: producer, Send: send, MaxRecords: 1000, MaxDelay: time.Second,
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
