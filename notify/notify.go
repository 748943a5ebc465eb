// Package notify delivers notifications: to a webhook, by e-mail through an
// SMTP server, and to the log. It knows nothing about what it delivers; a
// caller (the defenders' monitor, for alerts) builds a [Message] and hands it
// to one or more [Notifier]s, usually through [SendAll], which reports the
// outcome per notifier so that deliveries can be recorded.
//
// # Webhook
//
// [Webhook] POSTs the JSON encoding of [Message.Body] with these headers:
//
//	Content-Type:        application/json
//	User-Agent:          vantage-notify/1
//	X-Vantage-Event:     the message's Event, e.g. "alert"
//	X-Vantage-Delivery:  the message's ID, the same on every retry
//	X-Vantage-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//
// The signature is sent only when a shared secret is configured. It follows
// Stripe's scheme: the timestamp is part of the signed text, so a captured
// request cannot be replayed later. A receiver verifies a delivery like this:
//
//  1. Read the raw request body, before any JSON decoding.
//  2. Split the X-Vantage-Signature header on "," into key=value pairs; take
//     t (decimal Unix seconds) and every v1 (64 hex digits).
//  3. Compute HMAC-SHA256 with the shared secret as key over the bytes of t
//     exactly as sent, a ".", and the raw body; hex-encode it.
//  4. Accept when it equals one of the v1 values, compared in constant time,
//     and when t is within a tolerance (e.g. 5 minutes) of the receiver's
//     clock. Deduplicate retries on X-Vantage-Delivery.
//
// [Verify] does all of this for Go receivers (and for this package's tests).
//
// A delivery is retried with exponential backoff and jitter on network
// errors and on 408, 429 (honouring Retry-After) and 5xx answers; any other
// non-2xx answer means the receiver refused the message and is not retried.
// Each attempt is signed anew with the time of that attempt; the body is
// identical on every attempt.
//
// # E-mail
//
// [SMTP] sends a plain-text RFC 5322 message (quoted-printable UTF-8 body,
// Q-encoded subject when not ASCII, Message-ID derived from the message's ID)
// through a configured SMTP server, with STARTTLS, implicit TLS or no TLS,
// and optional AUTH PLAIN. Temporary failures (4xx replies, network errors)
// are retried a few times; permanent ones (5xx replies) are not.
//
// # Log
//
// [Log] writes the message to a [log/slog.Logger] at Warn level.
package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Message is one notification.
type Message struct {
	// ID is unique per message; receivers deduplicate retries on it. It is
	// sent as X-Vantage-Delivery and as (part of) the e-mail Message-ID.
	// SendAll fills in a random one when it is empty.
	ID string
	// Event says what the message is about, e.g. "alert" (the
	// X-Vantage-Event header).
	Event string
	// Subject is one line: the e-mail subject.
	Subject string
	// Text is the plain-text body for people: the e-mail body, the log line.
	Text string
	// Body is marshalled to JSON as the webhook body. When nil, the webhook
	// body is an object with the message's id, event, subject, text and time.
	Body any
	// Time is when the message was made; zero means now.
	Time time.Time
}

// Notifier sends a message somewhere.
type Notifier interface {
	// Name says where the messages go, without secrets: "webhook
	// https://host/path", "smtp a@b,c@d", "log".
	Name() string
	// Send delivers m, retrying as the notifier sees fit, and gives up when
	// ctx is done.
	Send(ctx context.Context, m Message) error
}

// Deliverer is implemented by notifiers that retry ([Webhook], [SMTP]):
// Deliver is Send that also tells how many attempts were made. SendAll uses
// it to fill in [Result.Attempts].
type Deliverer interface {
	Deliver(ctx context.Context, m Message) (attempts int, err error)
}

// Result is the outcome of sending one message to one notifier.
type Result struct {
	Name     string        `json:"name"`
	OK       bool          `json:"ok"`
	Attempts int           `json:"attempts,omitempty"` // 0: not known
	Error    string        `json:"error,omitempty"`
	Took     time.Duration `json:"took"`
}

// NewID returns a random message ID (32 hex digits).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// SendAll sends m to every notifier concurrently, each bounded by ctx, and
// returns one Result per notifier, in the order of ns. It fills in m.ID (a
// random one) and m.Time (now) when they are empty, so that every notifier
// sends the same ID. A notifier that panics is reported as failed.
func SendAll(ctx context.Context, ns []Notifier, m Message) []Result {
	if m.ID == "" {
		m.ID = NewID()
	}
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	res := make([]Result, len(ns))
	var wg sync.WaitGroup
	for i, n := range ns {
		wg.Go(func() { res[i] = sendOne(ctx, n, m) })
	}
	wg.Wait()
	return res
}

func sendOne(ctx context.Context, n Notifier, m Message) (r Result) {
	if n == nil {
		return Result{Name: "<nil>", Error: "nil notifier"}
	}
	start := time.Now()
	defer func() {
		r.Took = time.Since(start)
		if p := recover(); p != nil {
			r.OK = false
			r.Error = fmt.Sprintf("%s: panic: %v", r.Name, p)
		}
	}()
	r.Name = n.Name()
	var err error
	if d, ok := n.(Deliverer); ok {
		r.Attempts, err = d.Deliver(ctx, m)
	} else {
		err = n.Send(ctx, m)
	}
	if err != nil {
		r.Error = err.Error()
	} else {
		r.OK = true
	}
	return r
}

// Multi sends to several notifiers at once (see [SendAll]).
type Multi []Notifier

// Name lists the names of the notifiers.
func (ms Multi) Name() string {
	names := make([]string, len(ms))
	for i, n := range ms {
		if n == nil {
			names[i] = "<nil>"
		} else {
			names[i] = n.Name()
		}
	}
	return "multi(" + strings.Join(names, "; ") + ")"
}

// Send sends m to all notifiers concurrently and returns the errors of those
// that failed, joined, or nil when all succeeded.
func (ms Multi) Send(ctx context.Context, m Message) error {
	var errs []error
	for _, r := range SendAll(ctx, ms, m) {
		if !r.OK {
			errs = append(errs, errors.New(r.Error))
		}
	}
	return errors.Join(errs...)
}

// maxDelay caps every wait between attempts, Retry-After included.
const maxDelay = time.Minute

// backoff returns the wait after the n-th failed attempt (n >= 1): base
// doubled n-1 times, capped at maxDelay, with "equal jitter" (a random
// duration between half of it and all of it).
func backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + mrand.N(d-half+1)
}

// sleep waits for d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// hasCRLF reports whether s holds a line break, which would let a value
// inject a header.
func hasCRLF(s string) bool { return strings.ContainsAny(s, "\r\n") }
