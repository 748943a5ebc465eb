package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/api"
	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/exclusion"
	"github.com/vantagehq/vantage/optout"
)

func optoutSite(t *testing.T) string {
	t.Helper()
	base, _ := optoutSiteKey(t)
	return base
}

// optoutSiteKey also makes API keys and returns an admin key's secret.
func optoutSiteKey(t *testing.T) (string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := bus.Open(ctx, bus.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := optout.Open(ctx, b, optout.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr := exclusion.NewTracker()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); svc.FollowList(ctx, tr, nil) }()
	t.Cleanup(func() { cancel(); wg.Wait(); b.Close() })
	keyKV, _ := b.KV(ctx, "apikeys")
	keys := api.NewKeys(keyKV)
	admin, _, err := keys.Create(ctx, "admin", []string{api.ScopeAdmin}, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := siteConfig(t, 0, func(c *api.Config) { c.OptOut, c.Exclusions, c.Keys = svc, tr, keys })
	return srv.URL, admin
}

func post(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOptOutPages: the public form approves a request sent from inside
// its range at once, hides the range from the IP pages, gives a request
// from outside a token and a link to its state, and shows errors plainly.
func TestOptOutPages(t *testing.T) {
	base := optoutSite(t)
	// the test's client is 127.0.0.1: inside 127.0.0.0/24
	code, page := post(t, base+"/optout", url.Values{"cidrs": {"127.0.0.0/24"}, "contact": {"noc@example.net"}})
	if code != 201 || !strings.Contains(page, `data-state="approved"`) {
		t.Fatalf("from inside: %d\n%s", code, page)
	}
	// from outside: a token, a verify form, a status link that works
	code, page = post(t, base+"/optout", url.Values{"cidrs": {"198.51.100.0/24\n2001:db8:1::/48"}, "contact": {"noc@example.net"}})
	if code != 201 || !strings.Contains(page, `data-state="pending"`) || !strings.Contains(page, `id="optout-token">vantage-optout-`) {
		t.Fatalf("from outside: %d\n%s", code, page)
	}
	link := regexp.MustCompile(`id="optout-link" href="([^"]+)"`).FindStringSubmatch(page)
	if link == nil {
		t.Fatal("no status link")
	}
	u := strings.ReplaceAll(link[1], "&amp;", "&")
	if code, page := get(t, base+u); code != 200 || !strings.Contains(page, "198.51.100.0/24, 2001:db8:1::/48") {
		t.Errorf("status page: %d", code)
	}
	if code, _ := get(t, base+regexp.MustCompile(`secret=[0-9a-f]+`).ReplaceAllString(u, "secret=00")); code != 404 {
		t.Errorf("status with a wrong secret: %d", code)
	}
	// a URL outside the range is refused, with the reason on the page
	id := regexp.MustCompile(`/optout/([0-9a-f]{32})`).FindStringSubmatch(u)[1]
	secret := regexp.MustCompile(`secret=([0-9a-f]+)`).FindStringSubmatch(u)[1]
	code, page = post(t, base+"/optout/"+id+"/verify", url.Values{"secret": {secret}, "url": {"http://203.0.113.5/.well-known/vantage-optout.txt"}})
	if code != 400 || !strings.Contains(page, "not inside any range") || !strings.Contains(page, `data-state="pending"`) {
		t.Errorf("verify outside the range: %d\n%s", code, page)
	}
	// a bad form keeps what was typed and says what is wrong
	code, page = post(t, base+"/optout", url.Values{"cidrs": {"not-a-range"}, "contact": {"x@y"}})
	if code != 400 || !strings.Contains(page, "not a CIDR") || !strings.Contains(page, ">not-a-range</textarea>") {
		t.Errorf("bad form: %d", code)
	}
	// the opted-out range is hidden from the public IP page
	time.Sleep(100 * time.Millisecond)
	if code, page := get(t, base+"/ip/127.0.0.1"); code != 404 || !strings.Contains(page, "opted out") {
		t.Errorf("IP page of an opted-out address: %d", code)
	}
}

// TestAdminPages: the admin page asks for a key, refuses a wrong one,
// keeps a right one in a strict HttpOnly cookie, lists requests and the
// audit log, approves a pending request, and refuses a cross-site POST.
func TestAdminPages(t *testing.T) {
	base, admin := optoutSiteKey(t)
	// a pending request from outside its range
	if code, _ := post(t, base+"/optout", url.Values{"cidrs": {"198.51.100.0/24"}, "contact": {"noc@example.net"}}); code != 201 {
		t.Fatalf("submit: %d", code)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	form := func(path string, v url.Values, origin string) (int, string) {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	page := func() (int, string) {
		resp, err := c.Get(base + "/admin")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := page(); code != 200 || !strings.Contains(body, `action="/admin/login"`) {
		t.Fatalf("admin without a key: %d", code)
	}
	if code, body := form("/admin/login", url.Values{"key": {"wrong"}}, base); code != 401 || !strings.Contains(body, "invalid API key") {
		t.Errorf("a wrong key: %d", code)
	}
	code, body := form("/admin/login", url.Values{"key": {admin}}, base)
	if code != 200 || !strings.Contains(body, `id="requests"`) {
		t.Fatalf("after login: %d\n%s", code, body)
	}
	u, _ := url.Parse(base)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "vantage_key" && ck.Value != admin {
			t.Error("the cookie does not hold the key")
		}
	}
	id := regexp.MustCompile(`data-id="([0-9a-f]{32})" data-state="pending"`).FindStringSubmatch(body)
	if id == nil {
		t.Fatalf("no pending request on the admin page:\n%s", body)
	}
	if code, _ := form("/admin/optouts/"+id[1]+"/approve", url.Values{"note": {"by phone"}}, "https://evil.example"); code != 403 {
		t.Errorf("a cross-site approval: %d", code)
	}
	code, body = form("/admin/optouts/"+id[1]+"/approve", url.Values{"note": {"by phone"}}, base)
	if code != 200 || !strings.Contains(body, `data-id="`+id[1]+`" data-state="approved"`) || !strings.Contains(body, "Exclusion list version 1") {
		t.Errorf("approve: %d\n%s", code, body)
	}
	if !strings.Contains(body, `<tr data-action="approve">`) || !strings.Contains(body, `<tr data-action="request">`) {
		t.Error("the audit log on the page lacks the request or the approval")
	}
	if code, body := form("/admin/logout", nil, base); code != 200 || !strings.Contains(body, `action="/admin/login"`) {
		t.Errorf("logout: %d", code)
	}
}
