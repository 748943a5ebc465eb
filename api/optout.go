package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"golang.org/x/time/rate"

	"github.com/vantagehq/vantage/exclusion"
	"github.com/vantagehq/vantage/optout"
)

// Opt-out requests from anyone: at most this many per address per hour
// (a burst of optoutBurst), whatever the general rate limit says.
const (
	optoutPerHour = 20
	optoutBurst   = 5
)

func (s *Server) optoutRoutes() {
	if s.cfg.OptOut == nil {
		return
	}
	s.mux.Handle("POST /api/v1/optout", s.public("optout", true, s.optoutSubmit))
	s.mux.Handle("GET /api/v1/optout/{id}", s.public("optout", false, s.optoutStatus))
	s.mux.Handle("POST /api/v1/optout/{id}/verify", s.public("optout", true, s.optoutVerify))
	admin := func(pattern string, h handler) { s.mux.Handle(pattern, s.wrap("optouts", ScopeAdmin, h)) }
	admin("GET /api/v1/optouts", s.optoutList)
	admin("POST /api/v1/optouts", s.optoutAdd)
	admin("POST /api/v1/optouts/{id}/approve", s.optoutDecide)
	admin("POST /api/v1/optouts/{id}/reject", s.optoutDecide)
	admin("DELETE /api/v1/optouts/{id}", s.optoutDecide)
	admin("GET /api/v1/audit", s.auditLog)
}

// public serves anyone, with a key or without: writes (a request, a token
// check) under the opt-out limiter, reads under the general one.
func (s *Server) public(route string, write bool, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() { s.cfg.Metrics.observe(route, rec.status, time.Since(start)) }()
		p := &principal{addr: clientAddr(r)}
		if write {
			v, _ := s.optoutLimiters.LoadOrStore(p.addr, rate.NewLimiter(rate.Limit(optoutPerHour/3600.0), optoutBurst))
			if !v.(*rate.Limiter).Allow() {
				rec.Header().Set("Retry-After", "180")
				writeError(rec, http.StatusTooManyRequests, "too many opt-out requests from %s: try again later", p.addr)
				return
			}
		} else if !s.allow(p) {
			rec.Header().Set("Retry-After", "1")
			writeError(rec, http.StatusTooManyRequests, "rate limit exceeded: slow down")
			return
		}
		r.Body = http.MaxBytesReader(rec, r.Body, 64<<10)
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		v2, err := h(rec, r.WithContext(ctx), p)
		if err != nil {
			s.writeErr(rec, r, optoutErr(err), ctx)
			return
		}
		if v2 != nil {
			writeJSON(rec, http.StatusOK, v2)
		}
	})
}

// optoutErr turns the service's refusals into 4xx answers.
func optoutErr(err error) error {
	var oe *optout.Error
	switch {
	case errors.As(err, &oe):
		return badRequest("%s", oe.Msg)
	case errors.Is(err, optout.ErrNotFound):
		return fmt.Errorf("%w: no such opt-out request (or a wrong secret)", errNotFound)
	}
	return err
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("request body: %v", err)
	}
	return nil
}

// optoutAnswer is a request as its requester sees it, with the secret that
// shows and verifies it (given once, at creation) and what to do next.
type optoutAnswer struct {
	*optout.Request
	Secret    string `json:"secret,omitempty"`
	StatusURL string `json:"status_url,omitempty"`
	Next      string `json:"next,omitempty"`
}

func (s *Server) answer(r *optout.Request, secret string) optoutAnswer {
	a := optoutAnswer{Request: r, Secret: secret}
	if r.ID != "" && secret != "" {
		a.StatusURL = s.cfg.PublicURL + "/optout/" + r.ID + "?secret=" + secret
	}
	switch {
	case r.State == optout.Approved:
		a.Next = fmt.Sprintf("nothing: the ranges are on the exclusion list (version %d); scanners apply it before their next packet", r.Version)
	case r.State == optout.Pending && r.Method == optout.ByToken:
		a.Next = "put the token in a file served at http://<an address in the range>/.well-known/vantage-optout.txt, then POST {\"secret\":...,\"url\":...} to /api/v1/optout/" + r.ID + "/verify"
	case r.State == optout.Pending:
		a.Next = r.Needs
	}
	return a
}

func (s *Server) optoutSubmit(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	var sub optout.Submission
	if err := decodeBody(r, &sub); err != nil {
		return nil, err
	}
	from, err := netip.ParseAddr(p.addr)
	if err != nil {
		return nil, fmt.Errorf("the request's own address %q: %w", p.addr, err)
	}
	req, err := s.cfg.OptOut.Submit(r.Context(), sub, from)
	if err != nil {
		return nil, optoutErr(err)
	}
	writeJSON(w, http.StatusCreated, s.answer(req, req.Secret))
	return nil, nil
}

func (s *Server) optoutStatus(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	req, err := s.cfg.OptOut.Status(r.Context(), r.PathValue("id"), r.URL.Query().Get("secret"))
	if err != nil {
		return nil, err
	}
	return s.answer(req, ""), nil
}

func (s *Server) optoutVerify(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	var body struct {
		Secret string `json:"secret"`
		URL    string `json:"url"`
	}
	if err := decodeBody(r, &body); err != nil {
		return nil, err
	}
	req, err := s.cfg.OptOut.Verify(r.Context(), r.PathValue("id"), body.Secret, body.URL)
	if err != nil {
		return nil, err
	}
	return s.answer(req, ""), nil
}

func (s *Server) optoutList(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	reqs, err := s.cfg.OptOut.List(r.Context())
	if err != nil {
		return nil, err
	}
	return map[string]any{"requests": reqs}, nil
}

func (s *Server) optoutAdd(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	var body struct {
		optout.Submission
		Approve bool `json:"approve"`
	}
	if err := decodeBody(r, &body); err != nil {
		return nil, err
	}
	req, err := s.cfg.OptOut.Add(r.Context(), body.Submission, p.name(), body.Approve)
	if err != nil {
		return nil, optoutErr(err)
	}
	writeJSON(w, http.StatusCreated, req)
	return nil, nil
}

func (s *Server) optoutDecide(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	var body struct {
		Note string `json:"note"`
	}
	if r.ContentLength != 0 && r.Method != http.MethodDelete {
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
	}
	id := r.PathValue("id")
	var req *optout.Request
	var err error
	switch {
	case r.Method == http.MethodDelete:
		req, err = s.cfg.OptOut.Remove(r.Context(), id, p.name(), r.URL.Query().Get("note"))
	case len(r.URL.Path) > 7 && r.URL.Path[len(r.URL.Path)-7:] == "approve":
		req, err = s.cfg.OptOut.Approve(r.Context(), id, p.name(), body.Note)
	default:
		req, err = s.cfg.OptOut.Reject(r.Context(), id, p.name(), body.Note)
	}
	if err != nil {
		return nil, optoutErr(err)
	}
	return req, nil
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	n, err := intParam(r, "limit", 100, 1, 10000)
	if err != nil {
		return nil, err
	}
	evs, err := s.cfg.OptOut.Audit(r.Context(), n)
	if err != nil {
		return nil, err
	}
	return map[string]any{"events": evs}, nil
}

// exclusions is the scanners' view of the list: at once when it is newer
// than ?after=, else when it changes or ?wait= ends (a long poll; each
// answer confirms the scanner's copy is current).
func (s *Server) exclusions(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	if s.cfg.Exclusions == nil {
		return nil, fmt.Errorf("%w: this server keeps no exclusion list", errNotFound)
	}
	wait, err := durationParam(r, "wait", 30*time.Second, time.Minute)
	if err != nil {
		return nil, err
	}
	var after uint64
	if v := r.URL.Query().Get("after"); v != "" {
		if _, err := fmt.Sscan(v, &after); err != nil {
			return nil, badRequest("after=%q: want a version number", v)
		}
	} else {
		wait = 0
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait) // wrap gives this route more than the wait
	defer cancel()
	if err := s.cfg.Exclusions.Ready(r.Context()); err != nil {
		return nil, err
	}
	l := s.cfg.Exclusions.Wait(ctx, after)
	if l == nil {
		l = &exclusion.List{Entries: []exclusion.Entry{}}
	}
	return l, nil
}

// hidden reports whether a lookup of ip must say nothing: the operator's
// policy hides opted-out ranges from everyone but admins.
func (s *Server) hidden(ip netip.Addr, p *principal) bool {
	if s.cfg.Exclusions == nil || (p.key != nil && p.key.Has(ScopeAdmin)) {
		return false
	}
	return s.cfg.Exclusions.Current().Contains(ip)
}

var errOptedOut = errors.New("this address is in a range that opted out: nothing is shown about it")
