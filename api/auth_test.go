package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/record"
)

// keyID is the ID part of a secret "vtg_<id>_<random>".
func keyID(secret string) string { return strings.Split(secret, "_")[1] }

func TestAuthAnonymous(t *testing.T) {
	e := getEnv(t)
	open := e.server(nil)
	closed := e.server(func(c *api.Config) { c.Anonymous = false })
	keyless := e.server(func(c *api.Config) { c.Keys = nil })
	const path = "/api/v1/count"
	for _, tc := range []struct {
		name   string
		h      http.Handler
		header map[string]string
		query  string
		code   int
		msg    string
	}{
		{"anonymous allowed", open, nil, "", 200, ""},
		{"anonymous refused", closed, nil, "", 401, `"read" scope is required`},
		{"bearer", closed, bearer(e.read), "", 200, ""},
		{"x-api-key", closed, map[string]string{"X-API-Key": e.read}, "", 200, ""},
		{"query key", closed, nil, "key=" + e.read, 200, ""},
		{"bearer with spaces", closed, map[string]string{"Authorization": "Bearer   " + e.read + "  "}, "", 200, ""},
		{"x-api-key wins over bearer", closed, map[string]string{"X-API-Key": e.read, "Authorization": "Bearer vtg_0000000000_x"}, "", 200, ""},
		{"admin implies read", closed, bearer(e.admin), "", 200, ""},
		{"scan lacks read", closed, bearer(e.scan), "", 403, `lacks the "read" scope`},
		{"basic auth is not a key", closed, map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, "", 401, "required"},
		// an invalid key is refused even where anonymous reads are allowed
		{"invalid bearer, anonymous allowed", open, bearer("vtg_0123456789_nope"), "", 401, "invalid API key"},
		{"invalid x-api-key, anonymous allowed", open, map[string]string{"X-API-Key": "nope"}, "", 401, "invalid API key"},
		{"invalid query key, anonymous allowed", open, nil, "key=vtg_x", 401, "invalid API key"},
		{"right id, wrong secret", open, bearer(e.read[:len(e.read)-2] + "xx"), "", 401, "invalid API key"},
		{"key of another id shape", open, bearer("vtg_a.b*c>d_efg_" + strings.Repeat("x", 32)), "", 401, "invalid API key"},
		{"invalid key, closed", closed, bearer("vtg_0123456789_nope"), "", 401, "invalid API key"},
		{"keyless server, anonymous", keyless, nil, "", 200, ""},
		{"keyless server, a key", keyless, bearer(e.read), "", 401, "no API keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := path
			if tc.query != "" {
				p += "?" + tc.query
			}
			r := do(tc.h, req{path: p, header: tc.header})
			if r.code != tc.code {
				t.Fatalf("%s; want %d", r, tc.code)
			}
			if tc.code != 200 {
				errContains(tc.msg)(t, r)
			}
		})
	}

	t.Run("every read endpoint", func(t *testing.T) {
		for _, p := range []string{
			"/api/v1/host/198.51.100.10", "/api/v1/search", "/api/v1/count", "/api/v1/fields?target=services",
			"/api/v1/sensors/ip/45.33.32.156", "/api/v1/sensors/search", "/api/v1/sensors/stats",
			"/api/v1/sensors/matrix", "/api/v1/sensors/timeline", "/v3/community/45.33.32.156", "/internetdb/198.51.100.10",
		} {
			if r := get(closed, p); r.code != 401 {
				t.Errorf("anonymous %s on a closed server: %s", p, r)
			}
			if r := do(closed, req{path: p, header: bearer(e.read)}); r.code != 200 {
				t.Errorf("%s with a read key: %s", p, r)
			}
		}
		body := []byte(`{"ips":["198.51.100.10"]}`)
		if r := do(closed, req{method: "POST", path: "/api/v1/bulk", body: body}); r.code != 401 {
			t.Errorf("anonymous bulk: %s", r)
		}
		if r := do(closed, req{method: "POST", path: "/api/v1/bulk", body: body, header: bearer(e.read)}); r.code != 200 {
			t.Errorf("bulk with a read key: %s", r)
		}
	})
	t.Run("health is open", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			if r := get(closed, p); r.code != 200 {
				t.Errorf("%s: %s", p, r)
			}
		}
	})
}

// lastOnBus returns the last batch published on a subject, or nil.
func lastOnBus(t *testing.T, e *env, stream, subject string) *record.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.bus.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("last message on %s: %v", subject, err)
	}
	b, err := record.UnmarshalBatch(m.Data)
	if err != nil {
		t.Fatalf("message on %s: %v", subject, err)
	}
	return b
}

// streamMsgs is the number of messages a stream holds.
func streamMsgs(t *testing.T, e *env, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.bus.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestIngest(t *testing.T) {
	e := getEnv(t)
	s := e.server(nil)
	now := time.Now().UTC().Truncate(time.Microsecond)
	eventBatch := func(producer string) *record.Batch {
		return &record.Batch{ID: record.NewID(), Producer: producer, Events: []record.Event{{
			ID: record.NewID(), Time: now, Sensor: "test1", Src: netip.MustParseAddr("192.0.2.77"),
			Dst: netip.MustParseAddr("198.51.100.1"), DstPort: 22, Transport: "tcp", Tags: []string{"TEST"},
		}}}
	}
	serviceBatch := func(producer string) *record.Batch {
		ip := netip.MustParseAddr("fd00::77")
		return &record.Batch{ID: record.NewID(), Producer: producer, Services: []record.Service{{
			ID: record.ServiceID("t", ip, 443, "tcp"), Time: now, IP: ip, Port: 443, Transport: "tcp", State: "open",
			TLS: &record.TLS{SANs: []string{"x.example"}},
		}}}
	}
	post := func(stream string, body []byte, header map[string]string) response {
		return do(s, req{method: "POST", path: "/api/v1/ingest/" + stream, body: body, header: header})
	}

	t.Run("events", func(t *testing.T) {
		b := eventBatch("sensor/api-test-events")
		before := streamMsgs(t, e, bus.StreamEvents)
		r := post("events", b.Marshal(), bearer(e.scan))
		if r.code != http.StatusAccepted {
			t.Fatal(r)
		}
		m := r.obj(t)
		if m["id"] != b.ID.String() || m["records"] != float64(1) {
			t.Errorf("%s", r)
		}
		if after := streamMsgs(t, e, bus.StreamEvents); after != before+1 {
			t.Errorf("EVENTS has %d messages, had %d", after, before)
		}
		got := lastOnBus(t, e, bus.StreamEvents, "vantage.events.sensor/api-test-events")
		if got == nil || got.ID != b.ID || len(got.Events) != 1 || got.Events[0].Src != b.Events[0].Src ||
			!got.Events[0].Time.Equal(now) || got.Events[0].Tags[0] != "TEST" {
			t.Fatalf("on the bus: %+v", got)
		}
		// the same batch again is accepted and kept once (the bus dedups on the ID)
		if r := post("events", b.Marshal(), bearer(e.scan)); r.code != http.StatusAccepted {
			t.Fatal(r)
		}
		if after := streamMsgs(t, e, bus.StreamEvents); after != before+1 {
			t.Errorf("a re-posted batch is stored twice: %d messages, had %d", after, before)
		}
	})

	t.Run("results arrive through a consumer", func(t *testing.T) {
		// the producer is not a valid subject token (sanitised on the bus),
		// and an admin key has the scan scope too
		b := serviceBatch("scanner.api*test>")
		r := post("results", b.Marshal(), map[string]string{"X-API-Key": e.admin})
		if r.code != http.StatusAccepted {
			t.Fatal(r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var got *record.Batch
		err := e.bus.Consume(ctx, bus.StreamResults, "api-test", bus.ConsumeOptions{}, func(_ context.Context, ds []bus.Delivery) error {
			for _, d := range ds {
				if d.Batch.ID == b.ID {
					got = d.Batch
					cancel()
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got == nil {
			t.Fatal("the batch did not arrive on RESULTS")
		}
		if got.Producer != "scanner.api*test>" || len(got.Services) != 1 || got.Services[0].IP != b.Services[0].IP ||
			got.Services[0].TLS == nil || got.Services[0].TLS.SANs[0] != "x.example" {
			t.Errorf("consumed %+v", got)
		}
		if lastOnBus(t, e, bus.StreamResults, bus.Subject(bus.StreamResults, "scanner.api*test>")) == nil {
			t.Error("not on the sanitised subject")
		}
	})

	t.Run("producer defaults to the key", func(t *testing.T) {
		b := eventBatch("")
		if r := post("events", b.Marshal(), bearer(e.scan)); r.code != http.StatusAccepted {
			t.Fatal(r)
		}
		want := "key:" + keyID(e.scan)
		got := lastOnBus(t, e, bus.StreamEvents, "vantage.events."+want)
		if got == nil || got.ID != b.ID || got.Producer != want {
			t.Errorf("got %+v; want producer %s", got, want)
		}
	})

	t.Run("auth", func(t *testing.T) {
		body := eventBatch("sensor/auth").Marshal()
		for _, tc := range []struct {
			name   string
			header map[string]string
			code   int
		}{
			{"no key", nil, 401},
			{"read key", bearer(e.read), 403},
			{"invalid key", bearer("vtg_0123456789_zz"), 401},
			{"scan key", bearer(e.scan), 202},
		} {
			r := post("events", body, tc.header)
			if r.code != tc.code || !json.Valid(r.body) {
				t.Errorf("%s: %s; want %d", tc.name, r, tc.code)
			}
		}
		// anonymous reads never extend to writes
		if r := post("events", body, nil); r.code != 401 {
			t.Errorf("anonymous ingest on an anonymous server: %s", r)
		}
	})

	bad := func(name, stream string, body []byte, code int, msg string) {
		t.Run(name, func(t *testing.T) {
			before := streamMsgs(t, e, bus.StreamEvents) + streamMsgs(t, e, bus.StreamResults)
			r := post(stream, body, bearer(e.scan))
			if r.code != code {
				t.Fatalf("%s; want %d", r, code)
			}
			errContains(msg)(t, r)
			if after := streamMsgs(t, e, bus.StreamEvents) + streamMsgs(t, e, bus.StreamResults); after != before {
				t.Errorf("a refused batch was published")
			}
		})
	}
	bad("wrong stream", "services", eventBatch("x").Marshal(), 400, `stream "services"`)
	bad("upper-case stream", "EVENTS", eventBatch("x").Marshal(), 400, "want results or events")
	bad("events on results", "results", eventBatch("x").Marshal(), 400, "must hold only services")
	bad("services on events", "events", serviceBatch("x").Marshal(), 400, "must hold only events")
	mixed := eventBatch("x")
	mixed.Services = serviceBatch("x").Services
	bad("mixed on events", "events", mixed.Marshal(), 400, "only events")
	bad("garbage", "events", []byte("this is not a batch \xff\xff\xff\xff"), 400, "not a record batch")
	bad("json", "events", []byte(`{"id":"00000000000000000000000000000001","events":[{}]}`), 400, "not a record batch")
	bad("empty body", "events", nil, 400, "no id")
	noID := eventBatch("x")
	noID.ID = record.ID{}
	bad("no id", "events", noID.Marshal(), 400, "no id")
	truncated := eventBatch("x").Marshal()
	bad("truncated", "events", truncated[:len(truncated)-3], 400, "not a record batch")
	bad("producer too long", "events", eventBatch(strings.Repeat("p", 5000)).Marshal(), 400, "producer")

	t.Run("a long producer does not break the bus", func(t *testing.T) {
		// regression: a subject past NATS's 4 KiB control line made the
		// server close the connection the API, keys and ingest share
		for _, n := range []int{256, 257, 4000, 5000, 100000} {
			r := post("events", eventBatch(strings.Repeat("p", n)).Marshal(), bearer(e.scan))
			if want := map[bool]int{true: 202, false: 400}[n <= 256]; r.code != want {
				t.Errorf("producer of %d bytes: %s; want %d", n, r, want)
			}
		}
		if !e.bus.NC.IsConnected() {
			t.Fatalf("bus connection %v", e.bus.NC.Status())
		}
		if r := post("events", eventBatch("sensor/after").Marshal(), bearer(e.scan)); r.code != 202 {
			t.Errorf("after: %s", r)
		}
	})

	t.Run("body too large", func(t *testing.T) {
		small := e.server(func(c *api.Config) { c.MaxBody = 100 })
		b := eventBatch("sensor/big")
		b.Events[0].Payload = make([]byte, 200)
		r := do(small, req{method: "POST", path: "/api/v1/ingest/events", body: b.Marshal(), header: bearer(e.scan)})
		if r.code != http.StatusRequestEntityTooLarge {
			t.Fatal(r)
		}
		errContains("larger than 100 bytes")(t, r)
	})

	t.Run("batch larger than a bus message", func(t *testing.T) {
		// regression: MaxBody (16 MiB by default) allows more than the
		// bus's 8 MiB message: that was a 500, it is the client's 413
		b := eventBatch("sensor/huge")
		b.Events[0].Payload = make([]byte, 9<<20)
		r := post("events", b.Marshal(), bearer(e.scan))
		if r.code != http.StatusRequestEntityTooLarge {
			t.Fatal(r)
		}
		errContains("smaller batches")(t, r)
		if !e.bus.NC.IsConnected() {
			t.Fatalf("bus connection %v", e.bus.NC.Status())
		}
	})

	t.Run("no publisher", func(t *testing.T) {
		s := e.server(func(c *api.Config) { c.Publish = nil })
		r := do(s, req{method: "POST", path: "/api/v1/ingest/events", body: eventBatch("x").Marshal(), header: bearer(e.scan)})
		if r.code != http.StatusNotImplemented {
			t.Fatal(r)
		}
		errorBody(t, r)
	})

	t.Run("publish failure is a 500", func(t *testing.T) {
		s := e.server(func(c *api.Config) {
			c.Publish = func(context.Context, string, *record.Batch) error { return errors.New("bus down") }
		})
		r := do(s, req{method: "POST", path: "/api/v1/ingest/events", body: eventBatch("x").Marshal(), header: bearer(e.scan)})
		if r.code != 500 || strings.Contains(string(r.body), "bus down") {
			t.Fatalf("%s (an internal error is logged, not shown)", r)
		}
	})

	t.Run("get is not allowed", func(t *testing.T) {
		r := do(s, req{path: "/api/v1/ingest/events", header: bearer(e.scan)})
		if r.code/100 != 4 || !json.Valid(r.body) {
			t.Errorf("%s", r)
		}
	})
}

func TestKeys(t *testing.T) {
	e := getEnv(t)
	s := e.server(func(c *api.Config) { c.Anonymous = false })
	call := func(h http.Handler, method, path, secret string, body string) response {
		q := req{method: method, path: path, header: bearer(secret)}
		if body != "" {
			q.body = []byte(body)
		}
		return do(h, q)
	}

	// create
	r := call(s, "POST", "/api/v1/keys", e.admin, `{"name": "ci", "scopes": ["read", "scan"]}`)
	if r.code != 200 {
		t.Fatal(r)
	}
	var created struct {
		Secret string  `json:"secret"`
		Key    api.Key `json:"key"`
	}
	r.json(t, &created)
	if !strings.HasPrefix(created.Secret, "vtg_"+created.Key.ID+"_") || len(created.Key.ID) != 10 ||
		created.Key.Name != "ci" || len(created.Key.Scopes) != 2 || created.Key.Created.IsZero() {
		t.Fatalf("created %+v", created)
	}
	if created.Key.Hash != "" || strings.Contains(string(r.body), `"hash"`) {
		t.Errorf("the create response shows the hash: %s", r)
	}

	for _, tc := range []struct {
		name, secret, body string
		code               int
	}{
		{"read key", e.read, `{"name": "x", "scopes": ["read"]}`, 403},
		{"scan key", e.scan, `{"name": "x", "scopes": ["read"]}`, 403},
		{"no key", "", `{"name": "x", "scopes": ["read"]}`, 401},
		{"unknown scope", e.admin, `{"name": "x", "scopes": ["root"]}`, 400},
		{"no scopes", e.admin, `{"name": "x", "scopes": []}`, 400},
		{"no name", e.admin, `{"scopes": ["read"]}`, 400},
		{"long name", e.admin, `{"name": "` + strings.Repeat("n", 101) + `", "scopes": ["read"]}`, 400},
		{"negative rate", e.admin, `{"name": "x", "scopes": ["read"], "rate_limit": -1}`, 400},
		{"malformed", e.admin, `{"name": `, 400},
		{"wrong types", e.admin, `{"name": 1, "scopes": "read"}`, 400},
	} {
		t.Run("create/"+tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.secret != "" {
				h = bearer(tc.secret)
			}
			r := do(s, req{method: "POST", path: "/api/v1/keys", body: []byte(tc.body), header: h})
			if r.code != tc.code {
				t.Fatalf("%s; want %d", r, tc.code)
			}
			errorBody(t, r)
		})
	}

	// the new key works, with its scopes
	if r := call(s, "GET", "/api/v1/count", created.Secret, ""); r.code != 200 {
		t.Fatalf("the new key cannot read: %s", r)
	}
	if r := call(s, "GET", "/api/v1/keys", created.Secret, ""); r.code != 403 {
		t.Fatalf("a read+scan key lists keys: %s", r)
	}
	// another server with its own key cache, which has seen the key
	other := e.server(func(c *api.Config) { c.Anonymous = false; c.Keys = api.NewKeys(e.kv) })
	if r := call(other, "GET", "/api/v1/count", created.Secret, ""); r.code != 200 {
		t.Fatalf("the other server: %s", r)
	}

	// list
	r = call(s, "GET", "/api/v1/keys", e.admin, "")
	if r.code != 200 {
		t.Fatal(r)
	}
	if strings.Contains(string(r.body), `"hash"`) {
		t.Errorf("the list shows hashes: %s", r)
	}
	var list struct{ Keys []api.Key }
	r.json(t, &list)
	ids := map[string]api.Key{}
	for i, k := range list.Keys {
		ids[k.ID] = k
		if i > 0 && k.Created.Before(list.Keys[i-1].Created) {
			t.Errorf("keys not in creation order")
		}
	}
	for _, secret := range []string{e.admin, e.read, e.scan, created.Secret} {
		if _, ok := ids[keyID(secret)]; !ok {
			t.Errorf("key %s not listed", keyID(secret))
		}
	}
	if k := ids[created.Key.ID]; k.Name != "ci" {
		t.Errorf("listed %+v", k)
	}

	// delete
	if r := call(s, "DELETE", "/api/v1/keys/"+created.Key.ID, e.read, ""); r.code != 403 {
		t.Errorf("a read key deletes: %s", r)
	}
	r = call(s, "DELETE", "/api/v1/keys/"+created.Key.ID, e.admin, "")
	if r.code != 200 || r.obj(t)["deleted"] != created.Key.ID {
		t.Fatal(r)
	}
	if r := call(s, "DELETE", "/api/v1/keys/"+created.Key.ID, e.admin, ""); r.code != 404 {
		t.Errorf("deleting again: %s", r)
	}
	for _, id := range []string{"0000000000", "a.b", "*", ">", "%20"} {
		if r := call(s, "DELETE", "/api/v1/keys/"+id, e.admin, ""); r.code != 404 && r.code != 400 {
			t.Errorf("deleting %q: %s", id, r)
		}
	}

	// the deleted key stops working: at once on the server that deleted
	// it (its cache is cleared), on a fresh server, and on a server that
	// cached it within cacheFor (10 s) only until then
	if r := call(s, "GET", "/api/v1/count", created.Secret, ""); r.code != 401 {
		t.Errorf("the deleting server still takes the key: %s", r)
	}
	fresh := e.server(func(c *api.Config) { c.Anonymous = false; c.Keys = api.NewKeys(e.kv) })
	if r := call(fresh, "GET", "/api/v1/count", created.Secret, ""); r.code != 401 {
		t.Errorf("a fresh server takes the deleted key: %s", r)
	}
	if r := call(other, "GET", "/api/v1/count", created.Secret, ""); r.code != 200 {
		t.Logf("the other server refused the deleted key before its cache expired: %s", r)
	}
	r = call(s, "GET", "/api/v1/keys", e.admin, "")
	if strings.Contains(string(r.body), created.Key.ID) {
		t.Errorf("the deleted key is listed: %s", r)
	}

	t.Run("key rate limit", func(t *testing.T) {
		// a key's own rate replaces the server's
		rl := e.server(func(c *api.Config) { c.RateLimit, c.Burst = 1, 2 })
		r := call(s, "POST", "/api/v1/keys", e.admin, `{"name": "fast", "scopes": ["read"], "rate_limit": 1e9}`)
		if r.code != 200 {
			t.Fatal(r)
		}
		var k struct{ Secret string }
		r.json(t, &k)
		for i := range 10 {
			if r := call(rl, "GET", "/api/v1/fields?target=services", k.Secret, ""); r.code != 200 {
				t.Fatalf("request %d of a fast key: %s", i, r)
			}
		}
	})
}

func TestKeysLibrary(t *testing.T) {
	e := getEnv(t)
	ctx := context.Background()
	keys := api.NewKeys(e.kv)
	if _, _, err := keys.Create(ctx, "x", nil, 0); err == nil {
		t.Error("a key without scopes")
	}
	secret, k, err := keys.Create(ctx, "lib", []string{api.ScopeRead}, 5)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := keys.Check(ctx, secret)
	if !ok || got.ID != k.ID || got.RateLimit != 5 || !got.Has(api.ScopeRead) || got.Has(api.ScopeScan) {
		t.Errorf("check: %+v %v", got, ok)
	}
	for _, bad := range []string{"", "vtg_", "vtg_" + k.ID, "vtg_" + k.ID + "_", "xyz_" + secret[4:], secret + "x", strings.ToUpper(secret)} {
		if _, ok := keys.Check(ctx, bad); ok {
			t.Errorf("check(%q) passes", bad)
		}
	}
	if empty, err := keys.Empty(ctx); err != nil || empty {
		t.Errorf("empty: %v %v", empty, err)
	}
	if err := keys.Delete(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := keys.Check(ctx, secret); ok {
		t.Error("a deleted key passes on the instance that deleted it")
	}
	if err := keys.Delete(ctx, k.ID); err == nil {
		t.Error("deleting twice")
	}
}

func TestRateLimit(t *testing.T) {
	e := getEnv(t)
	s := e.server(func(c *api.Config) { c.RateLimit, c.Burst = 1, 2 })
	const path = "/api/v1/fields?target=events"
	for i, want := range []int{200, 200, 429} {
		r := do(s, req{path: path, remote: "198.51.100.200:5000"})
		if r.code != want {
			t.Fatalf("request %d: %s; want %d", i+1, r, want)
		}
		if want == 429 {
			if r.header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			errContains("rate limit")(t, r)
		}
	}
	// the bucket is per client address: another address, another port of
	// the same address
	if r := do(s, req{path: path, remote: "198.51.100.201:5000"}); r.code != 200 {
		t.Errorf("another client: %s", r)
	}
	if r := do(s, req{path: path, remote: "198.51.100.200:6000"}); r.code != 429 {
		t.Errorf("the same client from another port: %s", r)
	}
	// and per key, whatever the address
	for i, want := range []int{200, 200, 429} {
		r := do(s, req{path: path, remote: "198.51.100.200:5000", header: bearer(e.read)})
		if r.code != want {
			t.Fatalf("key request %d: %s; want %d", i+1, r, want)
		}
	}
	// a refused request is counted
	if r := get(s, "/metrics"); !strings.Contains(string(r.body), `vantage_api_requests_total{code="429",route="GET /api/v1/fields"} 3`) {
		t.Errorf("429s not in the metrics: %s", grepLines(r.body, "vantage_api_requests_total"))
	}
	// health checks are not limited
	for range 5 {
		if r := do(s, req{path: "/healthz", remote: "198.51.100.200:5000"}); r.code != 200 {
			t.Fatal(r)
		}
	}
	// no limit configured: no 429
	free := e.server(nil)
	for i := range 20 {
		if r := do(free, req{path: path, remote: "198.51.100.200:5000"}); r.code != 200 {
			t.Fatalf("request %d without a limit: %s", i, r)
		}
	}
}

func TestQueryTimeout(t *testing.T) {
	e := getEnv(t)
	s := e.server(func(c *api.Config) { c.QueryTimeout = time.Nanosecond })
	for _, p := range []string{
		"/api/v1/search?" + qs("q", "port:22", "facets", "country"),
		"/api/v1/count",
		"/api/v1/host/198.51.100.10",
		"/api/v1/host/198.51.100.0/28",
		"/api/v1/sensors/ip/45.33.32.156",
		"/api/v1/sensors/search",
		"/api/v1/sensors/stats",
		"/api/v1/sensors/matrix",
		"/api/v1/sensors/timeline",
		"/v3/community/45.33.32.156",
		"/internetdb/198.51.100.10",
	} {
		r := get(s, p)
		if r.code != http.StatusGatewayTimeout {
			t.Errorf("%s: %s; want 504", p, r)
			continue
		}
		errContains("took longer than 1ns")(t, r)
	}
	r := do(s, req{method: "POST", path: "/api/v1/bulk", body: []byte(`{"ips":["198.51.100.10"]}`)})
	if r.code != http.StatusGatewayTimeout {
		t.Errorf("bulk: %s", r)
	}
	// what needs no query is not limited
	if r := get(s, "/api/v1/fields?target=services"); r.code != 200 {
		t.Errorf("fields: %s", r)
	}
	// bad input is still a 400, checked before any query
	if r := get(s, "/api/v1/search?"+qs("q", "prot:1")); r.code != 400 {
		t.Errorf("bad query: %s", r)
	}

	t.Run("deadline of the request", func(t *testing.T) {
		// a request whose own context is past its deadline is a 504 too
		s := e.server(nil)
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		rq := httptest.NewRequest("GET", "/api/v1/search", nil).WithContext(ctx)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, rq)
		if w.Code != http.StatusGatewayTimeout {
			t.Errorf("%d %s", w.Code, w.Body)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		// a cancelled request gets no error body (nobody reads it), and
		// certainly no 500
		s := e.server(nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		rq := httptest.NewRequest("GET", "/api/v1/search", nil).WithContext(ctx)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, rq)
		if w.Code == 500 || w.Body.Len() != 0 {
			t.Errorf("%d %s", w.Code, w.Body)
		}
	})
}

// grepLines returns the lines of b that contain s.
func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestConcurrentRequests(t *testing.T) {
	// many clients at once, on one limiter map and one store pool: run
	// with -race; every answer is still right
	e := getEnv(t)
	s := e.server(func(c *api.Config) { c.RateLimit, c.Burst = 1e6, 1000 })
	paths := []string{
		"/api/v1/host/198.51.100.10", "/api/v1/search?" + qs("q", "product:nginx", "facets", "country"),
		"/api/v1/sensors/ip/45.33.32.156", "/api/v1/sensors/stats?by=tag", "/v3/community/45.33.32.156",
	}
	want := make([]string, len(paths))
	for i, p := range paths {
		want[i] = string(get(s, p).body)
	}
	errs := make(chan error, 64)
	done := make(chan struct{})
	go func() { // the server's periodic sweep, meanwhile
		for {
			select {
			case <-done:
				return
			default:
				s.SweepLimiters()
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				k := (w + i) % len(paths)
				r := do(s, req{path: paths[k], remote: "192.0.2.1:1"}) // one principal
				if r.code != 200 || string(r.body) != want[k] {
					errs <- fmt.Errorf("%s: %s", paths[k], r)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
