package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/job"
)

func TestScanEndpoints(t *testing.T) {
	e := getEnv(t)
	jobs, err := job.Open(context.Background(), e.bus)
	if err != nil {
		t.Fatal(err)
	}
	srv := e.server(func(c *api.Config) { c.Jobs = jobs })
	body := `{"id":"apifarm","targets":["198.18.0.0/15"],"ports":"22,80,443","shards":3,"rate":20000}`
	tests := []struct {
		name   string
		r      req
		status int
		want   string
	}{
		{"read key refused", req{method: "POST", path: "/api/v1/scans", body: []byte(body), header: bearer(e.read)}, http.StatusForbidden, "admin"},
		{"queued as three shards", req{method: "POST", path: "/api/v1/scans", body: []byte(body), header: bearer(e.admin)}, http.StatusAccepted, `"id":"apifarm.s2"`},
		{"the same id again", req{method: "POST", path: "/api/v1/scans", body: []byte(body), header: bearer(e.admin)}, http.StatusConflict, "exists"},
		{"status", req{path: "/api/v1/scans/apifarm", header: bearer(e.admin)}, http.StatusOK, `"state":"queued"`},
		{"unknown scan", req{path: "/api/v1/scans/nope", header: bearer(e.admin)}, http.StatusNotFound, "nope"},
		{"too many shards", req{method: "POST", path: "/api/v1/scans", body: []byte(`{"targets":["192.0.2.1"],"ports":"22","shards":5000}`), header: bearer(e.admin)},
			http.StatusBadRequest, "shards"},
		{"no ports", req{method: "POST", path: "/api/v1/scans", body: []byte(`{"targets":["192.0.2.1"]}`), header: bearer(e.admin)},
			http.StatusBadRequest, "ports"},
		{"a flag as a target", req{method: "POST", path: "/api/v1/scans", body: []byte(`{"targets":["--rate=0"],"ports":"22"}`), header: bearer(e.admin)},
			http.StatusBadRequest, "target"},
		{"a bad id", req{method: "POST", path: "/api/v1/scans", body: []byte(`{"id":"a b","targets":["192.0.2.1"],"ports":"22"}`), header: bearer(e.admin)},
			http.StatusBadRequest, "id"},
	}
	for _, tt := range tests {
		r := do(srv, tt.r)
		if r.code != tt.status || !strings.Contains(string(r.body), tt.want) {
			t.Errorf("%s: %s, want %d with %q", tt.name, r, tt.status, tt.want)
		}
	}
}
