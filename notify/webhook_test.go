package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// request is what the test receiver saw of one delivery.
type request struct {
	header http.Header
	body   []byte
}

// receiver is an httptest server that answers with the next of its replies
// (the last one repeated) and records the requests.
type receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	reqs    []request
	replies []reply
	onReq   func(n int) // called after recording request n (1-based)
}

type reply struct {
	code       int
	retryAfter string
	body       string
}

func newReceiver(t *testing.T, replies ...reply) *receiver {
	t.Helper()
	rc := &receiver{replies: replies}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, request{r.Header.Clone(), body})
		n := len(rc.reqs)
		rp := reply{code: 200}
		if len(rc.replies) > 0 {
			rp = rc.replies[min(n, len(rc.replies))-1]
		}
		onReq := rc.onReq
		rc.mu.Unlock()
		if onReq != nil {
			onReq(n)
		}
		if rp.retryAfter != "" {
			w.Header().Set("Retry-After", rp.retryAfter)
		}
		w.WriteHeader(rp.code)
		_, _ = io.WriteString(w, rp.body)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

// recordSleep replaces the wait between attempts: it records the delays and
// returns at once.
type recordSleep struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (rs *recordSleep) sleep(ctx context.Context, d time.Duration) error {
	rs.mu.Lock()
	rs.delays = append(rs.delays, d)
	rs.mu.Unlock()
	return ctx.Err()
}

var testMsg = Message{
	ID:      "d-1",
	Event:   "alert",
	Subject: "scan from 192.0.2.7",
	Text:    "192.0.2.7 scanned 1000 ports",
	Body:    map[string]any{"rule": "portscan", "ip": "192.0.2.7", "ports": 1000},
	Time:    time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
}

func TestWebhookDelivers(t *testing.T) {
	const secret = "s3cret"
	rc := newReceiver(t)
	w := Webhook{URL: rc.srv.URL + "/hook", Secret: secret}
	n, err := w.Deliver(context.Background(), testMsg)
	if err != nil || n != 1 {
		t.Fatalf("Deliver = %d, %v; want 1, nil", n, err)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	want, _ := json.Marshal(testMsg.Body)
	if string(r.body) != string(want) {
		t.Errorf("body = %s, want %s", r.body, want)
	}
	for k, v := range map[string]string{
		"Content-Type": "application/json",
		"User-Agent":   "vantage-notify/1",
		HeaderEvent:    "alert",
		HeaderDelivery: "d-1",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	sig := r.header.Get(HeaderSignature)
	if !strings.HasPrefix(sig, "t=") || !strings.Contains(sig, ",v1=") {
		t.Fatalf("signature header = %q", sig)
	}
	now := time.Now()
	if err := Verify(secret, sig, r.body, now, time.Minute); err != nil {
		t.Fatalf("Verify of a genuine delivery: %v", err)
	}

	tampered := []byte(strings.Replace(string(r.body), "portscan", "nothing", 1))
	for _, tc := range []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"tampered body", secret, sig, tampered, now, ErrBadSignature},
		{"wrong secret", "other", sig, r.body, now, ErrBadSignature},
		{"stale", secret, sig, r.body, now.Add(10 * time.Minute), ErrStale},
		{"from the future", secret, sig, r.body, now.Add(-10 * time.Minute), ErrStale},
		{"no header", secret, "", r.body, now, ErrNoSignature},
		{"replayed old signature", secret, Sign(secret, now.Add(-time.Hour), r.body), r.body, now, ErrStale},
		{"timestamp changed", secret, "t=" + itoa(now.Unix()+1) + sig[strings.Index(sig, ","):], r.body, now, ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.header, tc.body, tc.now, time.Minute)
			if !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestWebhookUnsignedAndDefaultBody(t *testing.T) {
	rc := newReceiver(t)
	m := testMsg
	m.Body = nil
	if err := (Webhook{URL: rc.srv.URL}).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	r := rc.requests()[0]
	if s := r.header.Get(HeaderSignature); s != "" {
		t.Errorf("unsigned webhook sent signature %q", s)
	}
	var got struct {
		ID, Event, Subject, Text string
		Time                     time.Time
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if got.ID != m.ID || got.Event != m.Event || got.Subject != m.Subject || got.Text != m.Text || !got.Time.Equal(m.Time) {
		t.Errorf("default body = %+v, want the message's fields", got)
	}
}

func TestWebhookRetriesIdentically(t *testing.T) {
	const secret = "k"
	rc := newReceiver(t, reply{code: 503, body: "busy"}, reply{code: 503}, reply{code: 200})
	w := Webhook{URL: rc.srv.URL, Secret: secret, Backoff: time.Millisecond} // real (tiny) waits
	n, err := w.Deliver(context.Background(), testMsg)
	if err != nil || n != 3 {
		t.Fatalf("Deliver = %d, %v; want 3, nil", n, err)
	}
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if string(r.body) != string(reqs[0].body) {
			t.Errorf("attempt %d body %s differs from the first %s", i+1, r.body, reqs[0].body)
		}
		if d := r.header.Get(HeaderDelivery); d != testMsg.ID {
			t.Errorf("attempt %d %s = %q, want %q", i+1, HeaderDelivery, d, testMsg.ID)
		}
		if err := Verify(secret, r.header.Get(HeaderSignature), r.body, time.Now(), time.Minute); err != nil {
			t.Errorf("attempt %d: Verify: %v", i+1, err)
		}
	}
}

func TestWebhookRetryPolicy(t *testing.T) {
	long := strings.Repeat("x", 500)
	for _, tc := range []struct {
		name     string
		replies  []reply
		attempts int
		wantN    int
		wantErr  []string // substrings; nil: success
		delays   []time.Duration
	}{
		{
			name:    "429 Retry-After seconds",
			replies: []reply{{code: 429, retryAfter: "1"}, {code: 200}},
			wantN:   2, delays: []time.Duration{time.Second},
		},
		{
			name:    "Retry-After 0",
			replies: []reply{{code: 429, retryAfter: "0"}, {code: 200}},
			wantN:   2, delays: []time.Duration{0},
		},
		{
			name:    "Retry-After capped",
			replies: []reply{{code: 503, retryAfter: "86400"}, {code: 200}},
			wantN:   2, delays: []time.Duration{time.Minute},
		},
		{
			name:    "408 retried",
			replies: []reply{{code: 408}, {code: 204}},
			wantN:   2,
		},
		{
			name:    "400 not retried",
			replies: []reply{{code: 400, body: long}, {code: 200}},
			wantN:   1, wantErr: []string{"refused", "400 Bad Request", strings.Repeat("x", 200)},
		},
		{
			name:    "404 not retried",
			replies: []reply{{code: 404, body: "no such hook"}, {code: 200}},
			wantN:   1, wantErr: []string{"refused", "404", "no such hook"},
		},
		{
			name:    "redirect is a refusal",
			replies: []reply{{code: 302}, {code: 200}},
			wantN:   1, wantErr: []string{"refused", "302"},
		},
		{
			name:     "gives up",
			replies:  []reply{{code: 500, body: "boom"}},
			attempts: 3,
			wantN:    3, wantErr: []string{"giving up after 3 attempts", "500", "boom"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.replies...)
			rs := &recordSleep{}
			w := Webhook{URL: rc.srv.URL + "/p", Attempts: tc.attempts, sleep: rs.sleep}
			n, err := w.Deliver(context.Background(), testMsg)
			if n != tc.wantN || len(rc.requests()) != tc.wantN {
				t.Errorf("attempts = %d (receiver saw %d), want %d", n, len(rc.requests()), tc.wantN)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Deliver: %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("Deliver succeeded, want an error")
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "webhook "+rc.srv.URL+"/p: ") {
					t.Errorf("error %q does not name the URL", msg)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(msg, s) {
						t.Errorf("error %q lacks %q", msg, s)
					}
				}
				if strings.Contains(msg, strings.Repeat("x", 201)) {
					t.Errorf("error holds more than 200 bytes of the answer")
				}
			}
			if tc.delays != nil && !equalDurations(rs.delays, tc.delays) {
				t.Errorf("waits = %v, want %v", rs.delays, tc.delays)
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWebhookBackoffGrows(t *testing.T) {
	rc := newReceiver(t, reply{code: 502})
	rs := &recordSleep{}
	w := Webhook{URL: rc.srv.URL, Backoff: 10 * time.Second, sleep: rs.sleep}
	n, err := w.Deliver(context.Background(), testMsg)
	if err == nil || n != 6 {
		t.Fatalf("Deliver = %d, %v; want 6 attempts (the default) and an error", n, err)
	}
	if len(rs.delays) != 5 {
		t.Fatalf("waits = %v, want 5", rs.delays)
	}
	for i, d := range rs.delays {
		full := min(10*time.Second<<i, time.Minute)
		if d < full/2 || d > full {
			t.Errorf("wait %d = %v, want in [%v, %v]", i+1, d, full/2, full)
		}
	}
}

func TestWebhookContextCancelStopsRetries(t *testing.T) {
	t.Run("during backoff", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rc := newReceiver(t, reply{code: 503, body: "down"})
		w := Webhook{URL: rc.srv.URL, Backoff: time.Hour, sleep: func(ctx context.Context, d time.Duration) error {
			cancel()
			return sleep(ctx, d) // the real wait: only the cancel ends it
		}}
		n, err := w.Deliver(ctx, testMsg)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Deliver error = %v, want context.Canceled", err)
		}
		if n != 1 || len(rc.requests()) != 1 {
			t.Errorf("attempts = %d, receiver saw %d; want 1", n, len(rc.requests()))
		}
		if !strings.Contains(err.Error(), "503") {
			t.Errorf("error %q lacks the last cause", err)
		}

		// Already cancelled: nothing is sent.
		n, err = w.Deliver(ctx, testMsg)
		if !errors.Is(err, context.Canceled) || n != 0 || len(rc.requests()) != 1 {
			t.Errorf("Deliver on a done ctx = %d, %v (receiver saw %d)", n, err, len(rc.requests()))
		}
	})
	t.Run("during a request", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rc := newReceiver(t, reply{code: 503})
		rc.onReq = func(int) { cancel() }
		w := Webhook{URL: rc.srv.URL, Backoff: time.Hour}
		n, err := w.Deliver(ctx, testMsg)
		if !errors.Is(err, context.Canceled) || n != 1 || len(rc.requests()) != 1 {
			t.Fatalf("Deliver = %d, %v (receiver saw %d); want 1 attempt and context.Canceled", n, err, len(rc.requests()))
		}
	})
}

func TestWebhookNetworkErrorsAndSecrets(t *testing.T) {
	rc := newReceiver(t)
	url := strings.Replace(rc.srv.URL, "http://", "http://user:pw-secret@", 1) + "/hook?token=q-secret#f-secret"
	rc.srv.Close() // connection refused from now on
	rs := &recordSleep{}
	w := Webhook{URL: url, Secret: "hmac-secret", Attempts: 3, sleep: rs.sleep}
	if name := w.Name(); strings.Contains(name, "secret") || !strings.HasSuffix(name, "/hook") {
		t.Errorf("Name() = %q", name)
	}
	n, err := w.Deliver(context.Background(), testMsg)
	if err == nil || n != 3 || len(rs.delays) != 2 {
		t.Fatalf("Deliver = %d, %v (waits %v); want 3 attempts and an error", n, err, rs.delays)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks a secret: %v", err)
	}
	if !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Errorf("error = %v", err)
	}
}

func TestWebhookBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    Webhook
		m    Message
	}{
		{"relative URL", Webhook{URL: "/hook"}, testMsg},
		{"ftp URL", Webhook{URL: "ftp://example.org/"}, testMsg},
		{"unmarshallable body", Webhook{URL: "http://127.0.0.1:1/"}, Message{Body: func() {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.w.Deliver(context.Background(), tc.m)
			if err == nil || n != 0 {
				t.Errorf("Deliver = %d, %v; want 0 attempts and an error", n, err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", -1},
		{"5", 5 * time.Second},
		{" 2 ", 2 * time.Second},
		{"-3", -1},
		{"soon", -1},
		{"99999999999999999999", -1},
		{"3600", time.Minute},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(time.Hour).Format(http.TimeFormat), time.Minute},
	} {
		if got := parseRetryAfter(tc.v, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestVerifyMalformed(t *testing.T) {
	body := []byte(`{"a":1}`)
	now := time.Unix(1_700_000_000, 0)
	good := Sign("k", now, body)
	sig := good[strings.Index(good, "v1="):]
	for _, tc := range []struct {
		header string
		want   error
	}{
		{good, nil},
		{" " + good + " ", nil},
		{"t=1700000000, " + sig, nil},
		{"t=1700000000,v0=abc," + sig, nil}, // unknown key ignored
		{"t=1700000000,v1=" + strings.Repeat("0", 64) + "," + sig, nil}, // rotation: any v1 may match
		{"t=1700000000,v1=" + strings.Repeat("0", 64), ErrBadSignature},
		{"  ", ErrNoSignature},
		{sig, ErrMalformed},
		{"t=1700000000", ErrMalformed},
		{"t=1700000000,t=1700000000," + sig, ErrMalformed},
		{"t=-1700000000," + sig, ErrMalformed},
		{"t=17e8," + sig, ErrMalformed},
		{"t=," + sig, ErrMalformed},
		{"t=9999999999999999999999," + sig, ErrMalformed},
		{"t=1700000000,v1=zz", ErrMalformed},
		{"t=1700000000,v1=abcd", ErrMalformed},
		{"t=1700000000;" + sig, ErrMalformed},
		{"garbage", ErrMalformed},
		{"t=1700000000,," + sig, ErrMalformed},
		{"t=1," + sig, ErrStale},
		{strings.Repeat("t=1,", 2000), ErrMalformed},
	} {
		err := Verify("k", tc.header, body, now, time.Minute)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("Verify(%q) = %v, want %v", tc.header, err, tc.want)
		}
	}
	if err := Verify("", good, body, now, 0); err == nil {
		t.Error("Verify with an empty secret succeeded")
	}
	// tolerance <= 0 means DefaultTolerance.
	if err := Verify("k", good, body, now.Add(DefaultTolerance-time.Second), 0); err != nil {
		t.Errorf("Verify within the default tolerance: %v", err)
	}
	if err := Verify("k", good, body, now.Add(DefaultTolerance+time.Second), 0); !errors.Is(err, ErrStale) {
		t.Errorf("Verify past the default tolerance = %v, want ErrStale", err)
	}
}
