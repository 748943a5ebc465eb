// Package server runs the platform in one process: the bus (embedded or
// external), enrichment, the store, ingest from the bus into the store, and
// the HTTP API and the web UI over it, with retention and metrics. `vantage server` runs it alone;
// `vantage up` runs it beside a scanner and a sensor.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/config"
	"github.com/vantagehq/vantage/enrich"
	"github.com/vantagehq/vantage/eol"
	"github.com/vantagehq/vantage/exclusion"
	"github.com/vantagehq/vantage/ingest"
	"github.com/vantagehq/vantage/internal/version"
	"github.com/vantagehq/vantage/job"
	"github.com/vantagehq/vantage/monitor"
	"github.com/vantagehq/vantage/notify"
	"github.com/vantagehq/vantage/optout"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/store/clickhouse"
	"github.com/vantagehq/vantage/store/duckdb"
	"github.com/vantagehq/vantage/target"
	"github.com/vantagehq/vantage/vuln"
	"github.com/vantagehq/vantage/web"
)

// Running describes a started server.
type Running struct {
	URL      string // the API's base URL
	NATS     string // where other processes reach the bus ("" if they cannot)
	AdminKey string // path of the file holding the first admin key, if one was made now
}

// Options are what a caller adds to a plain server.
type Options struct {
	// Started (may be nil) is called once everything is up.
	Started func(Running)
	// Listeners are served besides cfg.Listen: `vantage up --demo` adds one
	// opened inside a lab namespace, where the lab's scanner and sensor
	// reach the API. The server closes them.
	Listeners []net.Listener
}

// Run starts everything and blocks until ctx is done; then it stops
// accepting requests, finishes what is in flight and closes the store
// cleanly. started (may be nil) is called once everything is up.
func Run(ctx context.Context, cfg config.Server, log *slog.Logger, started func(Running)) error {
	return RunOptions(ctx, cfg, log, Options{Started: started})
}

// RunOptions is Run with options.
func RunOptions(ctx context.Context, cfg config.Server, log *slog.Logger, opt Options) error {
	for _, l := range opt.Listeners {
		defer l.Close() // Shutdown closes them too; this covers the early returns
	}
	if err := cfg.Check(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	b, err := bus.Open(ctx, bus.Config{
		URL: cfg.Bus.URL, CredsFile: cfg.Bus.Creds, Token: cfg.Bus.Token,
		Dir: filepath.Join(cfg.Data, "bus"), Listen: cfg.Bus.Listen,
		Replicas: cfg.Bus.Replicas, MaxAge: time.Duration(cfg.Bus.MaxAge),
	}, log)
	if err != nil {
		return err
	}
	defer b.Close()

	retention := store.Retention{
		Events: time.Duration(cfg.Store.Retention.Events), History: time.Duration(cfg.Store.Retention.History),
		Services: time.Duration(cfg.Store.Retention.Services),
	}
	var st store.Store
	if strings.HasPrefix(cfg.Store.URL, "clickhouse://") {
		st, err = clickhouse.Open(ctx, cfg.Store.URL, clickhouse.Options{Retention: retention, Log: log})
	} else {
		st, err = duckdb.Open(ctx, filepath.Join(cfg.Data, "store"), duckdb.Options{
			Threads: cfg.Store.Threads, MemoryLimit: cfg.Store.MemoryLimit, Log: log, Retention: retention,
		})
	}
	if err != nil {
		return err
	}
	defer st.Close()

	geoDir := cfg.Geo.Dir
	if geoDir == "" {
		geoDir = filepath.Join(cfg.Data, "geo")
	}
	geo, err := enrich.Open(enrich.Config{Dir: geoDir, CountryMMDB: cfg.Geo.Country, ASNv4CSV: cfg.Geo.ASNv4,
		ASNv6CSV: cfg.Geo.ASNv6, Overrides: cfg.Geo.Overrides}, log)
	if err != nil {
		return err
	}
	defer geo.Close()

	kv, err := b.KV(ctx, "apikeys")
	if err != nil {
		return fmt.Errorf("api keys: %w", err)
	}
	keys := api.NewKeys(kv)
	running := Running{NATS: b.ClientURL()}
	if running.AdminKey, err = bootstrapAdmin(ctx, keys, cfg.Data, log); err != nil {
		return err
	}

	optouts, tracker, err := optOuts(ctx, b, cfg.OptOut, st)
	if err != nil {
		return err
	}

	vulns := &vulnAdapter{}
	in := ingest.New(ingest.Config{Bus: b, Store: st, Geo: geoAdapter{geo}, Vulns: vulns, Log: log})
	metrics := api.NewMetrics(nil)
	registerMetrics(metrics.Registry, in, st, b)

	jobs, err := job.Open(ctx, b)
	if err != nil {
		return err
	}
	mon, err := openMonitor(ctx, cfg, b, st, jobs, vulns, geo, "http://"+cfg.Listen, log)
	if err != nil {
		return err
	}

	srv := api.New(api.Config{
		Store: st, Keys: keys, Anonymous: cfg.API.Anonymous, QueryTimeout: time.Duration(cfg.API.QueryTimeout),
		MaxRows: cfg.API.MaxRows, RateLimit: cfg.API.RateLimit, Burst: cfg.API.Burst, MaxBody: cfg.API.MaxBody,
		Metrics: metrics, Log: log, PublicURL: "http://" + cfg.Listen,
		OptOut: optouts, Exclusions: tracker, Monitor: mon, Jobs: jobs, Vulns: vulns.All, EOL: mon.EOL(),
		Publish: func(ctx context.Context, stream string, batch *record.Batch) error {
			s := bus.StreamResults
			if stream == "events" {
				s = bus.StreamEvents
			}
			return b.Publish(ctx, bus.Subject(s, batch.Producer), batch)
		},
		Ready: func(ctx context.Context) error {
			if !b.NC.IsConnected() {
				return errors.New("bus not connected")
			}
			_, err := st.Usage(ctx)
			return err
		},
	})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	running.URL = "http://" + ln.Addr().String()
	site, err := web.New(web.Config{API: srv, Version: version.Get().Version, Log: log})
	if err != nil {
		ln.Close()
		return err
	}
	httpSrv := &http.Server{Handler: site, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}

	// every goroutine below is owned here and ends before Run returns
	ictx, stopIngest := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(6 + len(opt.Listeners))
	go func() {
		defer wg.Done()
		mon.Run(ictx)
	}()
	go func() {
		defer wg.Done()
		vulns.load(ictx, cfg.Vuln.Dir, cfg.Data, log)
	}()
	go func() {
		defer wg.Done()
		optouts.FollowList(ictx, tracker, log)
	}()
	go func() {
		defer wg.Done()
		if err := in.Run(ictx); err != nil {
			log.Error("ingest", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		housekeeping(ictx, st, srv, log)
	}()
	serveErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	}()
	for _, l := range opt.Listeners {
		go func() {
			defer wg.Done()
			if err := httpSrv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				log.Error("serve", "listener", l.Addr().String(), "err", err)
			}
		}()
	}
	log.Info("server ready", "api", running.URL, "nats", running.NATS, "data", cfg.Data)
	if opt.Started != nil {
		opt.Started(running)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	httpSrv.Shutdown(shutCtx)
	stopIngest()
	wg.Wait()
	return runErr
}

// optOuts opens the opt-out service and the tracker of the exclusion list.
func optOuts(ctx context.Context, b *bus.Bus, cfg config.OptOut, st store.Store) (*optout.Service, *exclusion.Tracker, error) {
	// token checks fetch from the requester's range: never from reserved
	// space unless the operator allowed it (a lab), as for scans
	policy := target.NewPolicy()
	var allowed6 []netip.Prefix
	for _, c := range strings.Split(cfg.FetchReserved, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, nil, fmt.Errorf("optout.fetch_reserved %q: %w", c, err)
		}
		if p.Addr().Is6() {
			allowed6 = append(allowed6, p.Masked())
			continue
		}
		if err := policy.AllowReserved(target.RangeOf(p)); err != nil {
			return nil, nil, fmt.Errorf("optout.fetch_reserved: %w", err)
		}
	}
	excluded := policy.Excluded()
	global6 := netip.MustParsePrefix("2000::/3")
	doc6 := netip.MustParsePrefix("2001:db8::/32")
	var purge func(context.Context, []netip.Prefix) (int64, error)
	if cfg.Collected == "purge" {
		purge = st.Purge
	}
	svc, err := optout.Open(ctx, b, optout.Config{MaxAutoBits: cfg.MaxPrefix4, MaxAutoBits6: cfg.MaxPrefix6, Purge: purge,
		Allowed: func(a netip.Addr) bool {
			if a.Is4() {
				return !excluded.ContainsAddr(a)
			}
			for _, p := range allowed6 {
				if p.Contains(a) {
					return true
				}
			}
			return global6.Contains(a) && !doc6.Contains(a)
		}})
	if err != nil {
		return nil, nil, err
	}
	return svc, exclusion.NewTracker(), nil
}

// openMonitor opens the watchlists' monitor with its notifiers and
// end-of-life table.
func openMonitor(ctx context.Context, cfg config.Server, b *bus.Bus, st store.Store, jobs *job.Queue, vulns *vulnAdapter, geo *enrich.Enricher, publicURL string, log *slog.Logger) (*monitor.Monitor, error) {
	table := eol.Default()
	if cfg.Monitor.EOLFile != "" {
		table = table.Clone() // Default is shared
		f, err := os.Open(cfg.Monitor.EOLFile)
		if err != nil {
			return nil, fmt.Errorf("monitor.eol_file: %w", err)
		}
		own, err := eol.Load(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("monitor.eol_file %s: %w", cfg.Monitor.EOLFile, err)
		}
		table.Merge(own)
	}
	var mail *notify.SMTP
	if mc := cfg.Monitor; mc.SMTPAddr != "" {
		mail = &notify.SMTP{Addr: mc.SMTPAddr, From: mc.SMTPFrom, Username: mc.SMTPUser, Password: mc.SMTPPassword, TLS: mc.SMTPTLS}
	}
	return monitor.New(ctx, monitor.Config{Bus: b, Store: st, Jobs: jobs, Vulns: vulns.All, EOL: table, SMTP: mail, ASNPrefixes: geo.ASNPrefixes,
		GoneAfter: cfg.Monitor.GoneAfter, CertWarn: time.Duration(cfg.Monitor.CertWarn), PublicURL: publicURL, Log: log})
}

// vulnAdapter gives ingest the CVEs of a CPE once the feeds are loaded
// (loading a multi-GB NVD feed takes a while; services stored before have
// the vulns their producer gave).
type vulnAdapter struct{ db atomic.Pointer[vuln.DB] }

func (v *vulnAdapter) Match(cpe string) []vuln.Vuln { return v.All(cpe) }

// All is every CVE of a CPE, with scores and known-exploited flags (none
// until the feeds are loaded).
func (v *vulnAdapter) All(cpe string) []vuln.Vuln {
	db := v.db.Load()
	if db == nil {
		return nil
	}
	return db.Match(cpe)
}

// load reads every feed in dir (default <data>/vulns); none is not an error.
func (v *vulnAdapter) load(ctx context.Context, dir, data string, log *slog.Logger) {
	if dir == "" {
		dir = filepath.Join(data, "vulns")
	}
	var files []string
	for _, pat := range []string{"*.json", "*.json.gz"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		files = append(files, m...)
	}
	if len(files) == 0 {
		log.Info("no vulnerability feeds: services get no CVEs from their CPEs", "dir", dir)
		return
	}
	start := time.Now()
	db, stats, err := vuln.Load(files...)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		log.Error("vulnerability feeds", "dir", dir, "err", err)
		return
	}
	v.db.Store(db)
	log.Info("vulnerability feeds loaded", "files", len(files), "cves", stats.CVEs, "kev", stats.KEV, "skipped", stats.Skipped,
		"took", time.Since(start).Round(time.Millisecond))
}

// geoAdapter gives ingest the enricher's answers as record.Geo.
type geoAdapter struct{ e *enrich.Enricher }

func (g geoAdapter) Lookup(a netip.Addr) record.Geo {
	i := g.e.Lookup(a)
	return record.Geo{Country: i.Country, ASN: i.ASN, Org: i.Org, Label: i.Label}
}

// bootstrapAdmin makes the first admin key when there is none, and writes
// its secret to <data>/admin.key (mode 0600): the only place it appears.
func bootstrapAdmin(ctx context.Context, keys *api.Keys, data string, log *slog.Logger) (string, error) {
	empty, err := keys.Empty(ctx)
	if err != nil || !empty {
		return "", err
	}
	secret, _, err := keys.Create(ctx, "admin (created at first start)", []string{api.ScopeAdmin}, 0)
	if err != nil {
		return "", err
	}
	path := filepath.Join(data, "admin.key")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write the admin key: %w", err)
	}
	log.Warn("created the first admin API key", "file", path)
	return path, nil
}

// housekeeping expires old records hourly and forgets idle rate limiters.
func housekeeping(ctx context.Context, st store.Store, srv *api.Server, log *slog.Logger) {
	expire := time.NewTicker(time.Hour)
	sweep := time.NewTicker(10 * time.Minute)
	defer expire.Stop()
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-expire.C:
			n, err := st.Expire(ctx, time.Now())
			if err != nil {
				log.Error("retention", "err", err)
			} else if n > 0 {
				log.Info("retention", "deleted", n)
			}
		case <-sweep.C:
			srv.SweepLimiters()
		}
	}
}

// registerMetrics exports ingest, store and bus figures.
func registerMetrics(reg *prometheus.Registry, in *ingest.Ingester, st store.Store, b *bus.Bus) {
	counter := func(name, help string, f func(ingest.Stats) float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return f(in.Stats()) }))
	}
	counter("vantage_ingest_batches_total", "Batches stored.", func(s ingest.Stats) float64 { return float64(s.Batches) })
	counter("vantage_ingest_redelivered_total", "Batches delivered again and skipped (already stored).", func(s ingest.Stats) float64 { return float64(s.Skipped) })
	counter("vantage_ingest_services_total", "Service records stored.", func(s ingest.Stats) float64 { return float64(s.Services) })
	counter("vantage_ingest_events_total", "Sensor events stored.", func(s ingest.Stats) float64 { return float64(s.Events) })
	counter("vantage_ingest_rejected_total", "Bus messages that did not decode.", func(s ingest.Stats) float64 { return float64(s.Rejected) })
	counter("vantage_ingest_failures_total", "Store calls that failed and were retried.", func(s ingest.Stats) float64 { return float64(s.Failures) })
	counter("vantage_ingest_bytes_total", "Bytes of batches stored.", func(s ingest.Stats) float64 { return float64(s.Bytes) })
	counter("vantage_ingest_store_seconds_total", "Time spent storing batches.", func(s ingest.Stats) float64 { return s.StoreSeconds })

	// the store's size is a count per table: computed at most every 30 s
	var mu sync.Mutex
	var usage store.Usage
	var at time.Time
	get := func() store.Usage {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) > 30*time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if u, err := st.Usage(ctx); err == nil {
				usage, at = u, time.Now()
			}
			cancel()
		}
		return usage
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vantage_store_bytes", Help: "Size of the store on disk."},
		func() float64 { return float64(get().Bytes) }))
	for _, t := range []string{"services", "service_history", "events", "profiles"} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vantage_store_rows", Help: "Rows per table.", ConstLabels: prometheus.Labels{"table": t},
		}, func() float64 { return float64(get().Tables[t].Rows) }))
	}
	for _, s := range []string{bus.StreamResults, bus.StreamEvents} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vantage_ingest_lag_messages", Help: "Messages on the bus not yet stored.", ConstLabels: prometheus.Labels{"stream": s},
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			c, err := b.JS.Consumer(ctx, s, "ingest-"+s)
			if err != nil {
				return 0
			}
			info, err := c.Info(ctx)
			if err != nil {
				return 0
			}
			return float64(info.NumPending + uint64(info.NumAckPending))
		}))
	}
}
