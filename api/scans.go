package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/job"
)

func (s *Server) scanRoutes() {
	if s.cfg.Jobs == nil {
		return
	}
	s.mux.Handle("POST /api/v1/scans", s.wrap("scans", ScopeAdmin, s.scanSubmit))
	s.mux.Handle("GET /api/v1/scans/{id}", s.wrap("scans", ScopeAdmin, s.scanStatus))
}

// ScanRequest asks the scanner workers for a scan, split into shards.
type ScanRequest struct {
	ID      string   `json:"id,omitempty"` // default: made from the time
	Targets []string `json:"targets"`
	Ports   string   `json:"ports"`
	Rate    int      `json:"rate,omitempty"` // per shard
	Shards  int      `json:"shards,omitempty"`
	Seed    string   `json:"seed,omitempty"`
	Grab    bool     `json:"grab,omitempty"`
}

// ScanView is a sharded scan and how far each shard got.
type ScanView struct {
	ID        string       `json:"id"`
	State     string       `json:"state"` // queued, running, done (all shards), failed (any)
	Published int          `json:"published"`
	Jobs      []job.Status `json:"jobs"`
}

func (s *Server) scanSubmit(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	var req ScanRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if req.ID == "" {
		req.ID = "scan-" + time.Now().UTC().Format("20060102-150405.000")
		req.ID = strings.ReplaceAll(req.ID, ".", "-")
	}
	if req.Shards == 0 {
		req.Shards = 1
	}
	base := job.Scan{ID: req.ID, Origin: "api:" + p.name(), Targets: req.Targets, Ports: req.Ports, Rate: req.Rate,
		Grab: req.Grab, Seed: req.Seed, Created: time.Now().UTC()}
	shards, err := job.Split(base, req.Shards)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	for _, sh := range shards {
		if err := sh.Check(); err != nil {
			return nil, badRequest("%v", err)
		}
	}
	if _, err := s.cfg.Jobs.Jobs(r.Context(), req.ID); err == nil {
		return nil, &apiError{status: http.StatusConflict, msg: fmt.Sprintf("scan %s exists: choose another id", req.ID)}
	}
	for _, sh := range shards {
		if _, err := s.cfg.Jobs.Submit(r.Context(), sh); err != nil {
			return nil, err
		}
	}
	v, err := s.scanView(r, req.ID)
	if err != nil {
		return nil, err
	}
	w.Header().Set("Location", "/api/v1/scans/"+req.ID)
	writeJSON(w, http.StatusAccepted, v)
	return nil, nil
}

func (s *Server) scanStatus(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	return s.scanView(r, r.PathValue("id"))
}

func (s *Server) scanView(r *http.Request, id string) (*ScanView, error) {
	jobs, err := s.cfg.Jobs.Jobs(r.Context(), id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: no scan %s", errNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	v := &ScanView{ID: id, Jobs: jobs}
	states := map[string]int{}
	for _, j := range jobs {
		states[j.State]++
		v.Published += j.Published
	}
	switch {
	case states[job.Failed] > 0:
		v.State = job.Failed
	case states[job.Done] == len(jobs):
		v.State = job.Done
	case states[job.Running] > 0 || states[job.Done] > 0:
		v.State = job.Running
	default:
		v.State = job.Queued
	}
	return v, nil
}
