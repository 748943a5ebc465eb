package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/eol"
	"github.com/vantagehq/vantage/job"
	"github.com/vantagehq/vantage/monitor"
)

// monitorServer is the API with a monitor on the shared bus and store.
func monitorServer(t *testing.T) (*api.Server, string) {
	t.Helper()
	e := getEnv(t)
	ctx := context.Background()
	jobs, err := job.Open(ctx, e.bus)
	if err != nil {
		t.Fatal(err)
	}
	mon, err := monitor.New(ctx, monitor.Config{Bus: e.bus, Store: e.st, Jobs: jobs, EOL: eol.Default()})
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := e.keys.Create(ctx, "team", []string{api.ScopeMonitor}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e.server(func(c *api.Config) { c.Monitor, c.EOL = mon, eol.Default() }), secret
}

func TestMonitorEndpoints(t *testing.T) {
	e := getEnv(t)
	srv, team := monitorServer(t)
	name := "team-" + strings.ToLower(time.Now().Format("150405.000000"))
	name = strings.ReplaceAll(name, ".", "")
	body := `{"cidrs":["198.51.100.0/24"],"domains":["example.com"],"ports":"22,443","every":"6h",` +
		`"webhooks":[{"url":"https://hooks.example.com/x","secret":"s3cret"}]}`

	tests := []struct {
		name   string
		r      req
		status int
		want   string // in the body
	}{
		{"anonymous refused", req{path: "/api/v1/monitors"}, http.StatusUnauthorized, ""},
		{"read key refused", req{path: "/api/v1/monitors", header: bearer(e.read)}, http.StatusForbidden, "monitor"},
		{"create", req{method: "PUT", path: "/api/v1/monitors/" + name, body: []byte(body), header: bearer(team)}, http.StatusOK, `"secret":"(set)"`},
		{"listed, secret hidden", req{path: "/api/v1/monitors", header: bearer(team)}, http.StatusOK, name},
		{"admin sees it too", req{path: "/api/v1/monitors/" + name, header: bearer(e.admin)}, http.StatusOK, `"every":"6h0m0s"`},
		{"bad cidr", req{method: "PUT", path: "/api/v1/monitors/" + name, body: []byte(`{"cidrs":["300.1.1.0/24"]}`), header: bearer(team)},
			http.StatusBadRequest, "cidr"},
		{"names differ", req{method: "PUT", path: "/api/v1/monitors/" + name, body: []byte(`{"name":"other","cidrs":["192.0.2.0/24"]}`), header: bearer(team)},
			http.StatusBadRequest, "names"},
		{"unknown field", req{method: "POST", path: "/api/v1/monitors", body: []byte(`{"name":"x","cidr":"192.0.2.0/24"}`), header: bearer(team)},
			http.StatusBadRequest, "unknown field"},
		{"unknown watchlist", req{path: "/api/v1/monitors/nope", header: bearer(team)}, http.StatusNotFound, "nope"},
		{"rescan queued", req{method: "POST", path: "/api/v1/monitors/" + name + "/scan", header: bearer(team)}, http.StatusAccepted, `"state":"queued"`},
		{"hosts, none yet", req{path: "/api/v1/monitors/" + name + "/hosts", header: bearer(team)}, http.StatusOK, `"hosts":[]`},
		{"alerts, bad state", req{path: "/api/v1/alerts?state=closed", header: bearer(team)}, http.StatusBadRequest, "open or acked"},
		{"alerts, bad kind", req{path: "/api/v1/alerts?kind=boom", header: bearer(team)}, http.StatusBadRequest, "new_service"},
		{"alerts", req{path: "/api/v1/alerts?watchlist=" + name, header: bearer(team)}, http.StatusOK, `"alerts":[]`},
		{"unknown alert", req{path: "/api/v1/alerts/0000/ack", method: "POST", header: bearer(team)}, http.StatusNotFound, ""},
		{"mute", req{method: "POST", path: "/api/v1/mutes", body: []byte(`{"ip":"198.51.100.7","port":8080,"for":"7d","reason":"lab"}`), header: bearer(team)},
			http.StatusOK, `"until"`},
		{"mute, bad ip", req{method: "POST", path: "/api/v1/mutes", body: []byte(`{"ip":"nope"}`), header: bearer(team)}, http.StatusBadRequest, "address"},
		{"mute, bad for", req{method: "POST", path: "/api/v1/mutes", body: []byte(`{"ip":"192.0.2.1","for":"soon"}`), header: bearer(team)}, http.StatusBadRequest, "7d"},
		{"mutes", req{path: "/api/v1/mutes", header: bearer(team)}, http.StatusOK, "198.51.100.7"},
		{"exposure, read scope", req{path: "/api/v1/exposure/" + v4a.String()}, http.StatusOK, `"parts"`},
		{"exposure, unknown", req{path: "/api/v1/exposure/" + unknownIP.String()}, http.StatusNotFound, ""},
		{"delete", req{method: "DELETE", path: "/api/v1/monitors/" + name, header: bearer(team)}, http.StatusOK, name},
		{"deleted", req{path: "/api/v1/monitors/" + name, header: bearer(team)}, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		r := do(srv, tt.r)
		if r.code != tt.status || !strings.Contains(string(r.body), tt.want) {
			t.Errorf("%s: %s, want %d with %q", tt.name, r, tt.status, tt.want)
		}
		if strings.Contains(string(r.body), "s3cret") {
			t.Errorf("%s: the webhook secret is in the answer", tt.name)
		}
	}
}
