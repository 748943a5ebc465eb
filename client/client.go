// Package client talks to a vantage server's HTTP API: the CLI's lookup,
// search and count, key management, and the ingest endpoint scanners and
// sensors publish to when they reach the server over HTTP.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// Client is an API client.
type Client struct {
	Base string // e.g. http://127.0.0.1:8080
	Key  string // API key; "" for anonymous reads
	HTTP *http.Client
}

// New returns a client with sane timeouts.
func New(base, key string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Key: key, HTTP: &http.Client{Timeout: 2 * time.Minute}}
}

// Error is an error the server answered with.
type Error struct {
	Status int
	Msg    string
	Line   int
	Column int
	Caret  string
}

func (e *Error) Error() string { return e.Msg }

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, ctype string, out any) error {
	u := c.Base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, c.Base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct {
			Error  string `json:"error"`
			Detail string `json:"detail"`
			Line   int    `json:"line"`
			Column int    `json:"column"`
			Caret  string `json:"caret"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" && e.Detail == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		if e.Error == "" {
			e.Error = e.Detail
		}
		return &Error{Status: resp.StatusCode, Msg: fmt.Sprintf("%s (HTTP %d)", e.Error, resp.StatusCode),
			Line: e.Line, Column: e.Column, Caret: e.Caret}
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Host looks up one address (or a CIDR block up to /24: then HostRange).
func (c *Client) Host(ctx context.Context, ip string) (*store.Host, error) {
	var h store.Host
	return &h, c.do(ctx, "GET", "/api/v1/host/"+url.PathEscape(ip), nil, nil, "", &h)
}

// HostRange looks up every known address of a CIDR block.
func (c *Client) HostRange(ctx context.Context, cidr string) ([]*store.Host, error) {
	var out struct {
		Hosts []*store.Host `json:"hosts"`
	}
	return out.Hosts, c.do(ctx, "GET", "/api/v1/host/"+cidr, nil, nil, "", &out)
}

// SearchOptions page and facet a search.
type SearchOptions struct {
	Facets string
	Limit  int
	Cursor string
}

func (o SearchOptions) values(q string) url.Values {
	v := url.Values{"q": {q}}
	if o.Facets != "" {
		v.Set("facets", o.Facets)
	}
	if o.Limit >= 0 {
		v.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		v.Set("cursor", o.Cursor)
	}
	return v
}

// Search finds services.
func (c *Client) Search(ctx context.Context, q string, o SearchOptions) (*store.ServiceResult, error) {
	var r store.ServiceResult
	return &r, c.do(ctx, "GET", "/api/v1/search", o.values(q), nil, "", &r)
}

// SearchEvents finds sensor events.
func (c *Client) SearchEvents(ctx context.Context, q string, o SearchOptions) (*store.EventResult, error) {
	var r store.EventResult
	return &r, c.do(ctx, "GET", "/api/v1/sensors/search", o.values(q), nil, "", &r)
}

// Export streams every matching service as JSON lines or CSV into w.
func (c *Client) Export(ctx context.Context, q, format string, w io.Writer) error {
	return c.do(ctx, "GET", "/api/v1/search", url.Values{"q": {q}, "format": {format}}, nil, "", w)
}

// Count counts services and their facets.
func (c *Client) Count(ctx context.Context, q, facets string) (total int64, f map[string][]store.FacetValue, err error) {
	var r struct {
		Total  int64                         `json:"total"`
		Facets map[string][]store.FacetValue `json:"facets"`
	}
	err = c.do(ctx, "GET", "/api/v1/count", url.Values{"q": {q}, "facets": {facets}}, nil, "", &r)
	return r.Total, r.Facets, err
}

// Sensors returns the sensors' view of an address.
func (c *Client) Sensors(ctx context.Context, ip string, events int) (map[string]any, error) {
	var r map[string]any
	return r, c.do(ctx, "GET", "/api/v1/sensors/ip/"+url.PathEscape(ip), url.Values{"events": {strconv.Itoa(events)}}, nil, "", &r)
}

// Ingest publishes a batch to the server's bus ("results" or "events").
func (c *Client) Ingest(ctx context.Context, stream string, b *record.Batch) error {
	return c.do(ctx, "POST", "/api/v1/ingest/"+stream, nil, bytes.NewReader(b.Marshal()), "application/octet-stream", nil)
}

// CreateKey makes an API key (admin scope needed) and returns its secret.
func (c *Client) CreateKey(ctx context.Context, name string, scopes []string, rate float64) (string, map[string]any, error) {
	body, _ := json.Marshal(map[string]any{"name": name, "scopes": scopes, "rate_limit": rate})
	var r struct {
		Secret string         `json:"secret"`
		Key    map[string]any `json:"key"`
	}
	err := c.do(ctx, "POST", "/api/v1/keys", nil, bytes.NewReader(body), "application/json", &r)
	return r.Secret, r.Key, err
}

// Keys lists the API keys.
func (c *Client) Keys(ctx context.Context) ([]map[string]any, error) {
	var r struct {
		Keys []map[string]any `json:"keys"`
	}
	return r.Keys, c.do(ctx, "GET", "/api/v1/keys", nil, nil, "", &r)
}

// DeleteKey removes an API key.
func (c *Client) DeleteKey(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/api/v1/keys/"+url.PathEscape(id), nil, nil, "", nil)
}

// Bulk answers for many addresses at once (at most 10,000 a call).
func (c *Client) Bulk(ctx context.Context, ips []string) ([]store.Summary, error) {
	body, _ := json.Marshal(map[string][]string{"ips": ips})
	var out struct {
		Results []store.Summary `json:"results"`
	}
	err := c.do(ctx, "POST", "/api/v1/bulk", nil, bytes.NewReader(body), "application/json", &out)
	return out.Results, err
}
