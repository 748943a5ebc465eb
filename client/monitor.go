package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"

	"github.com/vantagehq/vantage/job"
	"github.com/vantagehq/vantage/monitor"
)

// PutWatchlist creates or replaces a watchlist.
func (c *Client) PutWatchlist(ctx context.Context, w monitor.Watchlist) (*monitor.View, error) {
	body, _ := json.Marshal(w)
	var v monitor.View
	err := c.do(ctx, "PUT", "/api/v1/monitors/"+url.PathEscape(w.Name), nil, bytes.NewReader(body), "application/json", &v)
	return &v, err
}

// Watchlists lists every watchlist with its rescans' state.
func (c *Client) Watchlists(ctx context.Context) ([]monitor.View, error) {
	var out struct {
		Watchlists []monitor.View `json:"watchlists"`
	}
	err := c.do(ctx, "GET", "/api/v1/monitors", nil, nil, "", &out)
	return out.Watchlists, err
}

// DeleteWatchlist removes a watchlist (its alerts stay).
func (c *Client) DeleteWatchlist(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/api/v1/monitors/"+url.PathEscape(name), nil, nil, "", nil)
}

// ScanWatchlist queues a rescan of a watchlist now.
func (c *Client) ScanWatchlist(ctx context.Context, name string) (*job.Status, error) {
	var st job.Status
	err := c.do(ctx, "POST", "/api/v1/monitors/"+url.PathEscape(name)+"/scan", nil, nil, "", &st)
	return &st, err
}

// Job is a scan job's status.
func (c *Client) Job(ctx context.Context, id string) (*job.Status, error) {
	var st job.Status
	err := c.do(ctx, "GET", "/api/v1/jobs/"+url.PathEscape(id), nil, nil, "", &st)
	return &st, err
}

// Alerts lists alerts; q may hold watchlist, state, kind, ip, muted, limit.
func (c *Client) Alerts(ctx context.Context, q url.Values) (total int, alerts []monitor.Alert, err error) {
	var out struct {
		Total  int             `json:"total"`
		Alerts []monitor.Alert `json:"alerts"`
	}
	err = c.do(ctx, "GET", "/api/v1/alerts", q, nil, "", &out)
	return out.Total, out.Alerts, err
}

// AckAlert acknowledges an alert.
func (c *Client) AckAlert(ctx context.Context, id string) (*monitor.Alert, error) {
	var a monitor.Alert
	err := c.do(ctx, "POST", "/api/v1/alerts/"+url.PathEscape(id)+"/ack", nil, nil, "", &a)
	return &a, err
}

// Mute silences a host's (or a port's) alerts; req holds watchlist, ip,
// port, for, reason.
func (c *Client) Mute(ctx context.Context, req map[string]any) (*monitor.Mute, error) {
	body, _ := json.Marshal(req)
	var m monitor.Mute
	err := c.do(ctx, "POST", "/api/v1/mutes", nil, bytes.NewReader(body), "application/json", &m)
	return &m, err
}

// Mutes lists the mutes in force.
func (c *Client) Mutes(ctx context.Context) ([]monitor.Mute, error) {
	var out struct {
		Mutes []monitor.Mute `json:"mutes"`
	}
	err := c.do(ctx, "GET", "/api/v1/mutes", nil, nil, "", &out)
	return out.Mutes, err
}

// Unmute removes a mute.
func (c *Client) Unmute(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/api/v1/mutes/"+url.PathEscape(id), nil, nil, "", nil)
}

// SubmitScan asks the scanner workers for a scan split into shards; req
// holds id, targets, ports, rate, shards, seed, grab.
func (c *Client) SubmitScan(ctx context.Context, req map[string]any) (*ScanView, error) {
	body, _ := json.Marshal(req)
	var v ScanView
	err := c.do(ctx, "POST", "/api/v1/scans", nil, bytes.NewReader(body), "application/json", &v)
	return &v, err
}

// Scan is a sharded scan's state.
func (c *Client) Scan(ctx context.Context, id string) (*ScanView, error) {
	var v ScanView
	err := c.do(ctx, "GET", "/api/v1/scans/"+url.PathEscape(id), nil, nil, "", &v)
	return &v, err
}

// ScanView is a sharded scan and its jobs (the API's answer).
type ScanView struct {
	ID        string       `json:"id"`
	State     string       `json:"state"`
	Published int          `json:"published"`
	Jobs      []job.Status `json:"jobs"`
}
