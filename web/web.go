// Package web is the platform as people see it: an overview of what the
// sensors see (a world map of source countries, a tag cloud, the source x
// target country matrix, events over time), a page per IP address, search
// with facets, and the public pages (opt-out, about).
//
// Every page is drawn from the JSON API's own answers, asked in process
// with the visitor's credentials and address: the UI shows exactly the
// numbers the API returns, under the same keys, scopes and rate limits.
// Pages are rendered on the server (html/template), so the IP page and
// search work without JavaScript and their links can be shared; the one
// script (static/app.js) only refreshes the overview's panels. Assets are
// embedded: nothing is loaded from the Internet at run time.
package web

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/vantagehq/vantage/api"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config wires the UI.
type Config struct {
	API     http.Handler // the JSON API (package api): every page asks it
	Version string
	Log     *slog.Logger
	// Refresh is how often the overview's script reloads its panels.
	Refresh time.Duration
}

// Site serves the UI's pages and hands every other path to the API.
type Site struct {
	cfg   Config
	mux   *http.ServeMux
	pages map[string]*template.Template
	world *worldMap
	log   *slog.Logger
}

// New builds the UI around an API handler.
func New(cfg Config) (*Site, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 10 * time.Second
	}
	s := &Site{cfg: cfg, mux: http.NewServeMux(), log: cfg.Log}
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if s.world, err = loadWorld(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(static)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(24*time.Hour, files)))
	s.mux.HandleFunc("GET /{$}", s.overview)
	s.mux.HandleFunc("GET /live", s.live)
	s.mux.HandleFunc("GET /search", s.search)
	s.mux.HandleFunc("GET /ip", s.ipForm)
	s.mux.HandleFunc("GET /ip/{ip}", s.ip)
	s.mux.HandleFunc("GET /about", s.about)
	s.mux.HandleFunc("GET /optout", s.optout)
	s.mux.HandleFunc("POST /optout", s.optoutSubmit)
	s.mux.HandleFunc("GET /optout/{id}", s.optoutStatus)
	s.mux.HandleFunc("POST /optout/{id}/verify", s.optoutVerify)
	s.mux.HandleFunc("GET /admin", s.admin)
	s.mux.HandleFunc("POST /admin/login", s.adminLogin)
	s.mux.HandleFunc("POST /admin/logout", s.adminLogout)
	s.mux.HandleFunc("POST /admin/optouts/{id}/{action}", s.adminDecide)
	s.mux.HandleFunc("GET /monitor", s.monitor)
	s.mux.HandleFunc("POST /monitor/login", s.monitorLogin)
	s.mux.HandleFunc("POST /monitor/logout", s.monitorLogout)
	s.mux.HandleFunc("POST /monitor/watchlists", s.monitorSave)
	s.mux.HandleFunc("POST /monitor/watchlists/{name}/{action}", s.monitorWatchlist)
	s.mux.HandleFunc("POST /monitor/alerts/{id}/{action}", s.monitorAlert)
	s.mux.HandleFunc("POST /monitor/mutes", s.monitorMuteAdd)
	s.mux.HandleFunc("POST /monitor/mutes/{id}/remove", s.monitorUnmute)
	s.mux.Handle("/", cfg.API)
	return s, nil
}

// ServeHTTP makes Site an http.Handler.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}

// apiError is an API answer other than 2xx, with its body.
type apiError struct {
	Status int
	Body   api.ErrorBody
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Body.Error) }

// bufferWriter collects one in-process API answer.
type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}
func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// call asks the API for path with the visitor's key and address and
// decodes the answer into out.
func (s *Site) call(r *http.Request, path string, q url.Values, out any) error {
	return s.send(r, http.MethodGet, path, q, nil, out)
}

// send is call with a method and a JSON body.
func (s *Site) send(r *http.Request, method, path string, q url.Values, body any, out any) error {
	u := path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, u, rd)
	if err != nil {
		return fmt.Errorf("api request %s: %w", path, err)
	}
	req.RemoteAddr = r.RemoteAddr
	if a := r.Header.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	if k := r.Header.Get("X-Api-Key"); k != "" {
		req.Header.Set("X-Api-Key", k)
	}
	fromCookie := false
	if c, err := r.Cookie(keyCookie); err == nil && req.Header.Get("Authorization") == "" && req.Header.Get("X-Api-Key") == "" {
		req.Header.Set("Authorization", "Bearer "+c.Value)
		fromCookie = true
	}
	w := &bufferWriter{header: http.Header{}}
	s.cfg.API.ServeHTTP(w, req)
	if fromCookie && w.status == http.StatusForbidden && method == http.MethodGet {
		// the signed-in key (say, one with only the monitor scope) may
		// lack a scope the public pages need: ask as a visitor without
		// one, and keep the key's refusal if the visitor is refused too
		anon := req.Clone(req.Context())
		anon.Header.Del("Authorization")
		w2 := &bufferWriter{header: http.Header{}}
		s.cfg.API.ServeHTTP(w2, anon)
		if w2.status != http.StatusUnauthorized && w2.status != http.StatusForbidden {
			w = w2
		}
	}
	if w.status < 200 || w.status > 299 {
		e := &apiError{Status: w.status}
		if json.Unmarshal(w.body.Bytes(), &e.Body) != nil || e.Body.Error == "" {
			e.Body.Error = strings.TrimSpace(w.body.String())
		}
		return e
	}
	if w.body.Len() == 0 || out == nil {
		return nil // 204 No Content, or an answer nobody reads
	}
	if err := json.Unmarshal(w.body.Bytes(), out); err != nil {
		return fmt.Errorf("api answer of %s: %w", path, err)
	}
	return nil
}

// render writes a page, gzipped when the browser takes it.
func (s *Site) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	t := s.pages[page]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "page", data); err != nil {
		s.log.Error("web: render", "page", page, "err", err)
		http.Error(w, "internal error (logged on the server)", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Add("Vary", "Accept-Encoding")
	var out io.Writer = w
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") && buf.Len() > 1024 {
		h.Set("Content-Encoding", "gzip")
		gz := gzipPool.Get().(*gzip.Writer)
		gz.Reset(w)
		defer func() { gz.Close(); gzipPool.Put(gz) }()
		out = gz
	}
	w.WriteHeader(status)
	out.Write(buf.Bytes())
}

var gzipPool = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed); return w }}

// errorPage shows an API error in words (a 401 names the key it needs).
func (s *Site) errorPage(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	status, msg := http.StatusInternalServerError, "internal error (logged on the server)"
	switch {
	case errors.As(err, &ae):
		status, msg = ae.Status, ae.Body.Error
		if status == http.StatusUnauthorized {
			msg += ". This server asks for an API key: send it as 'Authorization: Bearer KEY' or set the vantage_key cookie."
		}
	case r.Context().Err() != nil:
		return
	default:
		s.log.Error("web", "path", r.URL.Path, "err", err)
	}
	s.render(w, r, status, "error", pageData{Title: http.StatusText(status), Data: map[string]any{"Status": status, "Message": msg}})
}

// pageData is what every template gets.
type pageData struct {
	Title   string
	Nav     string // which menu entry is current
	Query   string // the search box's text
	Version string
	Refresh int // seconds, for the overview's script
	Data    any
}

func (s *Site) page(title, nav string, data any) pageData {
	return pageData{Title: title, Nav: nav, Version: s.cfg.Version, Refresh: int(s.cfg.Refresh.Seconds()), Data: data}
}

func (s *Site) about(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "about", s.page("About", "about", nil))
}

func errBody(msg string) api.ErrorBody { return api.ErrorBody{Error: msg} }
