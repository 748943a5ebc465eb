// Package api is the JSON API over HTTP: lookups, search with facets,
// sensor statistics, bulk lookups, ingest for remote scanners and sensors,
// API keys, and two compatibility shapes (GreyNoise community and Shodan's
// InternetDB) so that existing integrations work by changing a base URL.
// Every input is checked: a bad query, address, cursor or body gets a 4xx
// with a message (and the column, for queries), never a 500.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/vantagehq/vantage/eol"
	"github.com/vantagehq/vantage/exclusion"
	"github.com/vantagehq/vantage/job"
	"github.com/vantagehq/vantage/monitor"
	"github.com/vantagehq/vantage/optout"
	"github.com/vantagehq/vantage/query"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/vuln"
)

// Config wires the API.
type Config struct {
	Store        store.Store
	Publish      func(ctx context.Context, stream string, b *record.Batch) error // ingest endpoint; nil: not offered
	Keys         *Keys                                                           // nil: no keys (everything anonymous, read only)
	Anonymous    bool                                                            // reads without a key
	QueryTimeout time.Duration
	MaxRows      int
	RateLimit    float64 // per key (or per client address when anonymous)
	Burst        int
	MaxBody      int64
	Metrics      *Metrics
	Ready        func(ctx context.Context) error
	PublicURL    string // base URL for links in responses (compatibility shapes)
	// OptOut takes opt-out requests (nil: not offered); Exclusions is the
	// current exclusion list, for scanners' long polls and for hiding
	// opted-out ranges from public lookups.
	OptOut     *optout.Service
	Exclusions *exclusion.Tracker
	// Monitor runs watchlists and alerts (nil: not offered); Vulns and
	// EOL feed the exposure score (either may be nil).
	Monitor *monitor.Monitor
	Jobs    *job.Queue // sharded scans for the scanner workers (nil: not offered)
	Vulns   func(cpe string) []vuln.Vuln
	EOL     *eol.Table
	Log     *slog.Logger
}

// Server is the API's HTTP handler.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	log      *slog.Logger
	limiters sync.Map // principal -> *limiter

	optoutLimiters sync.Map // client address -> *rate.Limiter
}

type limiter struct {
	*rate.Limiter
	last atomic.Int64 // unix nanoseconds of the latest request: requests and SweepLimiters race on it
}

// New builds the API.
func New(cfg Config) *Server {
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 10 * time.Second
	}
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = 1000
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 16 << 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: cfg.Log}
	s.routes()
	return s
}

func (s *Server) routes() {
	read := func(pattern string, h handler) { s.mux.Handle(pattern, s.wrap(pattern, ScopeRead, h)) }
	read("GET /api/v1/host/{addr...}", s.host)
	read("GET /api/v1/search", s.search)
	read("GET /api/v1/count", s.count)
	read("GET /api/v1/fields", s.fields)
	read("GET /api/v1/sensors/ip/{ip}", s.sensorIP)
	read("GET /api/v1/sensors/search", s.sensorSearch)
	read("GET /api/v1/sensors/stats", s.sensorStats)
	read("GET /api/v1/sensors/matrix", s.matrix)
	read("GET /api/v1/sensors/timeline", s.timeline)
	read("POST /api/v1/bulk", s.bulk)
	read("GET /api/v1/exposure/{ip}", s.exposure)
	read("POST /api/v1/triage", s.triage)
	read("GET /v3/community/{ip}", s.community)
	read("GET /internetdb/{ip}", s.internetDB)
	s.mux.Handle("POST /api/v1/ingest/{stream}", s.wrap("ingest", ScopeScan, s.ingest))
	s.mux.Handle("GET /api/v1/exclusions", s.wrap("exclusions", ScopeScan, s.exclusions))
	s.optoutRoutes()
	s.monitorRoutes()
	s.scanRoutes()
	s.mux.Handle("GET /api/v1/keys", s.wrap("keys", ScopeAdmin, s.listKeys))
	s.mux.Handle("POST /api/v1/keys", s.wrap("keys", ScopeAdmin, s.createKey))
	s.mux.Handle("DELETE /api/v1/keys/{id}", s.wrap("keys", ScopeAdmin, s.deleteKey))
	s.mux.Handle("GET /api/v1/usage", s.wrap("usage", ScopeAdmin, s.usage))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.mux.Handle("GET /metrics", s.cfg.Metrics.Handler())
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	})
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// handler is an API handler: it returns the value to write as JSON, or an
// error that becomes the right status.
type handler func(w http.ResponseWriter, r *http.Request, p *principal) (any, error)

// principal is who is asking.
type principal struct {
	key  *Key // nil when anonymous
	addr string
}

func (p *principal) name() string {
	if p.key != nil {
		return "key:" + p.key.ID
	}
	return "addr:" + p.addr
}

// wrap authenticates, authorises, rate-limits, bounds time and body, and
// turns the handler's result into a response.
func (s *Server) wrap(route, scope string, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			s.cfg.Metrics.observe(route, rec.status, time.Since(start))
		}()
		p, status, msg := s.authenticate(r, scope)
		if status != 0 {
			writeError(rec, status, "%s", msg)
			return
		}
		if !s.allow(p) {
			rec.Header().Set("Retry-After", "1")
			writeError(rec, http.StatusTooManyRequests, "rate limit exceeded: slow down")
			return
		}
		r.Body = http.MaxBytesReader(rec, r.Body, s.cfg.MaxBody)
		timeout := s.cfg.QueryTimeout
		if route == "exclusions" {
			timeout = max(timeout, 70*time.Second) // a long poll of up to a minute
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		v, err := h(rec, r.WithContext(ctx), p)
		if err != nil {
			s.writeErr(rec, r, err, ctx)
			return
		}
		if v != nil {
			writeJSON(rec, http.StatusOK, v)
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// authenticate finds the key (Authorization: Bearer, X-API-Key, or ?key=)
// and checks the scope; status 0 means go ahead.
func (s *Server) authenticate(r *http.Request, scope string) (*principal, int, string) {
	p := &principal{addr: clientAddr(r)}
	secret := r.Header.Get("X-API-Key")
	if a := r.Header.Get("Authorization"); secret == "" && a != "" {
		if t, ok := strings.CutPrefix(a, "Bearer "); ok {
			secret = strings.TrimSpace(t)
		}
	}
	if secret == "" {
		secret = r.URL.Query().Get("key")
	}
	if secret != "" {
		if s.cfg.Keys == nil {
			return p, http.StatusUnauthorized, "this server has no API keys"
		}
		k, ok := s.cfg.Keys.Check(r.Context(), secret)
		if !ok {
			return p, http.StatusUnauthorized, "invalid API key"
		}
		p.key = &k
	}
	switch {
	case p.key != nil && p.key.Has(scope):
		return p, 0, ""
	case p.key != nil:
		return p, http.StatusForbidden, fmt.Sprintf("this key lacks the %q scope", scope)
	case scope == ScopeRead && s.cfg.Anonymous:
		return p, 0, ""
	}
	return p, http.StatusUnauthorized, fmt.Sprintf("an API key with the %q scope is required (Authorization: Bearer KEY)", scope)
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// allow applies the per-principal token bucket.
func (s *Server) allow(p *principal) bool {
	if s.cfg.RateLimit <= 0 {
		return true
	}
	limit := s.cfg.RateLimit
	if p.key != nil && p.key.RateLimit > 0 {
		limit = p.key.RateLimit
	}
	now := time.Now().UnixNano()
	fresh := &limiter{Limiter: rate.NewLimiter(rate.Limit(limit), max(s.cfg.Burst, 1))}
	fresh.last.Store(now) // before it is shared: a sweep must not see it idle
	v, _ := s.limiters.LoadOrStore(p.name(), fresh)
	l := v.(*limiter)
	l.last.Store(now)
	return l.Allow()
}

// SweepLimiters forgets principals idle for an hour; the server calls it
// periodically so the map stays small.
func (s *Server) SweepLimiters() {
	cutoff := time.Now().Add(-time.Hour).UnixNano()
	s.limiters.Range(func(k, v any) bool {
		if v.(*limiter).last.Load() < cutoff {
			s.limiters.Delete(k)
		}
		return true
	})
}

// apiError is an error with an HTTP status.
type apiError struct {
	status int
	msg    string
	qerr   *query.Error
	query  string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, a ...any) error {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, a...)}
}

var errNotFound = errors.New("not found")

// writeErr maps errors to statuses; anything unexpected is a 500 and logged.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error, ctx context.Context) {
	var ae *apiError
	var qe *query.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		if ae.qerr != nil {
			writeQueryError(w, ae.qerr, ae.query)
			return
		}
		writeError(w, ae.status, "%s", ae.msg)
	case errors.As(err, &qe):
		writeQueryError(w, qe, r.URL.Query().Get("q"))
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, "%v", err)
	case errors.Is(err, store.ErrBadCursor):
		writeError(w, http.StatusBadRequest, "bad cursor: use the 'next' value of the previous page")
	case errors.Is(err, store.ErrBadRequest):
		writeError(w, http.StatusBadRequest, "%v", err)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "the query took longer than %v: narrow it", s.cfg.QueryTimeout)
	case errors.Is(r.Context().Err(), context.Canceled):
		// the client went away
	default:
		s.log.Error("api", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error (logged on the server)")
	}
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error  string `json:"error"`
	Line   int    `json:"line,omitempty"`   // for query errors: where
	Column int    `json:"column,omitempty"` // 1-based, in characters
	Caret  string `json:"caret,omitempty"`  // the query with ^ under the column
}

func writeQueryError(w http.ResponseWriter, e *query.Error, q string) {
	if e.Line == 0 {
		e.Locate(q)
	}
	writeJSON(w, http.StatusBadRequest, ErrorBody{Error: e.Error(), Line: e.Line, Column: e.Column, Caret: e.Caret(q)})
}

func writeError(w http.ResponseWriter, status int, format string, a ...any) {
	writeJSON(w, status, ErrorBody{Error: fmt.Sprintf(format, a...)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not ready: %v", err)
			return
		}
	}
	fmt.Fprintln(w, "ready")
}
