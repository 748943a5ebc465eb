package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// sink is a local SMTP server (go-smtp) that records what it receives.
type sink struct {
	addr string

	// Behaviour, set before use.
	user, pass string  // when set: AUTH PLAIN offered and required
	rcptErr    error   // returned by every RCPT TO
	dataErrs   []error // returned by successive DATA commands; then accept

	mu        sync.Mutex
	mailCalls int // MAIL FROM commands
	mails     []received
}

type received struct {
	from string
	to   []string
	data []byte
	user string // authenticated user
	tls  bool
}

type sinkTLS int

const (
	plain    sinkTLS = iota // no TLS at all
	startTLS                // STARTTLS offered
	implicit                // TLS from the first byte
)

// newSink starts a sink on 127.0.0.1:0; it returns the pool that trusts
// its certificate when it speaks TLS.
func newSink(t *testing.T, mode sinkTLS, configure func(*sink)) (*sink, *x509.CertPool) {
	t.Helper()
	s := &sink{}
	if configure != nil {
		configure(s)
	}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &session{sink: s, conn: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.ErrorLog = log.New(io.Discard, "", 0) // a refused certificate is logged
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var pool *x509.CertPool
	if mode != plain {
		var cert tls.Certificate
		cert, pool = testCert(t)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		if mode == implicit {
			l = tls.NewListener(l, srv.TLSConfig)
		}
	}
	s.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = l.Close() // in case Close ran before Serve registered l
		<-done
	})
	return s, pool
}

func (s *sink) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.mails...)
}

func (s *sink) mailCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mailCalls
}

type session struct {
	sink *sink
	conn *gosmtp.Conn
	user string
	cur  received
}

func (ss *session) AuthMechanisms() []string {
	if ss.sink.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != ss.sink.user || password != ss.sink.pass {
			return gosmtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *gosmtp.MailOptions) error {
	ss.sink.mu.Lock()
	ss.sink.mailCalls++
	ss.sink.mu.Unlock()
	if ss.sink.user != "" && ss.user == "" {
		return gosmtp.ErrAuthRequired
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.cur = received{from: from, user: ss.user, tls: isTLS}
	return nil
}

func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if ss.sink.rcptErr != nil {
		return ss.sink.rcptErr
	}
	ss.cur.to = append(ss.cur.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := ss.sink
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dataErrs) > 0 {
		err := s.dataErrs[0]
		s.dataErrs = s.dataErrs[1:]
		if err != nil {
			return err
		}
	}
	ss.cur.data = data
	s.mails = append(s.mails, ss.cur)
	return nil
}

func (ss *session) Reset()        { ss.cur = received{} }
func (ss *session) Logout() error { return nil }

// testCert makes a self-signed certificate for 127.0.0.1.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sink.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestSMTPDelivers(t *testing.T) {
	text := "192.0.2.7 scanned 1000 ports.\nFirst seen: 12:00 UTC\n.\n.leading dot\nünïcödé and a long line: " +
		strings.Repeat("0123456789", 12) + "\nlast line without newline"
	for _, tc := range []struct{ name, subject string }{
		{"ascii subject", "Alert: scan from 192.0.2.7"},
		{"non-ascii subject", "Alerte : balayage détecté – 東京 ✓"},
		{"empty subject", ""},
		{"long ascii subject", strings.Repeat("portscan from 192.0.2.7 ", 8) + "end"},
		{"long non-ascii subject", strings.Repeat("Überwachung ", 12) + "Ende"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSink(t, plain, nil)
			n := SMTP{
				Addr: s.addr,
				From: "Vantage Monitor <alerts@example.org>",
				To:   []string{"soc@example.com", "Ops Team <ops@example.net>"},
				TLS:  TLSNone,
			}
			if got, want := n.Name(), "smtp soc@example.com,ops@example.net"; got != want {
				t.Errorf("Name() = %q, want %q", got, want)
			}
			m := Message{ID: "alert-42.7", Event: "alert", Subject: tc.subject, Text: text,
				Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("", 3600))}
			attempts, err := n.Deliver(context.Background(), m)
			if err != nil || attempts != 1 {
				t.Fatalf("Deliver = %d, %v; want 1, nil", attempts, err)
			}
			got := s.received()
			if len(got) != 1 {
				t.Fatalf("sink received %d mails, want 1", len(got))
			}
			r := got[0]
			if r.from != "alerts@example.org" {
				t.Errorf("MAIL FROM = %q", r.from)
			}
			if strings.Join(r.to, " ") != "soc@example.com ops@example.net" {
				t.Errorf("RCPT TO = %q", r.to)
			}
			if bytes.Contains(bytes.ReplaceAll(r.data, []byte("\r\n"), nil), []byte("\n")) ||
				bytes.Contains(bytes.ReplaceAll(r.data, []byte("\r\n"), nil), []byte("\r")) {
				t.Errorf("message has a line end other than CRLF:\n%q", r.data)
			}
			for i, line := range bytes.Split(r.data, []byte("\r\n")) {
				if len(line) > 78 {
					t.Errorf("line %d is %d bytes long: %q", i+1, len(line), line)
				}
			}
			msg, err := mail.ReadMessage(bytes.NewReader(r.data))
			if err != nil {
				t.Fatalf("net/mail cannot parse the message: %v\n%s", err, r.data)
			}
			h := msg.Header
			subj, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
			if err != nil || subj != tc.subject {
				t.Errorf("Subject %q decodes to %q, %v; want %q", h.Get("Subject"), subj, err, tc.subject)
			}
			if id := h.Get("Message-ID"); id != "<alert-42.7@example.org>" {
				t.Errorf("Message-ID = %q", id)
			}
			if d, err := h.Date(); err != nil || !d.Equal(m.Time) {
				t.Errorf("Date = %v, %v; want %v", d, err, m.Time)
			}
			if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Address != "alerts@example.org" || from.Name != "Vantage Monitor" {
				t.Errorf("From = %q (%v, %v)", h.Get("From"), from, err)
			}
			if to, err := h.AddressList("To"); err != nil || len(to) != 2 || to[1].Address != "ops@example.net" {
				t.Errorf("To = %q (%v)", h.Get("To"), err)
			}
			for k, v := range map[string]string{
				"MIME-Version":              "1.0",
				"Content-Type":              "text/plain; charset=utf-8",
				"Content-Transfer-Encoding": "quoted-printable",
			} {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
			if err != nil {
				t.Fatalf("body is not quoted-printable: %v", err)
			}
			if want := strings.ReplaceAll(text, "\n", "\r\n") + "\r\n"; string(body) != want {
				t.Errorf("body =\n%q\nwant\n%q", body, want)
			}
		})
	}
}

func TestSMTPTLSModes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    sinkTLS
		tls     string
		user    string
		wantTLS bool
		wantErr string
	}{
		{"default, server without STARTTLS: plain", plain, "", "", false, ""},
		{"default, server offers STARTTLS: used", startTLS, "", "", true, ""},
		{"explicit starttls", startTLS, TLSStartTLS, "", true, ""},
		{"none ignores STARTTLS", startTLS, TLSNone, "", false, ""},
		{"implicit TLS", implicit, TLSImplicit, "", true, ""},
		{"auth over STARTTLS", startTLS, "", "bob", true, ""},
		{"auth over implicit TLS", implicit, TLSImplicit, "bob", true, ""},
		{"auth needs STARTTLS by default", plain, "", "bob", false, "does not offer STARTTLS"},
		{"unknown mode", plain, "ssl", "", false, "unknown TLS mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pool := newSink(t, tc.mode, func(s *sink) { s.user, s.pass = tc.user, "pw" })
			n := SMTP{Addr: s.addr, From: "a@example.org", To: []string{"b@example.org"}, TLS: tc.tls,
				Username: tc.user, Password: "pw", TLSConfig: &tls.Config{RootCAs: pool}, sleep: (&recordSleep{}).sleep}
			attempts, err := n.Deliver(context.Background(), Message{ID: "x", Subject: "s", Text: "t"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Deliver error = %v, want %q", err, tc.wantErr)
				}
				if attempts > 1 {
					t.Errorf("a configuration error was retried: %d attempts", attempts)
				}
				if s.mailCount() != 0 {
					t.Errorf("the sink got MAIL FROM")
				}
				return
			}
			if err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			got := s.received()
			if len(got) != 1 {
				t.Fatalf("sink received %d mails", len(got))
			}
			if got[0].tls != tc.wantTLS || got[0].user != tc.user {
				t.Errorf("received over TLS %v as %q, want TLS %v as %q", got[0].tls, got[0].user, tc.wantTLS, tc.user)
			}
		})
	}
}

func TestSMTPUntrustedCertificateNotRetried(t *testing.T) {
	s, _ := newSink(t, implicit, nil)
	rs := &recordSleep{}
	n := SMTP{Addr: s.addr, From: "a@example.org", To: []string{"b@example.org"}, TLS: TLSImplicit, sleep: rs.sleep}
	attempts, err := n.Deliver(context.Background(), Message{ID: "x", Text: "t"})
	if err == nil || attempts != 1 {
		t.Fatalf("Deliver = %d, %v; want 1 attempt and a certificate error", attempts, err)
	}
}

func TestSMTPAuthPlain(t *testing.T) {
	for _, tc := range []struct {
		name, pass string
		wantErr    bool
	}{
		{"right password", "hunter2", false},
		{"wrong password", "nope", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSink(t, plain, func(s *sink) { s.user, s.pass = "alice", "hunter2" })
			rs := &recordSleep{}
			n := SMTP{Addr: s.addr, From: "a@example.org", To: []string{"b@example.org"}, TLS: TLSNone,
				Username: "alice", Password: tc.pass, sleep: rs.sleep}
			attempts, err := n.Deliver(context.Background(), Message{ID: "x", Subject: "s", Text: "t"})
			if tc.wantErr {
				if err == nil || attempts != 1 || !strings.Contains(err.Error(), "535") {
					t.Fatalf("Deliver = %d, %v; want 1 attempt and a 535 error", attempts, err)
				}
				if strings.Contains(err.Error(), tc.pass) {
					t.Errorf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			if got := s.received(); len(got) != 1 || got[0].user != "alice" {
				t.Fatalf("sink received %+v, want one mail from alice", got)
			}
		})
	}
}

func TestSMTPRetries(t *testing.T) {
	tempFail := &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	permFail := &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	for _, tc := range []struct {
		name      string
		configure func(*sink)
		attempts  int
		wantN     int
		wantMails int
		wantErr   string
	}{
		{"451 once then accepted", func(s *sink) { s.dataErrs = []error{tempFail} }, 0, 2, 1, ""},
		{"451 twice then accepted", func(s *sink) { s.dataErrs = []error{tempFail, tempFail} }, 0, 3, 1, ""},
		{"451 until giving up", func(s *sink) { s.dataErrs = []error{tempFail, tempFail, tempFail} }, 2, 2, 0, "giving up after 2 attempts"},
		{"550 at RCPT not retried", func(s *sink) { s.rcptErr = permFail }, 0, 1, 0, "550"},
		{"554 at DATA not retried", func(s *sink) {
			s.dataErrs = []error{&gosmtp.SMTPError{Code: 554, Message: "rejected"}}
		}, 0, 1, 0, "554"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSink(t, plain, tc.configure)
			rs := &recordSleep{}
			n := SMTP{Addr: s.addr, From: "a@example.org", To: []string{"b@example.org"}, TLS: TLSNone,
				Attempts: tc.attempts, Backoff: time.Second, sleep: rs.sleep}
			attempts, err := n.Deliver(context.Background(), Message{ID: "x", Subject: "s", Text: "t"})
			if attempts != tc.wantN || s.mailCount() != tc.wantN {
				t.Errorf("attempts = %d (sink saw %d), want %d", attempts, s.mailCount(), tc.wantN)
			}
			if len(s.received()) != tc.wantMails {
				t.Errorf("sink kept %d mails, want %d", len(s.received()), tc.wantMails)
			}
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Deliver error = %v, want %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), s.addr) {
					t.Errorf("error %q does not name the server", err)
				}
			}
			if len(rs.delays) != tc.wantN-1 {
				t.Errorf("waits = %v, want %d", rs.delays, tc.wantN-1)
			}
			for i, d := range rs.delays {
				if full := time.Second << i; d < full/2 || d > full {
					t.Errorf("wait %d = %v, want in [%v, %v]", i+1, d, full/2, full)
				}
			}
		})
	}
}

func TestSMTPRealBackoff(t *testing.T) {
	s, _ := newSink(t, plain, func(s *sink) {
		s.dataErrs = []error{&gosmtp.SMTPError{Code: 421, Message: "busy"}}
	})
	n := SMTP{Addr: s.addr, From: "a@example.org", To: []string{"b@example.org"}, TLS: TLSNone, Backoff: time.Millisecond}
	if attempts, err := n.Deliver(context.Background(), Message{ID: "x", Text: "t"}); err != nil || attempts != 2 {
		t.Fatalf("Deliver = %d, %v; want 2, nil", attempts, err)
	}
}

func TestSMTPRefusesHeaderInjection(t *testing.T) {
	s, _ := newSink(t, plain, nil)
	base := SMTP{Addr: s.addr, From: "a@example.org", To: []string{"b@example.org"}, TLS: TLSNone}
	msg := Message{ID: "x", Subject: "s", Text: "body may have\r\nline breaks"}
	for _, tc := range []struct {
		name string
		edit func(*SMTP, *Message)
	}{
		{"subject CRLF", func(_ *SMTP, m *Message) { m.Subject = "hi\r\nBcc: victim@example.com" }},
		{"subject LF", func(_ *SMTP, m *Message) { m.Subject = "hi\nBcc: victim@example.com" }},
		{"subject CR", func(_ *SMTP, m *Message) { m.Subject = "hi\rBcc: victim@example.com" }},
		{"from", func(n *SMTP, _ *Message) { n.From = "a@example.org\r\nBcc: victim@example.com" }},
		{"to", func(n *SMTP, _ *Message) { n.To = []string{"b@example.org", "c@example.org\nBcc: v@example.com"} }},
		{"id", func(_ *SMTP, m *Message) { m.ID = "x>\r\nBcc: v@example.com" }},
		{"event", func(_ *SMTP, m *Message) { m.Event = "alert\r\nBcc: v@example.com" }},
		{"bad from", func(n *SMTP, _ *Message) { n.From = "not an address" }},
		{"no recipients", func(n *SMTP, _ *Message) { n.To = nil }},
		{"bad addr", func(n *SMTP, _ *Message) { n.Addr = "no-port" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, m := base, msg
			n.To = append([]string(nil), base.To...)
			tc.edit(&n, &m)
			attempts, err := n.Deliver(context.Background(), m)
			if err == nil || attempts != 0 {
				t.Fatalf("Deliver = %d, %v; want 0 attempts and an error", attempts, err)
			}
		})
	}
	if s.mailCount() != 0 {
		t.Errorf("the sink got %d MAIL FROM; nothing should have been sent", s.mailCount())
	}
	// The body may hold line breaks: it is the body.
	if err := base.Send(context.Background(), msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

// silentServer accepts connections and never says anything; accepted is
// called with each connection.
func silentServer(t *testing.T, accepted func()) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if accepted != nil {
				accepted()
			}
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

func TestSMTPContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := silentServer(t, cancel) // cancel once we are connected and waiting for the greeting
	n := SMTP{Addr: addr, From: "a@example.org", To: []string{"b@example.org"}, Timeout: time.Hour, Backoff: time.Hour}
	attempts, err := n.Deliver(ctx, Message{ID: "x", Text: "t"})
	if !errors.Is(err, context.Canceled) || attempts != 1 {
		t.Fatalf("Deliver = %d, %v; want 1 attempt and context.Canceled", attempts, err)
	}
}

func TestSMTPTimeoutRetried(t *testing.T) {
	addr := silentServer(t, nil)
	rs := &recordSleep{}
	n := SMTP{Addr: addr, From: "a@example.org", To: []string{"b@example.org"}, Timeout: 20 * time.Millisecond, Attempts: 2, sleep: rs.sleep}
	attempts, err := n.Deliver(context.Background(), Message{ID: "x", Text: "t"})
	if err == nil || attempts != 2 || !strings.Contains(err.Error(), "giving up after 2 attempts") {
		t.Fatalf("Deliver = %d, %v; want 2 attempts and an error", attempts, err)
	}
	var ne net.Error
	if !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not say the attempt timed out", err)
	}
}

func TestMessageID(t *testing.T) {
	for _, tc := range []struct{ id, sender, want string }{
		{"d-1", "a@example.org", "<d-1@example.org>"},
		{"a.b.c", "a@EXAMPLE.org", "<a.b.c@EXAMPLE.org>"},
		{"with space", "a@example.org", ""},
		{".lead", "a@example.org", ""},
		{"x", "a@[127.0.0.1]", "<x@vantage.invalid>"},
	} {
		got := messageID(tc.id, tc.sender)
		if tc.want != "" && got != tc.want {
			t.Errorf("messageID(%q, %q) = %q, want %q", tc.id, tc.sender, got, tc.want)
		}
		if tc.want == "" {
			if again := messageID(tc.id, tc.sender); again != got {
				t.Errorf("messageID(%q) is not stable: %q, %q", tc.id, got, again)
			}
			if _, err := mail.ParseAddress("x <" + strings.Trim(got, "<>") + ">"); err != nil {
				t.Errorf("messageID(%q) = %q is not addr-spec shaped: %v", tc.id, got, err)
			}
		}
	}
}
