package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Header names and values of a webhook delivery.
const (
	HeaderEvent     = "X-Vantage-Event"
	HeaderDelivery  = "X-Vantage-Delivery"
	HeaderSignature = "X-Vantage-Signature"
	UserAgent       = "vantage-notify/1"
)

// DefaultTolerance is the clock skew and delay that Verify allows when given
// a tolerance <= 0.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify, to be tested with errors.Is.
var (
	ErrNoSignature  = errors.New("no signature header")
	ErrMalformed    = errors.New("malformed signature header")
	ErrStale        = errors.New("signature timestamp outside tolerance")
	ErrBadSignature = errors.New("signature does not match")
)

// Webhook POSTs messages as JSON to a URL (see the package documentation for
// the headers and the signature).
type Webhook struct {
	URL      string
	Secret   string        // HMAC-SHA256 key; "" sends unsigned
	Client   *http.Client  // nil: a client with a 10 s timeout that does not follow redirects
	Attempts int           // default 6
	Backoff  time.Duration // first retry delay, doubled each time (default 1s), with jitter, capped at 1 minute

	// sleep replaces the wait between attempts in tests.
	sleep func(context.Context, time.Duration) error
}

var defaultWebhookClient = &http.Client{
	Timeout: 10 * time.Second,
	// A redirect is an answer like any other 3xx: the receiver refused.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Name returns "webhook " and the URL without user info, query or fragment.
func (w Webhook) Name() string { return "webhook " + redactURL(w.URL) }

// redactURL drops what may hold a secret from a URL: user info, query and
// fragment.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<invalid URL>"
	}
	u.User = nil
	u.RawQuery, u.ForceQuery = "", false
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// Send delivers m; see Deliver.
func (w Webhook) Send(ctx context.Context, m Message) error {
	_, err := w.Deliver(ctx, m)
	return err
}

// Deliver POSTs m, retrying on network errors, 408, 429 and 5xx, and
// returns the number of attempts made.
func (w Webhook) Deliver(ctx context.Context, m Message) (int, error) {
	name := redactURL(w.URL)
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return 0, fmt.Errorf("webhook %s: URL must be absolute http or https", name)
	}
	body, err := webhookBody(m)
	if err != nil {
		return 0, fmt.Errorf("webhook %s: encoding body: %w", name, err)
	}
	client := w.Client
	if client == nil {
		client = defaultWebhookClient
	}
	attempts := w.Attempts
	if attempts <= 0 {
		attempts = 6
	}
	base := w.Backoff
	if base <= 0 {
		base = time.Second
	}
	wait := w.sleep
	if wait == nil {
		wait = sleep
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("webhook %s: not sent: %w", name, err)
	}

	var last error
	for n := 1; ; n++ {
		retryAfter, retry, err := w.post(ctx, client, body, m)
		if err == nil {
			return n, nil
		}
		if !retry {
			return n, fmt.Errorf("webhook %s: %w", name, err)
		}
		last = err
		if ctx.Err() != nil {
			return n, fmt.Errorf("webhook %s: stopped after %d attempts: %w; last error: %w", name, n, ctx.Err(), last)
		}
		if n >= attempts {
			return n, fmt.Errorf("webhook %s: giving up after %d attempts: %w", name, n, last)
		}
		d := backoff(base, n)
		if retryAfter >= 0 {
			d = min(retryAfter, maxDelay)
		}
		if err := wait(ctx, d); err != nil {
			return n, fmt.Errorf("webhook %s: stopped after %d attempts: %w; last error: %w", name, n, err, last)
		}
	}
}

// webhookBody returns the JSON body for m.
func webhookBody(m Message) ([]byte, error) {
	if m.Body != nil {
		return json.Marshal(m.Body)
	}
	return json.Marshal(struct {
		ID      string    `json:"id"`
		Event   string    `json:"event"`
		Subject string    `json:"subject"`
		Text    string    `json:"text"`
		Time    time.Time `json:"time"`
	}{m.ID, m.Event, m.Subject, m.Text, m.Time})
}

// post makes one attempt. It returns whether a failure may be retried and,
// for a retryable answer with a usable Retry-After, how long to wait (-1
// when not given).
func (w Webhook) post(ctx context.Context, client *http.Client, body []byte, m Message) (retryAfter time.Duration, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return -1, false, fmt.Errorf("building request: %w", stripURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	if m.Event != "" {
		req.Header.Set(HeaderEvent, m.Event)
	}
	if m.ID != "" {
		req.Header.Set(HeaderDelivery, m.ID)
	}
	if w.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(w.Secret, time.Now(), body))
	}
	resp, err := client.Do(req)
	if err != nil {
		return -1, true, fmt.Errorf("POST: %w", stripURL(err))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return -1, false, nil
	}
	text := strings.TrimSpace(strings.ToValidUTF8(string(snippet), string(utf8.RuneError)))
	switch {
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), true,
			fmt.Errorf("receiver answered %s: %q", resp.Status, text)
	default:
		return -1, false, fmt.Errorf("receiver refused it: %s: %q", resp.Status, text)
	}
}

// stripURL removes the *url.Error wrapper of net/http errors, whose text
// holds the full URL and so possibly a secret in the query.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseRetryAfter returns the wait a Retry-After header asks for (delay
// seconds or an HTTP date), or -1 when absent or not understood.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return -1
		}
		if secs > int64(maxDelay/time.Second) {
			return maxDelay
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxDelay)
	}
	return -1
}

// Sign returns the X-Vantage-Signature header value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// maxHeader bounds the signature header Verify accepts (several v1 values
// while a secret is rotated fit easily).
const maxHeader = 4096

// Verify checks an X-Vantage-Signature header against the raw request body:
// the header must hold a timestamp t and at least one v1 signature equal to
// HMAC-SHA256(secret, "<t>.<body>"), and t must lie within tolerance of now
// (DefaultTolerance when tolerance <= 0). Unknown keys are ignored; several
// v1 values are allowed (any may match). Errors wrap ErrNoSignature,
// ErrMalformed, ErrStale or ErrBadSignature.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return errors.New("verify: empty secret")
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	header = strings.TrimSpace(header)
	if header == "" {
		return ErrNoSignature
	}
	if len(header) > maxHeader {
		return fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxHeader)
	}
	var (
		ts   string
		sigs [][]byte
	)
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: %q is not key=value", ErrMalformed, part)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: more than one timestamp", ErrMalformed)
			}
			if v == "" || len(v) > 18 || strings.Trim(v, "0123456789") != "" {
				return fmt.Errorf("%w: timestamp %q is not decimal Unix seconds", ErrMalformed, v)
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return fmt.Errorf("%w: v1 is not %d hex digits", ErrMalformed, 2*sha256.Size)
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" {
		return fmt.Errorf("%w: no timestamp", ErrMalformed)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no v1 signature", ErrMalformed)
	}
	secs, err := strconv.ParseInt(ts, 10, 64) // at most 18 digits: fits
	if err != nil {
		return fmt.Errorf("%w: timestamp: %v", ErrMalformed, err)
	}
	age := now.Sub(time.Unix(secs, 0))
	if age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s from now (tolerance %s)", ErrStale,
			time.Unix(secs, 0).UTC().Format(time.RFC3339), age.Round(time.Second), tolerance)
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			ok = true // no early exit: the time does not depend on which matched
		}
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}
