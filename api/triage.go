package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"

	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/tag"
	"github.com/vantagehq/vantage/triage"
)

// maxTriageSources bounds the distinct sources of one triage request
// (ten bulk lookups' worth); `vantage triage` reads bigger logs locally
// and asks in chunks.
const maxTriageSources = 100000

// triage reads the body as a log (nginx/Apache access, iptables/nftables
// LOG, sshd, a list or CSV of addresses: package triage), streaming it
// under MaxBody, and answers what the sensors think of each source, by
// what needs attention first:
//
//	{"lines": N, "malformed": M, "malformed_examples": [...],
//	 "formats": {"http": n, ...}, "sources": [{"ip": ..., "verdict": ..., "why": ...}, ...]}
func (s *Server) triage(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
	t := triage.NewTally()
	t.MaxSources = maxTriageSources
	if _, err := t.Read("", r.Body); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, mbe
		case errors.Is(err, triage.ErrTooManySources):
			return nil, badRequest("the log names more than %d distinct addresses: split it, or run vantage triage on it (which asks in chunks)", maxTriageSources)
		}
		return nil, badRequest("body: %v", err)
	}
	rows, err := triage.Triage(r.Context(), t.Sources(), func(ctx context.Context, ips []netip.Addr) ([]store.Summary, error) {
		sums, err := s.cfg.Store.Summaries(ctx, ips)
		for i := range sums { // an opted-out address is answered as unknown, as in bulk
			if s.hidden(sums[i].IP, p) {
				sums[i] = store.Summary{IP: sums[i].IP}
			}
		}
		return sums, err
	}, tag.DefaultActors())
	if err != nil {
		return nil, err
	}
	return t.Report(rows), nil
}
