package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/exclusion"
	"github.com/vantagehq/vantage/optout"
	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store/duckdb"
)

// optoutEnv is an API with opt-outs over its own bus (the shared one's
// exclusion list must not change under the other tests) and the shared
// store.
type optoutEnv struct {
	h     http.Handler
	track *exclusion.Tracker
	svc   *optout.Service
	bus   *bus.Bus
	admin string
}

func newOptoutEnv(t *testing.T) *optoutEnv {
	t.Helper()
	e := getEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	b, err := bus.Open(ctx, bus.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := &optoutEnv{bus: b, track: exclusion.NewTracker(), admin: e.admin}
	// the fetch may go to loopback here: the test's token server lives there
	o.svc, err = optout.Open(ctx, b, optout.Config{Allowed: func(a netip.Addr) bool { return !a.IsUnspecified() }})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); o.svc.FollowList(ctx, o.track, nil) }()
	t.Cleanup(func() { cancel(); wg.Wait(); b.Close() })
	o.h = e.server(func(c *api.Config) { c.OptOut, c.Exclusions = o.svc, o.track })
	return o
}

type answer struct {
	ID      string   `json:"id"`
	State   string   `json:"state"`
	Method  string   `json:"method"`
	Secret  string   `json:"secret"`
	Token   string   `json:"token"`
	Version uint64   `json:"version"`
	Needs   string   `json:"needs"`
	CIDRs   []string `json:"cidrs"`
	Next    string   `json:"next"`
}

func (o *optoutEnv) submit(t *testing.T, from string, cidrs ...string) (response, answer) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"cidrs": cidrs, "contact": "noc@example.net", "reason": "test"})
	r := do(o.h, req{method: "POST", path: "/api/v1/optout", body: body, remote: from + ":5555"})
	var a answer
	if r.code == http.StatusCreated {
		r.json(t, &a)
	}
	return r, a
}

func (o *optoutEnv) list(t *testing.T) exclusion.List {
	t.Helper()
	var l exclusion.List
	r := do(o.h, req{path: "/api/v1/exclusions", header: bearer(o.admin)})
	if r.code != 200 {
		t.Fatalf("exclusions: %s", r)
	}
	r.json(t, &l)
	return l
}

// TestOptOutFromInside: a request from an address inside the range is
// approved at once; the list's version grows; the range's hosts vanish
// from public lookups but not from an admin's; asking again is answered
// with the list, not a new record.
func TestOptOutFromInside(t *testing.T) {
	o := newOptoutEnv(t)
	r, a := o.submit(t, "198.51.100.77", "198.51.100.0/24")
	if r.code != http.StatusCreated || a.State != optout.Approved || a.Method != optout.BySource || a.Version != 1 || a.Secret == "" {
		t.Fatalf("from inside: %s", r)
	}
	l := o.list(t)
	if l.Version != 1 || !l.Contains(netip.MustParseAddr("198.51.100.10")) {
		t.Fatalf("list %+v", l)
	}
	// hidden from the public, shown to admins
	waitHidden(t, o.h, "/api/v1/host/198.51.100.10")
	if r := do(o.h, req{path: "/api/v1/host/198.51.100.10", header: bearer(o.admin)}); r.code != 200 {
		t.Errorf("admin lookup: %s", r)
	}
	// rows of the range leave public search results (counts stay: they name no one)
	if r := get(o.h, "/api/v1/search?q=ip:198.51.100.10"); r.code != 200 || strings.Contains(string(r.body), `"ip":"198.51.100.10"`) {
		t.Errorf("public search shows an opted-out host: %s", r)
	}
	if r := do(o.h, req{path: "/api/v1/search?q=ip:198.51.100.10", header: bearer(o.admin)}); !strings.Contains(string(r.body), `"ip":"198.51.100.10"`) {
		t.Errorf("admin search lacks the host: %s", r)
	}
	if r := get(o.h, "/api/v1/search?q=ip:198.51.100.10&format=csv"); strings.Contains(string(r.body), "198.51.100.10,") {
		t.Errorf("CSV export shows an opted-out host: %s", r)
	}
	for _, p := range []string{"/internetdb/198.51.100.10", "/api/v1/sensors/ip/198.51.100.10"} {
		if r := get(o.h, p); r.code != 404 {
			t.Errorf("%s of an opted-out address: %d", p, r.code)
		}
	}
	// the requester sees the state with the secret, no one without it
	if r := get(o.h, "/api/v1/optout/"+a.ID+"?secret="+a.Secret); r.code != 200 || !strings.Contains(string(r.body), `"approved"`) {
		t.Errorf("status with the secret: %s", r)
	}
	if r := get(o.h, "/api/v1/optout/"+a.ID+"?secret=wrong"); r.code != 404 {
		t.Errorf("status with a wrong secret: %d", r.code)
	}
	// a narrower range inside it: nothing new
	r, a2 := o.submit(t, "198.51.100.78", "198.51.100.128/25")
	if r.code != http.StatusCreated || a2.State != optout.Approved || a2.ID != "" || o.list(t).Version != 1 {
		t.Errorf("a covered range made a new request or version: %s", r)
	}
}

func waitHidden(t *testing.T, h http.Handler, path string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if r := get(h, path); r.code == 404 {
			if !strings.Contains(string(r.body), "opted out") {
				t.Errorf("%s: 404 without saying why: %s", path, r)
			}
			return
		}
	}
	t.Fatalf("%s still answers after the opt-out", path)
}

// TestOptOutTokenProof: from outside the range, a request waits for proof.
// A URL outside the range is refused without a fetch (an attacker cannot
// opt a victim out); a page without the token is one failed fetch; the
// token published on an address in the range approves it.
func TestOptOutTokenProof(t *testing.T) {
	o := newOptoutEnv(t)
	var mu sync.Mutex
	content := "nothing here"
	fetches := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetches++
		if r.URL.Path != "/.well-known/vantage-optout.txt" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, content)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	r, a := o.submit(t, "203.0.113.9", "127.0.0.0/24")
	if r.code != http.StatusCreated || a.State != optout.Pending || a.Method != optout.ByToken || a.Token == "" {
		t.Fatalf("from outside: %s", r)
	}
	verify := func(u string) response {
		body, _ := json.Marshal(map[string]string{"secret": a.Secret, "url": u})
		return do(o.h, req{method: "POST", path: "/api/v1/optout/" + a.ID + "/verify", body: body, remote: "203.0.113.9:1"})
	}
	// the victim's range cannot be proven from the attacker's own server
	if r := verify("http://203.0.113.9:" + port + "/.well-known/vantage-optout.txt"); r.code != 400 || !strings.Contains(string(r.body), "not inside any range") {
		t.Errorf("a URL outside the range: %s", r)
	}
	if r := verify("http://localhost:" + port + "/.well-known/vantage-optout.txt"); r.code != 400 {
		t.Errorf("a name instead of an address: %s", r)
	}
	if fetches != 0 {
		t.Errorf("%d fetches for refused URLs", fetches)
	}
	if r := verify("http://127.0.0.1:" + port + "/.well-known/vantage-optout.txt"); r.code != 400 || !strings.Contains(string(r.body), "does not hold the token") {
		t.Errorf("a page without the token: %s", r)
	}
	if l := o.list(t); l.Version != 0 {
		t.Fatalf("the list changed before the proof: version %d", l.Version)
	}
	mu.Lock()
	content = "our opt-out: " + a.Token
	mu.Unlock()
	r = verify("http://127.0.0.1:" + port + "/.well-known/vantage-optout.txt")
	var done answer
	r.json(t, &done)
	if r.code != 200 || done.State != optout.Approved || done.Method != optout.ByToken || done.Version != 1 {
		t.Fatalf("with the token: %s", r)
	}
	if fetches != 2 {
		t.Errorf("%d fetches, want one per attempt (2)", fetches)
	}
	if done.Token != "" {
		t.Error("the token is still shown after approval")
	}
}

// TestOptOutWideRangeNeedsOperator: a /15 from inside still waits for an
// operator; the operator approves, rejects and removes; every step is in
// the audit log, which cannot be edited; the long poll wakes at once.
func TestOptOutWideRangeNeedsOperator(t *testing.T) {
	o := newOptoutEnv(t)
	r, a := o.submit(t, "198.18.5.5", "198.18.0.0/15")
	if r.code != http.StatusCreated || a.State != optout.Pending || a.Method != optout.ByOperator || !strings.Contains(a.Needs, "operator") {
		t.Fatalf("a /15: %s", r)
	}
	// a scanner's long poll from version 0, answered by the approval
	polled := make(chan exclusion.List, 1)
	go func() {
		var l exclusion.List
		rr := do(o.h, req{path: "/api/v1/exclusions?after=0&wait=20s", header: bearer(o.admin)})
		json.Unmarshal(rr.body, &l)
		polled <- l
	}()
	time.Sleep(200 * time.Millisecond)
	if r := do(o.h, req{method: "POST", path: "/api/v1/optouts/" + a.ID + "/approve"}); r.code != 401 {
		t.Errorf("approval without a key: %d", r.code)
	}
	t0 := time.Now()
	r = do(o.h, req{method: "POST", path: "/api/v1/optouts/" + a.ID + "/approve", header: bearer(o.admin), body: []byte(`{"note":"checked by phone"}`)})
	if r.code != 200 || !strings.Contains(string(r.body), `"approved"`) {
		t.Fatalf("approve: %s", r)
	}
	select {
	case l := <-polled:
		t.Logf("long poll answered %v after the approval", time.Since(t0).Round(time.Millisecond))
		if l.Version != 1 || !l.Contains(netip.MustParseAddr("198.19.255.1")) {
			t.Errorf("long poll gave %+v", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not wake at the approval")
	}
	// an operator's own add, pending, then rejected
	r = do(o.h, req{method: "POST", path: "/api/v1/optouts", header: bearer(o.admin), body: []byte(`{"cidrs":["2001:db8:77::/48"],"contact":"a@b.c"}`)})
	var added answer
	r.json(t, &added)
	if r.code != 201 || added.State != optout.Pending {
		t.Fatalf("add: %s", r)
	}
	if r := do(o.h, req{method: "POST", path: "/api/v1/optouts/" + added.ID + "/reject", header: bearer(o.admin)}); r.code != 200 {
		t.Errorf("reject: %s", r)
	}
	if r := do(o.h, req{method: "DELETE", path: "/api/v1/optouts/" + a.ID, header: bearer(o.admin)}); r.code != 200 {
		t.Errorf("remove: %s", r)
	}
	if l := o.list(t); l.Version != 2 || len(l.Entries) != 0 {
		t.Errorf("after remove: %+v", l)
	}
	var audit struct {
		Events []optout.AuditEvent `json:"events"`
	}
	ar := do(o.h, req{path: "/api/v1/audit", header: bearer(o.admin)})
	ar.json(t, &audit)
	var actions []string
	for _, e := range audit.Events {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, ","); got != "request,approve,request,reject,remove" {
		t.Errorf("audit log: %s", got)
	}
	if get(o.h, "/api/v1/audit").code != 401 {
		t.Error("the audit log is open to anyone")
	}
	st, err := o.bus.JS.Stream(context.Background(), bus.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(context.Background(), 1); err == nil {
		t.Error("a message of the audit log could be deleted")
	}
	if err := st.Purge(context.Background()); err == nil {
		t.Error("the audit log could be purged")
	}
}

// TestOptOutAbuse: bad requests get clear 400s; a flood from one address
// is cut off.
func TestOptOutAbuse(t *testing.T) {
	o := newOptoutEnv(t)
	for _, c := range []struct{ body, want string }{
		{`{"cidrs":[],"contact":"x"}`, "at least one range"},
		{`{"cidrs":["0.0.0.0/0"],"contact":"x"}`, "wider than any one holder"},
		{`{"cidrs":["nonsense"],"contact":"x"}`, "not a CIDR"},
		{`{"cidrs":["192.0.2.0/24"]}`, "give a contact"},
		{`{"cidrs":["192.0.2.0/24"],"contact":"x","extra":1}`, "unknown field"},
	} {
		r := do(o.h, req{method: "POST", path: "/api/v1/optout", body: []byte(c.body), remote: "100.64.0.1:1"})
		if r.code != 400 || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s: %s, want 400 saying %q", c.body, r, c.want)
		}
	}
	limited := 0
	for i := 0; i < 20; i++ {
		if r, _ := o.submit(t, "100.64.0.2", "192.0.2.0/24"); r.code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 10 {
		t.Errorf("20 requests from one address: only %d refused", limited)
	}
	// the same contact asking again for the same range: one record
	if l, err := o.svc.List(context.Background()); err != nil || len(l) != 1 {
		t.Errorf("repeated requests made %d records (%v)", len(l), err)
	}
}

// TestOptOutPurgePolicy: under the purge policy an approval deletes what
// the scans stored about the range (even an admin finds nothing after),
// and the audit log says how much went.
func TestOptOutPurgePolicy(t *testing.T) {
	o := newOptoutEnv(t)
	ctx := context.Background()
	st, err := duckdb.Open(ctx, t.TempDir()+"/store", duckdb.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := netip.MustParseAddr("203.0.113.44")
	sv := record.Service{ID: record.ServiceID("p", a, 443, "tcp"), Time: time.Now().UTC(), ScanID: "p", IP: a, Port: 443, Transport: "tcp", State: "open"}
	if _, err := st.Ingest(ctx, []*record.Batch{{ID: record.NewID(), Services: []record.Service{sv}}}); err != nil {
		t.Fatal(err)
	}
	svc, err := optout.Open(ctx, o.bus, optout.Config{Purge: st.Purge})
	if err != nil {
		t.Fatal(err)
	}
	h := getEnv(t).server(func(c *api.Config) { c.Store, c.OptOut, c.Exclusions = st, svc, o.track })
	if r := do(h, req{path: "/api/v1/host/203.0.113.44", header: bearer(o.admin)}); r.code != 200 {
		t.Fatalf("before: %s", r)
	}
	body, _ := json.Marshal(map[string]any{"cidrs": []string{"203.0.113.0/24"}, "contact": "noc@example.net"})
	if r := do(h, req{method: "POST", path: "/api/v1/optout", body: body, remote: "203.0.113.9:1"}); r.code != 201 || !strings.Contains(string(r.body), `"approved"`) {
		t.Fatalf("submit: %s", r)
	}
	if r := do(h, req{path: "/api/v1/host/203.0.113.44", header: bearer(o.admin)}); r.code != 404 {
		t.Errorf("after the purge an admin still finds the host: %s", r)
	}
	var audit struct {
		Events []optout.AuditEvent `json:"events"`
	}
	do(h, req{path: "/api/v1/audit", header: bearer(o.admin)}).json(t, &audit)
	if n := len(audit.Events); n == 0 || audit.Events[n-1].Action != "purge" || !strings.Contains(audit.Events[n-1].Detail, "deleted 2 ") {
		t.Errorf("audit log: %+v", audit.Events)
	}
}
