package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantagehq/vantage/internal/metrics"
)

// startMetrics serves g on addr (a role's --metrics) until the returned
// stop, which waits for the server to end. It says where on stderr unless
// quiet, and always for port 0, whose port nobody could guess.
func startMetrics(ctx context.Context, addr string, g prometheus.Gatherer, quiet bool, log *slog.Logger, stderr io.Writer) (stop func(), err error) {
	mctx, cancel := context.WithCancel(ctx)
	srv, err := metrics.Start(mctx, addr, g)
	if err != nil {
		cancel()
		return nil, err
	}
	log.Info("metrics", "listen", srv.Addr().String())
	if !quiet || strings.HasSuffix(addr, ":0") {
		fmt.Fprintf(stderr, "vantage: metrics on http://%s/metrics\n", srv.Addr())
	}
	return func() {
		cancel()
		srv.Wait()
	}, nil
}
