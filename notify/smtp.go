package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"
)

// TLS modes of SMTP.
const (
	TLSStartTLS = "starttls" // STARTTLS when offered; required when Username is set (the default)
	TLSImplicit = "tls"      // TLS from the first byte (submissions port 465)
	TLSNone     = "none"     // never TLS
)

// SMTP sends messages by e-mail through an SMTP server.
type SMTP struct {
	Addr     string   // host:port of the server
	From     string   // "alerts@example.org" or "Vantage <alerts@example.org>"
	To       []string // recipients, each like From
	Username string   // AUTH PLAIN when set
	Password string
	// TLS is "starttls" (the default: STARTTLS when the server offers it,
	// required when Username is set), "tls" (implicit TLS, port 465) or
	// "none".
	TLS       string
	Timeout   time.Duration // per attempt, for the whole conversation; default 30s
	TLSConfig *tls.Config   // nil: the default, with ServerName the host of Addr

	Attempts int           // default 3
	Backoff  time.Duration // first retry delay, doubled each time (default 2s), with jitter, capped at 1 minute

	// sleep replaces the wait between attempts in tests.
	sleep func(context.Context, time.Duration) error
}

// Name returns "smtp " and the recipients' addresses, comma-separated.
func (s SMTP) Name() string {
	addrs := make([]string, 0, len(s.To))
	for _, to := range s.To {
		if a, err := mail.ParseAddress(to); err == nil {
			addrs = append(addrs, a.Address)
		} else {
			addrs = append(addrs, strings.TrimSpace(to))
		}
	}
	return "smtp " + strings.Join(addrs, ",")
}

// Send delivers m; see Deliver.
func (s SMTP) Send(ctx context.Context, m Message) error {
	_, err := s.Deliver(ctx, m)
	return err
}

// permanent marks an error that a retry cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Deliver sends m as an e-mail to all recipients, retrying on temporary
// failures (4xx replies, network errors), and returns the number of attempts
// made.
func (s SMTP) Deliver(ctx context.Context, m Message) (int, error) {
	name := s.Name()
	from, to, msg, err := s.compose(m)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil || host == "" {
		return 0, fmt.Errorf("%s: server address %q is not host:port", name, s.Addr)
	}
	switch s.TLS {
	case "", TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return 0, fmt.Errorf("%s: unknown TLS mode %q (want starttls, tls or none)", name, s.TLS)
	}
	attempts := s.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	base := s.Backoff
	if base <= 0 {
		base = 2 * time.Second
	}
	wait := s.sleep
	if wait == nil {
		wait = sleep
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("%s: not sent: %w", name, err)
	}

	var last error
	for n := 1; ; n++ {
		err := s.attempt(ctx, host, from, to, msg)
		if err == nil {
			return n, nil
		}
		var p permanent
		if errors.As(err, &p) || !temporary(err) {
			return n, fmt.Errorf("%s via %s: %w", name, s.Addr, err)
		}
		last = err
		if ctx.Err() != nil {
			return n, fmt.Errorf("%s via %s: stopped after %d attempts: %w; last error: %w", name, s.Addr, n, ctx.Err(), last)
		}
		if n >= attempts {
			return n, fmt.Errorf("%s via %s: giving up after %d attempts: %w", name, s.Addr, n, last)
		}
		if err := wait(ctx, backoff(base, n)); err != nil {
			return n, fmt.Errorf("%s via %s: stopped after %d attempts: %w; last error: %w", name, s.Addr, n, err, last)
		}
	}
}

// temporary reports whether an attempt that failed with err may succeed
// later: 4xx replies and network errors may, 5xx replies and certificate
// errors may not.
func temporary(err error) bool {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code >= 400 && te.Code < 500
	}
	var (
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		hne x509.HostnameError
		cie x509.CertificateInvalidError
		rhe tls.RecordHeaderError
	)
	if errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) || errors.As(err, &cie) || errors.As(err, &rhe) {
		return false
	}
	return true
}

// attempt makes one SMTP conversation.
func (s SMTP) attempt(ctx context.Context, host, from string, to []string, msg []byte) (err error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Cancelling ctx interrupts any read or write in progress.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
	}()

	tlsConf := s.tlsConfig(host)
	if s.TLS == TLSImplicit {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if s.TLS == "" || s.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConf); err != nil {
				return fmt.Errorf("STARTTLS: %w", err)
			}
		} else if s.Username != "" {
			return permanent{errors.New(`server does not offer STARTTLS; not sending credentials in the clear (set TLS "none" to allow it)`)}
		}
	}
	if s.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return permanent{errors.New("server does not offer AUTH but a username is configured")}
		}
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("RCPT TO <%s>: %w", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	// The server has taken the message: a failing QUIT must not cause a
	// retry, which would deliver it twice.
	_ = c.Quit()
	return nil
}

func (s SMTP) tlsConfig(host string) *tls.Config {
	if s.TLSConfig != nil {
		c := s.TLSConfig.Clone()
		if c.ServerName == "" {
			c.ServerName = host
		}
		return c
	}
	return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
}

// compose checks the addresses and builds the message: the envelope sender,
// the envelope recipients and the RFC 5322 text with CRLF line ends.
func (s SMTP) compose(m Message) (from string, to []string, msg []byte, err error) {
	for _, f := range []struct{ what, v string }{
		{"subject", m.Subject}, {"from", s.From}, {"event", m.Event}, {"ID", m.ID},
	} {
		if hasCRLF(f.v) {
			return "", nil, nil, permanent{fmt.Errorf("line break in %s: refusing header injection", f.what)}
		}
	}
	for _, t := range s.To {
		if hasCRLF(t) {
			return "", nil, nil, permanent{errors.New("line break in recipient: refusing header injection")}
		}
	}
	if strings.TrimSpace(s.From) == "" {
		return "", nil, nil, permanent{errors.New("no From address")}
	}
	if len(s.To) == 0 {
		return "", nil, nil, permanent{errors.New("no recipients")}
	}
	fa, err := mail.ParseAddress(s.From)
	if err != nil {
		return "", nil, nil, permanent{fmt.Errorf("From %q: %w", s.From, err)}
	}
	var toHdr []string
	for _, t := range s.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return "", nil, nil, permanent{fmt.Errorf("recipient %q: %w", t, err)}
		}
		to = append(to, a.Address)
		toHdr = append(toHdr, a.String())
	}

	date := m.Time
	if date.IsZero() {
		date = time.Now()
	}
	id := m.ID
	if id == "" {
		id = NewID()
	}
	subject := m.Subject
	if !isASCII(subject) {
		subject = mime.QEncoding.Encode("utf-8", strings.ToValidUTF8(subject, string(utf8.RuneError)))
	}

	var b bytes.Buffer
	hdr := func(k, v string) { writeHeader(&b, k, v) }
	hdr("Date", date.Format(time.RFC1123Z))
	hdr("From", fa.String())
	hdr("To", strings.Join(toHdr, ", "))
	hdr("Subject", subject)
	hdr("Message-ID", messageID(id, fa.Address))
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("Auto-Submitted", "auto-generated")
	if m.Event != "" && isASCII(m.Event) {
		hdr("X-Vantage-Event", m.Event)
	}
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b) // text mode: line breaks become CRLF
	text := strings.ToValidUTF8(m.Text, string(utf8.RuneError))
	_, _ = qp.Write([]byte(text))
	_ = qp.Close()
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return fa.Address, to, b.Bytes(), nil
}

// writeHeader writes "k: v" and CRLF, folded at spaces so that lines stay
// within 78 characters where the words allow (RFC 5322 section 2.2.3).
// Q-encoded words are separated by spaces, so they fold too.
func writeHeader(b *bytes.Buffer, k, v string) {
	b.WriteString(k + ":")
	n, first := len(k)+1, true
	for _, w := range strings.Split(v, " ") {
		// Fold before a word that does not fit, even the first one
		// ("Subject:" CRLF SP word is valid folding white space).
		if w != "" && n+1+len(w) > 78 && (!first || len(w) <= 77) {
			b.WriteString("\r\n")
			n, first = 0, true
		}
		b.WriteString(" " + w)
		n += 1 + len(w)
		first = false
	}
	b.WriteString("\r\n")
}

// messageID builds "<id@domain>" with the domain of the sender. An id that
// is not a valid dot-atom is replaced by a hash of it, so that the same
// message always gets the same Message-ID.
func messageID(id, sender string) string {
	domain := "vantage.invalid"
	if i := strings.LastIndexByte(sender, '@'); i >= 0 && isDotAtom(sender[i+1:]) {
		domain = sender[i+1:]
	}
	if !isDotAtom(id) || len(id) > 200 {
		sum := sha256.Sum256([]byte(id))
		id = hex.EncodeToString(sum[:16])
	}
	return "<" + id + "@" + domain + ">"
}

// isDotAtom reports whether s is an RFC 5322 dot-atom-text.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
