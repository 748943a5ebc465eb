package optout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/bus"
)

// AuditEvent is one line of the audit log.
type AuditEvent struct {
	Seq     uint64         `json:"seq"`
	Time    time.Time      `json:"time"`
	Action  string         `json:"action"` // request, verified, verify-failed, approve, reject, remove
	By      string         `json:"by"`     // an address, "source", "token", or an operator's key
	Request string         `json:"request"`
	CIDRs   []netip.Prefix `json:"cidrs"`
	State   string         `json:"state"`
	Version uint64         `json:"version,omitempty"` // exclusion list version, for decisions that changed it
	Detail  string         `json:"detail,omitempty"`
}

// audit appends to the AUDIT stream. A decision already stored stands if
// the log cannot be written; the failure is in the server's log (the
// caller's), and the next event goes on as usual.
func (s *Service) audit(ctx context.Context, action, by string, st *stored, detail string) {
	if s.cfg.JS == nil {
		return
	}
	ev := AuditEvent{Time: s.cfg.Now().UTC(), Action: action, By: by, Request: st.ID, CIDRs: st.CIDRs, State: st.State, Detail: detail}
	if action == "approve" || action == "remove" {
		ev.Version = st.Version
	}
	b, _ := json.Marshal(ev)
	s.cfg.JS.Publish(ctx, bus.SubjectAudit+"."+action, b)
}

// Audit returns the last n events of the audit log, oldest first.
func (s *Service) Audit(ctx context.Context, n int) ([]AuditEvent, error) {
	if s.cfg.JS == nil {
		return nil, errors.New("no audit log on this server")
	}
	st, err := s.cfg.JS.Stream(ctx, bus.StreamAudit)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	last := info.State.LastSeq
	first := info.State.FirstSeq
	if last == 0 {
		return []AuditEvent{}, nil
	}
	if n > 0 && last >= uint64(n) && last-uint64(n)+1 > first {
		first = last - uint64(n) + 1
	}
	out := []AuditEvent{}
	for seq := first; seq <= last; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("audit log message %d: %w", seq, err)
		}
		var ev AuditEvent
		if json.Unmarshal(m.Data, &ev) == nil {
			ev.Seq = seq
			out = append(out, ev)
		}
	}
	return out, nil
}
