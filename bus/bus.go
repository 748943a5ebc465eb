// Package bus carries records and control state between the roles: NATS
// JetStream, embedded in the process by default (store in the data
// directory), or an external NATS server or cluster given by URL. Scan
// results and sensor events travel as record batches on two streams;
// control state (exclusion lists, API keys, watchlists, scan jobs, the
// sensor registry) lives in key-value buckets, replicated wherever the bus
// is.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/record"
)

// Streams and the subjects their records are published on.
const (
	StreamResults = "RESULTS" // scan results: record batches of services
	StreamEvents  = "EVENTS"  // sensor events: record batches of events

	SubjectResults = "vantage.results" // + "." + producer
	SubjectEvents  = "vantage.events"

	// StreamAudit is the append-only audit log (opt-out requests, decisions,
	// exclusion list versions): kept forever, its messages can be neither
	// deleted nor purged.
	StreamAudit  = "AUDIT"
	SubjectAudit = "vantage.audit"

	// StreamJobs is the work queue of scan jobs (package job): each job is
	// taken by one scanner worker and removed once it is done.
	StreamJobs  = "JOBS"
	SubjectJobs = "vantage.jobs"
)

// Key-value buckets for control state.
var Buckets = []string{"exclusions", "optouts", "apikeys", "watchlists", "scanjobs", "sensors", "alerts", "monitor"}

// Config says which bus to use.
type Config struct {
	URL       string // nats://host:port[,...]; empty runs an embedded server
	CredsFile string // NATS credentials file for URL
	Token     string // NATS token for URL

	Dir    string // embedded: JetStream store directory
	Listen string // embedded: also accept NATS clients on this address (host:port); empty = in-process only

	Replicas  int           // stream and bucket replicas (1 embedded; 3 on a cluster)
	MaxAge    time.Duration // how long a stream keeps messages (default 7 days); the store keeps its own retention
	MaxBytes  int64         // stream size cap per stream (default: none)
	Duplicate time.Duration // window in which a re-published batch ID is dropped (default 10 minutes)
}

// Bus is an open connection to the bus, and the embedded server if any.
type Bus struct {
	NC  *nats.Conn
	JS  jetstream.JetStream
	srv *server.Server
	log *slog.Logger
	cfg Config
}

// Open connects to the bus (starting the embedded server when Config.URL
// is empty) and creates the streams and buckets if they do not exist.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Bus, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 7 * 24 * time.Hour
	}
	if cfg.Duplicate <= 0 {
		cfg.Duplicate = 10 * time.Minute
	}
	b := &Bus{log: log, cfg: cfg}
	var err error
	if cfg.URL == "" {
		if err = b.startEmbedded(); err != nil {
			return nil, err
		}
		b.NC, err = nats.Connect(b.srv.ClientURL(), nats.InProcessServer(b.srv), nats.Name("vantage"))
	} else {
		opts := []nats.Option{nats.Name("vantage"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
		if cfg.CredsFile != "" {
			opts = append(opts, nats.UserCredentials(cfg.CredsFile))
		}
		if cfg.Token != "" {
			opts = append(opts, nats.Token(cfg.Token))
		}
		b.NC, err = nats.Connect(cfg.URL, opts...)
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to the bus: %w", err)
	}
	if b.JS, err = jetstream.New(b.NC); err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := b.setup(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Bus) startEmbedded() error {
	if b.cfg.Dir == "" {
		return errors.New("embedded bus: no data directory")
	}
	dir := filepath.Join(b.cfg.Dir, "jetstream")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("embedded bus: %w", err)
	}
	opts := &server.Options{
		ServerName: "vantage-embedded", JetStream: true, StoreDir: dir,
		NoSigs: true, NoLog: true, MaxPayload: 8 << 20,
	}
	if b.cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(b.cfg.Listen)
		if err != nil {
			return fmt.Errorf("embedded bus: listen address %q: %w", b.cfg.Listen, err)
		}
		opts.Host, opts.Port = host, port
		if port == 0 {
			opts.Port = server.RANDOM_PORT // a free port; ClientURL names it
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("embedded bus: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return errors.New("embedded bus: server not ready after 30 s")
	}
	b.srv = srv
	b.log.Info("embedded bus started", "store", dir, "listen", b.cfg.Listen)
	return nil
}

// ClientURL is the address NATS clients in other processes can use: the
// embedded server's listener, or the configured URL.
func (b *Bus) ClientURL() string {
	if b.cfg.URL != "" {
		return b.cfg.URL
	}
	if b.cfg.Listen == "" {
		return ""
	}
	return b.srv.ClientURL()
}

func (b *Bus) setup(ctx context.Context) error {
	for _, sc := range []jetstream.StreamConfig{
		{Name: StreamResults, Subjects: []string{SubjectResults + ".>"}},
		{Name: StreamEvents, Subjects: []string{SubjectEvents + ".>"}},
	} {
		sc.Storage = jetstream.FileStorage
		sc.Replicas = b.cfg.Replicas
		sc.MaxAge = b.cfg.MaxAge
		sc.Duplicates = b.cfg.Duplicate
		sc.MaxMsgSize = 8 << 20
		if b.cfg.MaxBytes > 0 {
			sc.MaxBytes = b.cfg.MaxBytes
		}
		if _, err := b.JS.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	if _, err := b.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamAudit, Subjects: []string{SubjectAudit + ".>"}, Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas,
		DenyDelete: true, DenyPurge: true, MaxMsgSize: 1 << 20,
	}); err != nil {
		return fmt.Errorf("stream %s: %w", StreamAudit, err)
	}
	if _, err := b.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamJobs, Subjects: []string{SubjectJobs + ".>"}, Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas,
		Retention: jetstream.WorkQueuePolicy, Duplicates: b.cfg.Duplicate, MaxMsgSize: 4 << 20,
	}); err != nil {
		return fmt.Errorf("stream %s: %w", StreamJobs, err)
	}
	for _, name := range Buckets {
		if _, err := b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: name, Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas, History: 8,
		}); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

// KV returns a control-state bucket.
func (b *Bus) KV(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	return b.JS.KeyValue(ctx, bucket)
}

// Close drains the connection and stops the embedded server.
func (b *Bus) Close() {
	if b.NC != nil {
		b.NC.Drain()
		b.NC.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

// Publish sends one batch and waits until the bus has stored it. The batch
// ID is the message ID, so a batch published twice within the duplicate
// window is kept once.
func (b *Bus) Publish(ctx context.Context, subject string, batch *record.Batch) error {
	_, err := b.JS.Publish(ctx, subject, batch.Marshal(), jetstream.WithMsgID(batch.ID.String()))
	if err != nil {
		return fmt.Errorf("publish %d records on %s: %w", batch.Len(), subject, err)
	}
	return nil
}

// Subject is the subject a producer publishes a stream's batches on.
func Subject(stream, producer string) string {
	base := SubjectResults
	if stream == StreamEvents {
		base = SubjectEvents
	}
	return base + "." + sanitize(producer)
}

// sanitize makes a producer name a single subject token.
func sanitize(s string) string {
	if s == "" {
		return "unnamed"
	}
	out := []byte(s)
	for i, c := range out {
		if c == '.' || c == '*' || c == '>' || c <= ' ' || c >= 0x7f {
			out[i] = '_'
		}
	}
	return string(out)
}

func splitHostPort(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", port)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, p, nil
}
