package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
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
		cfg, subject := natsClient(natsURL), bus.Subject(stream, producer)
		if pc.spoolDir == "" {
			b, err := bus.Open(ctx, cfg, log)
			if err != nil {
				return nil, err
			}
			p.closeFn = b.Close
			send = func(ctx context.Context, batch *record.Batch) error { return b.Publish(ctx, subject, batch) }
			break
		}
		// with a spool the role starts without the bus: what it records
		// waits on disk until the bus answers (a sensor restarted during
		// a platform outage loses nothing); a URL that can never work is
		// still an error at once
		if err := checkNATSURLs(natsURL); err != nil {
			return nil, err
		}
		lb := openLazyBus(cfg, log, stderr)
		p.closeFn = lb.close
		send = func(ctx context.Context, batch *record.Batch) error {
			b := lb.get()
			if b == nil {
				return errBusNotYet
			}
			return b.Publish(ctx, subject, batch)
		}
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

// natsClient is the bus configuration of a client of the platform's NATS
// at url, with the credentials the environment gives
// ($VANTAGE_NATS_TOKEN, $VANTAGE_NATS_CREDS).
func natsClient(url string) bus.Config {
	return bus.Config{URL: url, Token: os.Getenv("VANTAGE_NATS_TOKEN"), CredsFile: os.Getenv("VANTAGE_NATS_CREDS")}
}

// checkNATSURLs checks the syntax of a comma-separated list of NATS URLs
// (nats://, tls://, ws://, wss://, or host:port).
func checkNATSURLs(list string) error {
	for _, one := range strings.Split(list, ",") {
		one = strings.TrimSpace(one)
		if !strings.Contains(one, "://") {
			one = "nats://" + one
		}
		u, err := url.Parse(one)
		if err != nil {
			return fmt.Errorf("--nats %q: %w", list, err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("--nats %q: scheme %q (want nats://, tls://, ws:// or wss://)", list, u.Scheme)
		}
		if u.Hostname() == "" {
			return fmt.Errorf("--nats %q: no host", list)
		}
	}
	return nil
}

// errBusNotYet is a send before the bus answered: the spool keeps the
// batch and tries again.
var errBusNotYet = errors.New("not connected to the bus yet")

// lazyBus connects to the bus in the background, again and again until
// it answers or close is called.
type lazyBus struct {
	bus    atomic.Pointer[bus.Bus]
	cancel context.CancelFunc
	done   chan struct{}
}

func openLazyBus(cfg bus.Config, log *slog.Logger, stderr io.Writer) *lazyBus {
	ctx, cancel := context.WithCancel(context.Background())
	lb := &lazyBus{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(lb.done)
		wait := time.Second
		for attempt := 1; ; attempt++ {
			b, err := bus.Open(ctx, cfg, log)
			if err == nil {
				lb.bus.Store(b)
				if attempt > 1 {
					fmt.Fprintf(stderr, "vantage: connected to the bus at %s; sending what the spool kept\n", cfg.URL)
				}
				return
			}
			if ctx.Err() != nil {
				return
			}
			if attempt == 1 {
				fmt.Fprintf(stderr, "vantage: the bus at %s does not answer (%v): spooling, and trying again\n", cfg.URL, err)
			}
			log.Warn("bus not reachable", "url", cfg.URL, "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 30*time.Second)
		}
	}()
	return lb
}

// get is the bus once connected, nil before.
func (lb *lazyBus) get() *bus.Bus { return lb.bus.Load() }

// close stops connecting and closes the bus if it was reached.
func (lb *lazyBus) close() {
	lb.cancel()
	<-lb.done
	if b := lb.bus.Load(); b != nil {
		b.Close()
	}
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
