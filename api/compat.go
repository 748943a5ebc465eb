package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/vantagehq/vantage/store"
)

// Community is the shape of GreyNoise's community API (/v3/community/{ip}),
// so integrations written for it work with a changed base URL.
type Community struct {
	IP             string `json:"ip"`
	Noise          bool   `json:"noise"`
	RIOT           bool   `json:"riot"` // common business services: not tracked here, always false
	Classification string `json:"classification,omitempty"`
	Name           string `json:"name,omitempty"`
	Link           string `json:"link,omitempty"`
	LastSeen       string `json:"last_seen,omitempty"`
	Message        string `json:"message"`
}

func (s *Server) community(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	ip, err := parseAddr(r.PathValue("ip"))
	if err != nil {
		return nil, err
	}
	prof, err := s.cfg.Store.Profile(r.Context(), ip, 0)
	if s.hidden(ip, p) {
		prof, err = nil, store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, Community{IP: ip.String(),
			Message: "IP not observed scanning the internet or contained in RIOT data set."})
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	name := prof.Actor
	if name == "" {
		name = "unknown"
	}
	return Community{
		IP: ip.String(), Noise: true, Classification: prof.Classification, Name: name,
		Link: s.cfg.PublicURL + "/ip/" + ip.String(), LastSeen: prof.LastSeen.Format(time.DateOnly), Message: "Success",
	}, nil
}

// InternetDB is the shape of Shodan's InternetDB (/{ip} there, /internetdb/{ip} here).
type InternetDB struct {
	IP        string   `json:"ip"`
	Ports     []uint16 `json:"ports"`
	Hostnames []string `json:"hostnames"`
	CPEs      []string `json:"cpes"`
	Tags      []string `json:"tags"`
	Vulns     []string `json:"vulns"`
}

func (s *Server) internetDB(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	ip, err := parseAddr(r.PathValue("ip"))
	if err != nil {
		return nil, err
	}
	h, err := s.cfg.Store.Host(r.Context(), ip)
	if s.hidden(ip, p) {
		h, err = nil, store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) || err == nil && len(h.Services) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "No information available"})
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := InternetDB{IP: ip.String(), Ports: h.Ports, Hostnames: []string{}, CPEs: nonNil(h.CPEs), Tags: nonNil(h.Tags), Vulns: nonNil(h.Vulns)}
	if out.Ports == nil {
		out.Ports = []uint16{}
	}
	for _, sv := range h.Services {
		if sv.TLS != nil {
			out.Hostnames = append(out.Hostnames, sv.TLS.SANs...)
		}
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
