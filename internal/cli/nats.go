package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"
)

type natsFlags struct {
	config, name, clusterName  string
	listen, cluster, leaf, mon string
	routes                     []string
	store                      string
	maxMem, maxFile            int64
	debug                      bool
	readyTimeout               time.Duration
}

// newNATSCmd runs one NATS JetStream server node: the bus of a deployment
// whose server, scanners and sensors connect with --nats. Three of them
// with routes between them make the replicated (R3) cluster of
// docs/cluster.md. It is the nats-server the binary already embeds, so a
// cluster needs nothing else installed; Debian's nats-server takes the same
// configuration file.
func newNATSCmd() *cobra.Command {
	f := &natsFlags{}
	cmd := &cobra.Command{
		Use:   "nats --name N --store DIR [--listen ADDR] [--cluster ADDR --routes URL,...] [--config FILE]",
		Short: "Run one node of a NATS JetStream bus (three make a replicated cluster)",
		Long: `Nats runs one NATS server with JetStream: the bus that 'vantage server',
scanners and sensors share when they run on different machines. One node is
a bus without redundancy; three nodes with routes between them are a cluster
on which 'vantage server' (bus.replicas = 3) keeps every stream and bucket on
all three, so the loss of any one node loses nothing and stops nothing.

A nats-server configuration file (--config) gives everything this
command's flags do not: TLS, accounts and users, leaf node remotes,
authorization. Flags given on the command line override the file. See
docs/cluster.md.

It prints "vantage: nats NAME ready" once it accepts clients and, in a
cluster, once JetStream has a meta leader.`,
		Example: `  # a three-node cluster on one machine (each node its own store)
  vantage nats --name n1 --listen 127.0.0.1:4222 --cluster 127.0.0.1:6222 --store /var/lib/nats/n1 \
      --routes nats://127.0.0.1:6223,nats://127.0.0.1:6224
  vantage nats --name n2 --listen 127.0.0.1:4223 --cluster 127.0.0.1:6223 --store /var/lib/nats/n2 \
      --routes nats://127.0.0.1:6222,nats://127.0.0.1:6224
  vantage nats --name n3 --listen 127.0.0.1:4224 --cluster 127.0.0.1:6224 --store /var/lib/nats/n3 \
      --routes nats://127.0.0.1:6222,nats://127.0.0.1:6223

  # the same node from a nats-server configuration file
  vantage nats --config /etc/vantage/nats-n1.conf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runNATS(cmd, f) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.config, "config", "", "nats-server configuration `FILE` (TLS, accounts, leaf nodes ...); flags override it")
	fl.StringVar(&f.name, "name", "", "server name, unique in the cluster (default: the host name)")
	fl.StringVar(&f.listen, "listen", "", "client address `HOST:PORT` (default 0.0.0.0:4222)")
	fl.StringVar(&f.store, "store", "", "JetStream store `DIR` (one per node)")
	fl.StringVar(&f.cluster, "cluster", "", "cluster (route) address `HOST:PORT` other nodes connect to")
	fl.StringVar(&f.clusterName, "cluster-name", "", "cluster name, the same on every node (default vantage)")
	fl.StringSliceVar(&f.routes, "routes", nil, "`URL`s of the other nodes' cluster addresses (nats://host:6222); repeatable or comma-separated")
	fl.StringVar(&f.leaf, "leafnodes", "", "accept leaf node connections (far-away sites) on `HOST:PORT`")
	fl.StringVar(&f.mon, "http", "", "monitoring endpoint `HOST:PORT` (/healthz, /jsz, /routez)")
	fl.Int64Var(&f.maxMem, "max-memory", 0, "JetStream memory limit in bytes (0: the server's default)")
	fl.Int64Var(&f.maxFile, "max-store", 0, "JetStream file store limit in bytes (0: the server's default)")
	fl.BoolVar(&f.debug, "debug", false, "log the server's debug messages")
	fl.DurationVar(&f.readyTimeout, "ready-timeout", 2*time.Minute, "give up when the node is not ready in this time")
	return cmd
}

func runNATS(cmd *cobra.Command, f *natsFlags) error {
	opts := &server.Options{}
	if f.config != "" {
		var err error
		if opts, err = server.ProcessConfigFile(f.config); err != nil {
			return usageError{fmt.Errorf("--config: %w", err)}
		}
	}
	opts.JetStream = true
	opts.NoSigs = true // our context handles SIGINT and SIGTERM
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 8 << 20 // the bus's batches (bus.Open's streams allow 8 MiB)
	}
	if f.name != "" {
		opts.ServerName = f.name
	}
	if opts.ServerName == "" {
		opts.ServerName, _ = os.Hostname()
	}
	if f.store != "" {
		opts.StoreDir = f.store
	}
	if opts.StoreDir == "" {
		return usagef("--store: name the JetStream store directory")
	}
	if err := os.MkdirAll(opts.StoreDir, 0o750); err != nil {
		return err
	}
	if f.listen != "" {
		host, port, err := splitAddr(f.listen)
		if err != nil {
			return usagef("--listen %q: %v", f.listen, err)
		}
		opts.Host, opts.Port = host, port
	}
	if f.cluster != "" {
		host, port, err := splitAddr(f.cluster)
		if err != nil {
			return usagef("--cluster %q: %v", f.cluster, err)
		}
		opts.Cluster.Host, opts.Cluster.Port = host, port
	}
	if f.clusterName != "" {
		opts.Cluster.Name = f.clusterName
	}
	if opts.Cluster.Name == "" && opts.Cluster.Port != 0 {
		opts.Cluster.Name = "vantage"
	}
	if len(f.routes) > 0 {
		opts.Routes = server.RoutesFromStr(strings.Join(f.routes, ","))
		if len(opts.Routes) != len(f.routes) {
			return usagef("--routes %q: want nats://host:port URLs", strings.Join(f.routes, ","))
		}
	}
	if len(opts.Routes) > 0 && opts.Cluster.Port == 0 {
		return usagef("--routes needs --cluster (this node's own route address)")
	}
	if f.leaf != "" {
		host, port, err := splitAddr(f.leaf)
		if err != nil {
			return usagef("--leafnodes %q: %v", f.leaf, err)
		}
		opts.LeafNode.Host, opts.LeafNode.Port = host, port
	}
	if f.mon != "" {
		host, port, err := splitAddr(f.mon)
		if err != nil {
			return usagef("--http %q: %v", f.mon, err)
		}
		opts.HTTPHost, opts.HTTPPort = host, port
	}
	if f.maxMem > 0 {
		opts.JetStreamMaxMemory = f.maxMem
	}
	if f.maxFile > 0 {
		opts.JetStreamMaxStore = f.maxFile
	}
	opts.Debug = opts.Debug || f.debug
	opts.Logtime = true

	srv, err := server.NewServer(opts)
	if err != nil {
		return usageError{fmt.Errorf("nats: %w", err)}
	}
	srv.ConfigureLogger()
	go srv.Start()
	stderr := cmd.ErrOrStderr()
	ctx := cmd.Context()
	deadline := time.Now().Add(f.readyTimeout)
	if !srv.ReadyForConnections(f.readyTimeout) {
		srv.Shutdown()
		return errors.New("nats: the server did not start")
	}
	// in a cluster, ready means JetStream has a meta leader this node follows
	for clustered := len(opts.Routes) > 0; clustered; {
		if h := srv.Healthz(&server.HealthzOptions{JSMetaOnly: true}); h != nil && h.Status == "ok" {
			break
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			return fmt.Errorf("nats: no JetStream meta leader after %v (are the other nodes up and the routes right?)", f.readyTimeout)
		}
		select {
		case <-ctx.Done():
			srv.Shutdown()
			return errInterrupted
		case <-time.After(100 * time.Millisecond):
		}
	}
	abs, _ := filepath.Abs(opts.StoreDir)
	fmt.Fprintf(stderr, "vantage: nats %s ready: clients on %s, cluster %q on %v, store %s\n",
		opts.ServerName, srv.ClientURL(), opts.Cluster.Name, srv.ClusterAddr(), abs)
	select {
	case <-ctx.Done():
	case <-shutdownDone(srv):
		return errors.New("nats: the server stopped")
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	return errInterrupted
}

func shutdownDone(srv *server.Server) <-chan struct{} {
	ch := make(chan struct{})
	go func() { srv.WaitForShutdown(); close(ch) }()
	return ch
}

func splitAddr(s string) (string, int, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}
