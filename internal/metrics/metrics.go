// Package metrics serves a role's Prometheus metrics on an address of its
// own (`vantage scan --metrics`, `vantage sensor --metrics`, `vantage
// scanner --metrics`). The server exports its metrics on its API address.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vantagehq/vantage/internal/version"
)

// NewRegistry returns a registry with the Go runtime and process
// collectors and vantage_build_info{role, version, commit, go}, which is 1.
func NewRegistry(role string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	v := version.Get()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vantage_build_info", Help: "Always 1; the labels say which role runs which build.",
		ConstLabels: prometheus.Labels{"role": role, "version": v.Version, "commit": v.Commit, "go": v.Go},
	})
	info.Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), info)
	return reg
}

// Server serves one registry on /metrics.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	err  error
}

// Start listens on addr (host:port; port 0 picks a free one, see Addr) and
// serves g on /metrics until ctx ends. It returns once the listener is
// open, so a bad address is an error here.
func Start(ctx context.Context, addr string, g prometheus.Gatherer) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "vantage: Prometheus metrics are on /metrics")
	})
	s := &Server{ln: ln, done: make(chan struct{}),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}}
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(ln) }()
	go func() {
		defer close(s.done)
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.srv.Shutdown(sctx)
			cancel()
			<-served
		case err := <-served: // Serve failed on its own
			if !errors.Is(err, http.ErrServerClosed) {
				s.err = fmt.Errorf("metrics: %w", err)
			}
		}
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Wait returns when the server has stopped: ctx ended (nil), or serving
// failed (the error).
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

// Serve serves g on addr's /metrics until ctx ends, then returns nil; it
// returns an error at once when addr cannot be listened on.
func Serve(ctx context.Context, addr string, g prometheus.Gatherer) error {
	s, err := Start(ctx, addr, g)
	if err != nil {
		return err
	}
	return s.Wait()
}
