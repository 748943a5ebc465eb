package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vantagehq/vantage/exposure"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// ExposureView is an address's exposure score with the parts it is made
// of (docs/exposure.md explains the formula).
type ExposureView struct {
	IP string `json:"ip"`
	exposure.Result
}

func (s *Server) exposure(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	ip, err := parseAddr(r.PathValue("ip"))
	if err != nil {
		return nil, err
	}
	if s.hidden(ip, p) {
		return nil, fmt.Errorf("%w: %v", errNotFound, errOptedOut)
	}
	h, err := s.cfg.Store.Host(r.Context(), ip)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("nothing is known about %s: %w", ip, errNotFound)
	}
	if err != nil {
		return nil, err
	}
	return ExposureView{IP: ip.String(), Result: s.Exposure(h)}, nil
}

// Exposure scores a host's current services.
func (s *Server) Exposure(h *store.Host) exposure.Result {
	svcs := make([]record.Service, len(h.Services))
	for i := range h.Services {
		svcs[i] = h.Services[i].Service
	}
	return exposure.Score(svcs, s.cfg.Vulns, s.cfg.EOL, time.Now())
}
