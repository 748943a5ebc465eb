package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeNotifier records what it was sent.
type fakeNotifier struct {
	name string
	err  error
	mu   sync.Mutex
	got  []Message
}

func (f *fakeNotifier) Name() string { return f.name }
func (f *fakeNotifier) Send(_ context.Context, m Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, m)
	return f.err
}

type panicky struct{}

func (panicky) Name() string                        { return "panicky" }
func (panicky) Send(context.Context, Message) error { panic("boom") }

func TestSendAll(t *testing.T) {
	ok := newReceiver(t)
	flaky := newReceiver(t, reply{code: 500}, reply{code: 200})
	refusing := newReceiver(t, reply{code: 403, body: "forbidden"})
	var logBuf bytes.Buffer
	fake := &fakeNotifier{name: "fake", err: errors.New("disk full")}
	ns := []Notifier{
		Webhook{URL: ok.srv.URL + "/ok"},
		Webhook{URL: flaky.srv.URL + "/flaky", Backoff: time.Millisecond},
		Webhook{URL: refusing.srv.URL + "/no"},
		Log{Log: slog.New(slog.NewJSONHandler(&logBuf, nil))},
		fake,
		nil,
		panicky{},
	}
	m := testMsg
	m.ID, m.Time = "", time.Time{}
	res := SendAll(context.Background(), ns, m)
	want := []struct {
		name     string
		ok       bool
		attempts int
		err      string
	}{
		{"webhook " + ok.srv.URL + "/ok", true, 1, ""},
		{"webhook " + flaky.srv.URL + "/flaky", true, 2, ""},
		{"webhook " + refusing.srv.URL + "/no", false, 1, "refused it: 403 Forbidden"},
		{"log", true, 0, ""},
		{"fake", false, 0, "disk full"},
		{"<nil>", false, 0, "nil notifier"},
		{"panicky", false, 0, "panic: boom"},
	}
	if len(res) != len(want) {
		t.Fatalf("got %d results, want %d", len(res), len(want))
	}
	for i, w := range want {
		r := res[i]
		if r.Name != w.name || r.OK != w.ok || r.Attempts != w.attempts || !strings.Contains(r.Error, w.err) || (w.err == "") != (r.Error == "") {
			t.Errorf("result %d = %+v, want %+v", i, r, w)
		}
	}

	// Every notifier got the same, filled-in ID.
	id := ok.requests()[0].header.Get(HeaderDelivery)
	if id == "" || len(fake.got) != 1 || fake.got[0].ID != id || fake.got[0].Time.IsZero() {
		t.Errorf("IDs: webhook %q, fake %+v", id, fake.got)
	}
	var rec map[string]any
	if err := json.Unmarshal(logBuf.Bytes(), &rec); err != nil || rec["id"] != id {
		t.Errorf("log record %s (%v) lacks id %q", logBuf.Bytes(), err, id)
	}
	if b, err := json.Marshal(res); err != nil || !bytes.Contains(b, []byte(`"attempts":2`)) {
		t.Errorf("results as JSON: %s, %v", b, err)
	}
}

func TestSendAllContextBoundsEveryNotifier(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a, b := newReceiver(t), newReceiver(t)
	res := SendAll(ctx, []Notifier{Webhook{URL: a.srv.URL}, Webhook{URL: b.srv.URL}}, testMsg)
	for _, r := range res {
		if r.OK || !strings.Contains(r.Error, "context canceled") {
			t.Errorf("result %+v, want a cancelled failure", r)
		}
	}
	if len(a.requests())+len(b.requests()) != 0 {
		t.Error("a request was sent on a done context")
	}
}

func TestMulti(t *testing.T) {
	good := &fakeNotifier{name: "good"}
	bad := &fakeNotifier{name: "bad", err: errors.New("nope")}
	ms := Multi{good, bad}
	if got := ms.Name(); got != "multi(good; bad)" {
		t.Errorf("Name() = %q", got)
	}
	err := ms.Send(context.Background(), testMsg)
	if err == nil || !strings.Contains(err.Error(), "nope") || strings.Contains(err.Error(), "good") {
		t.Errorf("Send error = %v, want only bad's", err)
	}
	if len(good.got) != 1 || len(bad.got) != 1 {
		t.Errorf("sent %d and %d messages, want 1 each", len(good.got), len(bad.got))
	}
	if err := (Multi{good}).Send(context.Background(), testMsg); err != nil {
		t.Errorf("Send to good only: %v", err)
	}
}

func TestLog(t *testing.T) {
	for _, tc := range []struct {
		name, text, subject, wantMsg string
		wantText                     any // the "text" attribute, nil when absent
	}{
		{"subject is the line, text goes along", "192.0.2.7 scanned 1000 ports", "scan", "scan", "192.0.2.7 scanned 1000 ports"},
		{"subject alone", "", "scan", "scan", nil},
		{"text when no subject", "192.0.2.7 scanned 1000 ports", "", "192.0.2.7 scanned 1000 ports", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := Log{Log: slog.New(slog.NewJSONHandler(&buf, nil))}
			m := testMsg
			m.Text, m.Subject = tc.text, tc.subject
			if l.Name() != "log" {
				t.Errorf("Name() = %q", l.Name())
			}
			if err := l.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("%s: %v", buf.Bytes(), err)
			}
			for k, v := range map[string]any{"level": "WARN", "msg": tc.wantMsg, "event": "alert", "id": "d-1", "text": tc.wantText} {
				if rec[k] != v {
					t.Errorf("%s = %v, want %v (record %s)", k, rec[k], v, buf.Bytes())
				}
			}
		})
	}
	// A nil logger means slog.Default().
	var buf bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	if err := (Log{}).Send(context.Background(), testMsg); err != nil {
		t.Error(err)
	}
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "id=d-1") {
		t.Errorf("default logger got %q", buf.String())
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n <= 40; n++ {
		full := min(time.Second<<min(n-1, 30), time.Minute)
		if d := backoff(time.Second, n); d < full/2 || d > full {
			t.Errorf("backoff(1s, %d) = %v, want in [%v, %v]", n, d, full/2, full)
		}
	}
	if d := backoff(0, 3); d != 0 {
		t.Errorf("backoff(0, 3) = %v", d)
	}
}

func TestNewID(t *testing.T) {
	a, b := NewID(), NewID()
	if len(a) != 32 || a == b {
		t.Errorf("NewID() = %q, %q", a, b)
	}
}
