package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vantagehq/vantage/config"
	"github.com/vantagehq/vantage/server"
)

func newServerCmd() *cobra.Command {
	var file string
	var worker bool
	var allowReserved []string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the platform: bus, ingest, store and the API",
		Long: `Server runs the platform in one process: an embedded NATS JetStream bus (or
an external one with --nats), ingest from the bus into the store (DuckDB in the
data directory, or ClickHouse with --store clickhouse://...), enrichment
(country, ASN, organisation), the JSON API and the web UI, and the monitor's
schedule of watchlist rescans (run by 'vantage scanner' workers, or by one in
this process with --scan-worker).

At first start it creates an admin API key and writes it to <data>/admin.key.
Reads are open to everyone unless api.anonymous is false; writes (ingest from
remote scanners and sensors, key management) always need a key.

Settings come from --config FILE (see 'vantage help config'), then VANTAGE_*
environment variables, then these flags.`,
		Example: `  vantage server --data /var/lib/vantage --listen 0.0.0.0:8080
  vantage server --config /etc/vantage/vantage.toml
  vantage server --nats nats://n1:4222,nats://n2:4222 --nats-creds /etc/vantage/nats.creds
  vantage server --store 'clickhouse://127.0.0.1:9000/vantage?cluster=two'
  vantage server --scan-worker --scan-allow-reserved 10.0.0.0/8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(cmd)
			if err != nil {
				return err
			}
			cfg, err := config.LoadFile(file)
			if err != nil {
				return usageError{err}
			}
			if err := cfg.ApplyEnv(os.LookupEnv); err != nil {
				return usageError{err}
			}
			applyServerFlags(cmd.Flags(), &cfg)
			if err := cfg.Check(); err != nil {
				return usageError{err}
			}
			if worker && cfg.Bus.URL == "" && cfg.Bus.Listen == "" {
				cfg.Bus.Listen = "127.0.0.1:0" // the worker is a bus client like any other
			}
			wctx, stopWorker := context.WithCancel(cmd.Context())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer stopWorker()
			err = server.Run(cmd.Context(), cfg, log, func(r server.Running) {
				if worker {
					wg.Add(1)
					go func() {
						defer wg.Done()
						workInProcess(wctx, r.NATS, allowReserved, cmd.ErrOrStderr(), log)
					}()
					fmt.Fprintf(cmd.ErrOrStderr(), "vantage: a scan worker runs in this process (watchlists' rescans)\n")
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "vantage: API on %s (data in %s)\n", r.URL, cfg.Data)
				if r.NATS != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "vantage: scanners and sensors can publish to %s\n", r.NATS)
				}
				if r.AdminKey != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "vantage: the first admin API key is in %s\n", r.AdminKey)
				}
			})
			if err == nil && cmd.Context().Err() != nil {
				return errInterrupted
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "config", "", "configuration `FILE` (TOML; see 'vantage help config')")
	f.String("data", "", "data directory (data)")
	f.String("listen", "", "API address (listen)")
	f.String("nats", "", "external NATS URL(s) instead of the embedded bus (bus.url)")
	f.String("nats-creds", "", "NATS credentials file (bus.creds)")
	f.String("nats-token", "", "NATS token (bus.token)")
	f.String("nats-listen", "", "let scanners and sensors reach the embedded bus on this address (bus.listen)")
	f.String("overrides", "", "geo overrides file (geo.overrides)")
	f.String("geo-dir", "", "directory of the geo databases written by scripts/geodata.sh (geo.dir)")
	f.String("store", "", "store in ClickHouse instead of the embedded DuckDB: clickhouse://host:9000/database[?cluster=NAME] (store.url)")
	f.BoolVar(&worker, "scan-worker", false, "also run a scanner worker in this process for watchlists' rescans (raw SYN as root, connect() otherwise); else run 'vantage scanner'")
	f.StringArrayVar(&allowReserved, "scan-allow-reserved", nil, "let the in-process worker scan this reserved `CIDR`; repeatable")
	return cmd
}

// applyServerFlags sets the keys whose flags were given.
func applyServerFlags(f *pflag.FlagSet, c *config.Server) {
	set := map[string]*string{
		"data": &c.Data, "listen": &c.Listen, "nats": &c.Bus.URL, "nats-creds": &c.Bus.Creds,
		"nats-token": &c.Bus.Token, "nats-listen": &c.Bus.Listen, "overrides": &c.Geo.Overrides, "geo-dir": &c.Geo.Dir,
		"store": &c.Store.URL,
	}
	for name, p := range set {
		if f.Changed(name) {
			v, _ := f.GetString(name)
			*p = strings.TrimSpace(v)
		}
	}
}
