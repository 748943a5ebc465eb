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

	// Replicas of streams and buckets (1 embedded; 3 on a three-node
	// cluster). The server sets it; 0 (a scanner, a sensor, a CLI client of
	// an external bus) creates what is missing with 1 replica and leaves
	// existing streams and buckets as their owner made them.
	Replicas  int
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
	// owner: Open creates and updates streams and buckets to cfg (the
	// server, the embedded bus); else it only creates missing ones
	owner bool
}

// clientOptions make a connection to an external bus ride out the loss of
// a node or of the link: it reconnects forever (to any node of the URL
// list and those the cluster announces), buffers what is published while
// it is away, and notices a dead peer within half a minute even when no
// TCP reset arrives (a far-away sensor behind NAT).
func clientOptions(log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name("vantage"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.ReconnectBufSize(64 << 20), // eight full batches; the publishers keep the rest
		nats.Timeout(5 * time.Second),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("bus: disconnected (reconnecting)", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Warn("bus: reconnected", "server", nc.ConnectedUrlRedacted())
		}),
	}
}

// Open connects to the bus (starting the embedded server when Config.URL
// is empty) and creates the streams and buckets if they do not exist.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Bus, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 7 * 24 * time.Hour
	}
	if cfg.Duplicate <= 0 {
		cfg.Duplicate = 10 * time.Minute
	}
	b := &Bus{log: log, cfg: cfg}
	b.owner = cfg.URL == "" || cfg.Replicas > 0
	if b.cfg.Replicas <= 0 {
		b.cfg.Replicas = 1
	}
	var err error
	if cfg.URL == "" {
		if err = b.startEmbedded(); err != nil {
			return nil, err
		}
		b.NC, err = nats.Connect(b.srv.ClientURL(), nats.InProcessServer(b.srv), nats.Name("vantage"))
	} else {
		opts := clientOptions(log)
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
	if err := retry(ctx, log, "set up streams and buckets", time.Minute, 30*time.Second, b.setup); err != nil {
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
		if err := b.stream(ctx, sc); err != nil {
			return err
		}
	}
	if err := b.stream(ctx, jetstream.StreamConfig{
		Name: StreamAudit, Subjects: []string{SubjectAudit + ".>"}, Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas,
		DenyDelete: true, DenyPurge: true, MaxMsgSize: 1 << 20,
	}); err != nil {
		return err
	}
	if err := b.stream(ctx, jetstream.StreamConfig{
		Name: StreamJobs, Subjects: []string{SubjectJobs + ".>"}, Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas,
		Retention: jetstream.WorkQueuePolicy, Duplicates: b.cfg.Duplicate, MaxMsgSize: 4 << 20,
	}); err != nil {
		return err
	}
	for _, name := range Buckets {
		kc := jetstream.KeyValueConfig{Bucket: name, Storage: jetstream.FileStorage, Replicas: b.cfg.Replicas, History: 8}
		var err error
		if b.owner {
			_, err = b.JS.CreateOrUpdateKeyValue(ctx, kc)
		} else if _, err = b.JS.KeyValue(ctx, name); errors.Is(err, jetstream.ErrBucketNotFound) {
			if _, err = b.JS.CreateKeyValue(ctx, kc); errors.Is(err, jetstream.ErrBucketExists) {
				err = nil // made by someone else meanwhile
			}
		}
		if err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

// stream creates a stream, or updates it to sc when this Bus owns the
// configuration; a client leaves an existing stream as it is (its replicas
// and retention are the server's).
func (b *Bus) stream(ctx context.Context, sc jetstream.StreamConfig) error {
	var err error
	if b.owner {
		_, err = b.JS.CreateOrUpdateStream(ctx, sc)
	} else if _, err = b.JS.Stream(ctx, sc.Name); errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err = b.JS.CreateStream(ctx, sc); errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", sc.Name, err)
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
//
// On a cluster, a stream whose leader is lost has none for a few seconds:
// publishing then meets no responders, a 503 or no answer. Publish tries
// again for up to PublishRetry (the same message ID, so a batch the old
// leader did store is not stored twice), and only then returns the error.
func (b *Bus) Publish(ctx context.Context, subject string, batch *record.Batch) error {
	id := batch.ID.String()
	// the client copies the message into its write buffer, so the
	// encoding's buffer can serve the next publish
	err := batch.WithEncoding(func(data []byte) error {
		return retry(ctx, b.log, "publish", PublishRetry, attemptTimeout, func(ctx context.Context) error {
			_, err := b.JS.Publish(ctx, subject, data, jetstream.WithMsgID(id))
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("publish %d records on %s: %w", batch.Len(), subject, err)
	}
	return nil
}

// PublishRetry is how long Publish keeps trying through a leader election
// or a reconnection before it reports the error.
const PublishRetry = 30 * time.Second

// attemptTimeout bounds one publish (its ack included).
const attemptTimeout = 5 * time.Second

// retry calls f, each attempt with a timeout of its own (each), until it succeeds, an
// error that waiting cannot cure comes back, ctx ends or the time is up.
func retry(ctx context.Context, log *slog.Logger, what string, within, each time.Duration, f func(context.Context) error) error {
	deadline := time.Now().Add(within)
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, each)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !Transient(err) || time.Now().Add(wait).After(deadline) {
			if err == nil && attempt > 1 {
				log.Info("bus: "+what+" went through", "attempts", attempt)
			}
			return err
		}
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("bus: "+what+" (retrying: no leader or no connection yet)", "attempt", attempt, "err", err)
		}
		sleep(ctx, wait)
		wait = min(2*wait, 2*time.Second)
	}
}

// Transient says whether an error from the bus is one a cluster cures by
// itself within seconds: no responders, a timeout, a reconnection, a
// JetStream API answer of 503 (no leader, not current) or a shutting-down
// server.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, jetstream.ErrServerShutdown) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamPublisherClosed) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10008, // JetStream system temporarily unavailable
			10023: // insufficient resources: a node of an R3 placement is down for a moment
			return true
		}
		return apiErr.Code == 503 || apiErr.Code == 408
	}
	return false
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
