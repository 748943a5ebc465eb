package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"time"

	"github.com/vantagehq/vantage/exclusion"
	"github.com/vantagehq/vantage/optout"
)

// AddOptOut records an operator's opt-out request, approved at once with approve.
func (c *Client) AddOptOut(ctx context.Context, cidrs []string, contact, reason string, approve bool) (*optout.Request, error) {
	body, _ := json.Marshal(map[string]any{"cidrs": cidrs, "contact": contact, "reason": reason, "approve": approve})
	var r optout.Request
	err := c.do(ctx, "POST", "/api/v1/optouts", nil, bytes.NewReader(body), "application/json", &r)
	return &r, err
}

// OptOuts lists every request.
func (c *Client) OptOuts(ctx context.Context) ([]optout.Request, error) {
	var out struct {
		Requests []optout.Request `json:"requests"`
	}
	err := c.do(ctx, "GET", "/api/v1/optouts", nil, nil, "", &out)
	return out.Requests, err
}

// DecideOptOut approves, rejects or removes a request (action approve, reject, remove).
func (c *Client) DecideOptOut(ctx context.Context, id, action, note string) (*optout.Request, error) {
	var r optout.Request
	if action == "remove" {
		err := c.do(ctx, "DELETE", "/api/v1/optouts/"+url.PathEscape(id), url.Values{"note": {note}}, nil, "", &r)
		return &r, err
	}
	body, _ := json.Marshal(map[string]string{"note": note})
	err := c.do(ctx, "POST", "/api/v1/optouts/"+url.PathEscape(id)+"/"+action, nil, bytes.NewReader(body), "application/json", &r)
	return &r, err
}

// Audit returns the last n events of the audit log.
func (c *Client) Audit(ctx context.Context, n int) ([]optout.AuditEvent, error) {
	var out struct {
		Events []optout.AuditEvent `json:"events"`
	}
	err := c.do(ctx, "GET", "/api/v1/audit", url.Values{"limit": {strconv.Itoa(n)}}, nil, "", &out)
	return out.Events, err
}

// Exclusions returns the exclusion list: at once, or (after > 0 or with a
// wait) the first version above after, or the current one when wait ends.
func (c *Client) Exclusions(ctx context.Context, after uint64, wait time.Duration) (*exclusion.List, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
		q.Set("wait", strconv.Itoa(int(wait.Seconds()))+"s")
	}
	var l exclusion.List
	err := c.do(ctx, "GET", "/api/v1/exclusions", q, nil, "", &l)
	return &l, err
}
