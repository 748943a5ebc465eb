package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vantagehq/vantage/monitor"
)

func (s *Server) monitorRoutes() {
	if s.cfg.Monitor == nil {
		return
	}
	mon := func(pattern string, h handler) { s.mux.Handle(pattern, s.wrap("monitor", ScopeMonitor, h)) }
	mon("GET /api/v1/monitors", s.monitorList)
	mon("POST /api/v1/monitors", s.monitorPut)
	mon("PUT /api/v1/monitors/{name}", s.monitorPut)
	mon("GET /api/v1/monitors/{name}", s.monitorGet)
	mon("DELETE /api/v1/monitors/{name}", s.monitorDelete)
	mon("POST /api/v1/monitors/{name}/scan", s.monitorScan)
	mon("GET /api/v1/monitors/{name}/hosts", s.monitorHosts)
	mon("GET /api/v1/jobs/{id}", s.jobStatus)
	mon("GET /api/v1/alerts", s.alertList)
	mon("GET /api/v1/alerts/{id}", s.alertGet)
	mon("POST /api/v1/alerts/{id}/ack", s.alertAck)
	mon("GET /api/v1/mutes", s.muteList)
	mon("POST /api/v1/mutes", s.muteAdd)
	mon("DELETE /api/v1/mutes/{id}", s.muteDelete)
}

// monitorErr turns the monitor's refusals into 4xx answers.
func monitorErr(err error) error {
	var ie *monitor.InputError
	switch {
	case errors.As(err, &ie):
		return badRequest("%s", ie.Msg)
	case errors.Is(err, monitor.ErrNotFound):
		return fmt.Errorf("%w: %v", errNotFound, err)
	}
	return err
}

func (s *Server) monitorList(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	lists, err := s.cfg.Monitor.List(r.Context())
	if err != nil {
		return nil, err
	}
	out := []monitor.View{}
	for _, l := range lists {
		st, _ := s.cfg.Monitor.State(r.Context(), l.Name)
		out = append(out, monitor.View{Watchlist: l.Public(), State: st})
	}
	return map[string]any{"watchlists": out}, nil
}

func (s *Server) monitorPut(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	var wl monitor.Watchlist
	if err := decodeBody(r, &wl); err != nil {
		return nil, err
	}
	if name := r.PathValue("name"); name != "" {
		if wl.Name != "" && wl.Name != name {
			return nil, badRequest("the body names watchlist %q, the path %q", wl.Name, name)
		}
		wl.Name = name
	}
	if p.key != nil {
		wl.Owner = p.key.ID
	}
	saved, err := s.cfg.Monitor.Put(r.Context(), wl)
	if err != nil {
		return nil, monitorErr(err)
	}
	st, _ := s.cfg.Monitor.State(r.Context(), saved.Name)
	return monitor.View{Watchlist: saved.Public(), State: st}, nil
}

func (s *Server) monitorGet(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	wl, err := s.cfg.Monitor.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, monitorErr(err)
	}
	st, err := s.cfg.Monitor.State(r.Context(), wl.Name)
	if err != nil {
		return nil, err
	}
	return monitor.View{Watchlist: wl.Public(), State: st}, nil
}

func (s *Server) monitorDelete(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	if err := s.cfg.Monitor.Delete(r.Context(), r.PathValue("name")); err != nil {
		return nil, monitorErr(err)
	}
	return map[string]any{"deleted": r.PathValue("name")}, nil
}

func (s *Server) monitorScan(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	st, err := s.cfg.Monitor.ScanNow(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, monitorErr(err)
	}
	w.Header().Set("Location", "/api/v1/jobs/"+st.ID)
	writeJSON(w, http.StatusAccepted, st)
	return nil, nil
}

func (s *Server) monitorHosts(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	hs, err := s.cfg.Monitor.Hosts(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, monitorErr(err)
	}
	if hs == nil {
		hs = []monitor.HostState{}
	}
	return map[string]any{"hosts": hs}, nil
}

func (s *Server) jobStatus(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	st, err := s.cfg.Monitor.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, monitorErr(err)
	}
	return st, nil
}

func (s *Server) alertList(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	q := r.URL.Query()
	f := monitor.Filter{Watchlist: q.Get("watchlist"), State: q.Get("state"), Kind: q.Get("kind"), Muted: q.Get("muted") == "true"}
	if f.State != "" && f.State != monitor.Open && f.State != monitor.Acked {
		return nil, badRequest("state %q: want open or acked", f.State)
	}
	if f.Kind != "" && !slices.Contains(monitor.Kinds, f.Kind) {
		return nil, badRequest("kind %q: want one of %s", f.Kind, strings.Join(monitor.Kinds, ", "))
	}
	if v := q.Get("ip"); v != "" {
		a, err := parseAddr(v)
		if err != nil {
			return nil, err
		}
		f.IP = a
	}
	limit, err := intParam(r, "limit", 100, 1, 10000)
	if err != nil {
		return nil, err
	}
	alerts, err := s.cfg.Monitor.Alerts(r.Context(), f)
	if err != nil {
		return nil, err
	}
	total := len(alerts)
	if len(alerts) > limit {
		alerts = alerts[:limit]
	}
	if alerts == nil {
		alerts = []monitor.Alert{}
	}
	return map[string]any{"total": total, "alerts": alerts}, nil
}

func (s *Server) alertGet(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	a, err := s.cfg.Monitor.Alert(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, monitorErr(err)
	}
	return a, nil
}

func (s *Server) alertAck(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	a, err := s.cfg.Monitor.Ack(r.Context(), r.PathValue("id"), p.name())
	if err != nil {
		return nil, monitorErr(err)
	}
	return a, nil
}

func (s *Server) muteList(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	ms, err := s.cfg.Monitor.Mutes(r.Context())
	if err != nil {
		return nil, err
	}
	if ms == nil {
		ms = []monitor.Mute{}
	}
	return map[string]any{"mutes": ms}, nil
}

// MuteRequest asks for a mute: For ("7d", "12h") or Until bound it.
type MuteRequest struct {
	Watchlist string    `json:"watchlist,omitempty"`
	IP        string    `json:"ip"`
	Port      uint16    `json:"port,omitempty"`
	For       string    `json:"for,omitempty"`
	Until     time.Time `json:"until,omitzero"`
	Reason    string    `json:"reason,omitempty"`
}

func (s *Server) muteAdd(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	var req MuteRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	a, err := netip.ParseAddr(req.IP)
	if err != nil {
		return nil, badRequest("ip %q: not an address", req.IP)
	}
	mu := monitor.Mute{Watchlist: req.Watchlist, IP: a, Port: req.Port, Until: req.Until, Reason: req.Reason, By: p.name()}
	if req.For != "" {
		d, err := parseDays(req.For)
		if err != nil {
			return nil, badRequest("for %q: %v", req.For, err)
		}
		mu.Until = time.Now().Add(d).UTC()
	}
	saved, err := s.cfg.Monitor.Mute(r.Context(), mu)
	if err != nil {
		return nil, monitorErr(err)
	}
	return saved, nil
}

// parseDays reads a duration where "d" is a day.
func parseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n <= 0 || n > 3650 {
			return 0, errors.New("want e.g. 12h or 7d")
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, errors.New("want e.g. 12h or 7d")
	}
	return v, nil
}

func (s *Server) muteDelete(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	if err := s.cfg.Monitor.Unmute(r.Context(), r.PathValue("id")); err != nil {
		return nil, monitorErr(err)
	}
	return map[string]any{"deleted": r.PathValue("id")}, nil
}
