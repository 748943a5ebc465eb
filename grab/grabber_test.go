package grab

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is a loopback listener that runs handle for every connection
// (with a 10 s deadline) and counts connections. At the end of the test
// the listener and every open connection are closed and the handlers
// waited for. Every fake server of this package's tests runs on it.
type server struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    map[net.Conn]bool
	wg       sync.WaitGroup
}

func serve(t *testing.T, handle func(c net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// fakeServer is serve for tests that need only the address.
func fakeServer(t *testing.T, handle func(c net.Conn)) netip.AddrPort {
	t.Helper()
	return serve(t, handle).addr()
}

func (s *server) addr() netip.AddrPort { return netip.MustParseAddrPort(s.ln.Addr().String()) }

// grabber with short bounds for tests; a hang still ends the test via ctx.
func testGrabber(cfg Config) *Grabber {
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.GreetingWait == 0 {
		cfg.GreetingWait = 300 * time.Millisecond
	}
	return New(cfg)
}

func grabOne(t *testing.T, g *Grabber, tg Target) (*resultView, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := g.Grab(ctx, tg)
	if ctx.Err() != nil {
		t.Fatalf("grab of %s hung", tg.Addr)
	}
	return &resultView{svc.Protocol, svc.State, svc.Banner, svc.Product, svc.Version, svc.Data, svc.HTTP, svc.TLS}, err
}

type resultView struct {
	Protocol, State  string
	Banner           []byte
	Product, Version string
	Data             map[string]string
	HTTP             any
	TLS              any
}

func readRequest(c net.Conn) string {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf []byte
	b := make([]byte, 4096)
	for !bytes.Contains(buf, []byte("\r\n\r\n")) {
		n, err := c.Read(b)
		buf = append(buf, b[:n]...)
		if err != nil || len(buf) > 1<<16 {
			break
		}
	}
	return string(buf)
}

func TestHTTPHeadersTitleRedirectFavicon(t *testing.T) {
	icon := bytes.Repeat([]byte{0, 1, 2, 3, 250}, 100)
	var paths []string
	var mu sync.Mutex
	s := serve(t, func(c net.Conn) {
		for i := 0; i < 5; i++ {
			req := readRequest(c)
			if req == "" {
				return
			}
			line, _, _ := strings.Cut(req, "\r\n")
			mu.Lock()
			paths = append(paths, line)
			mu.Unlock()
			if !strings.Contains(req, "User-Agent: test-agent") {
				fmt.Fprintf(c, "HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n")
				return
			}
			switch {
			case strings.HasPrefix(line, "GET / "):
				fmt.Fprintf(c, "HTTP/1.1 302 Found\r\nLocation: /login?next=%%2F\r\nContent-Length: 0\r\n\r\n")
			case strings.HasPrefix(line, "GET /login"):
				body := `<html><head><TITLE> Sign &amp; in
				</TITLE><link rel="shortcut icon" href="/static/i.ico"></head></html>`
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nZ-First: 1\r\nServer: Test/1.0\r\nA-Last: 2\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n")
				fmt.Fprintf(c, "%x\r\n%s\r\n0\r\n\r\n", len(body), body)
			case strings.HasPrefix(line, "GET /static/i.ico"):
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: image/x-icon\r\nContent-Length: %d\r\n\r\n%s", len(icon), icon)
			default:
				fmt.Fprintf(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
			}
		}
	})
	g := testGrabber(Config{UserAgent: "test-agent"})
	ctx := context.Background()
	svc, err := g.Grab(ctx, Target{Addr: s.addr(), Protocol: "http"})
	if err != nil {
		t.Fatal(err)
	}
	h := svc.HTTP
	if svc.Protocol != "http" || h == nil || h.Status != 200 {
		t.Fatalf("got %+v", svc)
	}
	if h.Title != "Sign & in" {
		t.Errorf("title %q", h.Title)
	}
	if h.Server != "Test/1.0" {
		t.Errorf("server %q", h.Server)
	}
	var names []string
	for _, hd := range h.Headers {
		names = append(names, hd.Name)
	}
	if got := strings.Join(names, ","); got != "Z-First,Server,A-Last,Content-Type,Transfer-Encoding" {
		t.Errorf("header order %s", got)
	}
	if svc.Data["http.path"] != "/login?next=%2F" {
		t.Errorf("redirect path %q", svc.Data["http.path"])
	}
	if want := FaviconHash(icon); h.FaviconHash != want || want == 0 {
		t.Errorf("favicon hash %d, want %d", h.FaviconHash, want)
	}
	if s.accepted.Load() != 1 {
		t.Errorf("%d connections for one keep-alive grab", s.accepted.Load())
	}
}

func TestMurmur3Vectors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint32
	}{
		{"", 0},
		{"hello", 0x248bfa47},
		{"The quick brown fox jumps over the lazy dog", 0x2e4ff723},
	} {
		if got := murmur3([]byte(c.in), 0); got != c.want {
			t.Errorf("murmur3(%q) = %#x, want %#x", c.in, got, c.want)
		}
	}
}

// cert returns a self-signed certificate; negative makes its serial
// negative, which crypto/x509 refuses to parse since Go 1.23.
func cert(t *testing.T, negative bool) tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x42), Subject: pkix.Name{CommonName: "grab.test", Organization: []string{"Vantage"}},
		DNSNames: []string{"grab.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	if negative {
		// the serial is INTEGER 0x42 (02 01 42): make it 0xc2, negative
		i := bytes.Index(der, []byte{2, 1, 0x42})
		if i < 0 {
			t.Fatal("serial not found in DER")
		}
		der[i+2] = 0xc2
		if _, err := x509.ParseCertificate(der); err == nil {
			t.Skip("skipping: this Go's crypto/x509 accepts negative serials (GODEBUG x509negativeserial=1?)")
		}
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

func tlsServer(t *testing.T, c tls.Certificate, maxVersion uint16) *server {
	cfg := &tls.Config{Certificates: []tls.Certificate{c}, MaxVersion: maxVersion}
	return serve(t, func(raw net.Conn) {
		tc := tls.Server(raw, cfg)
		if readRequest(tc) == "" {
			return
		}
		body := "<title>inside</title>"
		fmt.Fprintf(tc, "HTTP/1.1 200 OK\r\nServer: tlsd/2\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	})
}

func TestTLSThenHTTP(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		s := tlsServer(t, cert(t, false), v)
		g := testGrabber(Config{})
		// on a port nobody owns: greeting wait, HTTP fails, TLS next
		svc, err := g.Grab(context.Background(), Target{Addr: s.addr()})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Protocol != "http" || svc.TLS == nil || svc.HTTP == nil {
			t.Fatalf("TLS %x: got protocol %q tls %v http %v", v, svc.Protocol, svc.TLS, svc.HTTP)
		}
		if svc.HTTP.Server != "tlsd/2" || svc.HTTP.Title != "inside" {
			t.Errorf("inner HTTP %+v", svc.HTTP)
		}
		if svc.TLS.Subject != "CN=grab.test,O=Vantage" || len(svc.TLS.Chain) != 1 || svc.TLS.JA3S == "" || len(svc.TLS.SANs) != 1 {
			t.Errorf("TLS %+v", svc.TLS)
		}
		if want := map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}[v]; svc.TLS.Version != want {
			t.Errorf("version %s, want %s", svc.TLS.Version, want)
		}
	}
}

// TLSHandshakeOnly stops once the server's chain is read: everything is
// described (version, cipher, JA3S, ALPN, chain), no Finished and no alert
// is sent, and the tunnel is left alone (no request inside).
func TestTLSHandshakeOnly(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := &tls.Config{Certificates: []tls.Certificate{cert(t, false)}, MaxVersion: v, NextProtos: []string{"http/1.1"}}
		handshakes := make(chan error, 1)
		s := serve(t, func(raw net.Conn) {
			handshakes <- tls.Server(raw, cfg).Handshake()
		})
		g := testGrabber(Config{TLSHandshakeOnly: true})
		svc, err := g.Grab(context.Background(), Target{Addr: s.addr(), Protocol: "tls"})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Protocol != "tls" || svc.TLS == nil || svc.HTTP != nil || svc.TLS.Subject != "CN=grab.test,O=Vantage" {
			t.Fatalf("TLS %x: got protocol %q tls %+v http %+v", v, svc.Protocol, svc.TLS, svc.HTTP)
		}
		want := map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}[v]
		if svc.TLS.Version != want || svc.TLS.Cipher == "" || svc.TLS.JA3S == "" || len(svc.TLS.Chain) != 1 || svc.Data["tls.alpn"] != "http/1.1" {
			t.Errorf("TLS %x: version %q cipher %q ja3s %q chain %d alpn %q", v, svc.TLS.Version, svc.TLS.Cipher, svc.TLS.JA3S, len(svc.TLS.Chain), svc.Data["tls.alpn"])
		}
		// the server never saw our Finished, nor an alert: the connection
		// just closed under it
		select {
		case herr := <-handshakes:
			if herr == nil || strings.Contains(herr.Error(), "remote error") {
				t.Errorf("TLS %x: server handshake ended with %v, want the connection closed mid-handshake", v, herr)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("TLS %x: server handshake still running", v)
		}
	}
}

func TestTLSNegativeSerialKeepsService(t *testing.T) {
	s := tlsServer(t, cert(t, true), tls.VersionTLS12)
	g := testGrabber(Config{})
	svc, err := g.Grab(context.Background(), Target{Addr: s.addr(), Protocol: "tls"})
	if err != nil {
		t.Fatal(err)
	}
	if svc.TLS == nil || len(svc.TLS.Chain) != 1 || svc.TLS.SHA256 == "" {
		t.Fatalf("chain lost: %+v", svc.TLS)
	}
	if svc.TLS.Subject != "CN=grab.test,O=Vantage" || svc.TLS.NotAfter.IsZero() {
		t.Errorf("lenient parse: subject %q not after %v", svc.TLS.Subject, svc.TLS.NotAfter)
	}
	if svc.Data["tls.lenient"] == "" {
		t.Errorf("lenient path not recorded: %v", svc.Data)
	}
}

func TestSilentPortIsNotAService(t *testing.T) {
	s := serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	g := testGrabber(Config{Timeout: 500 * time.Millisecond})
	svc, err := g.Grab(context.Background(), Target{Addr: s.addr()})
	if err == nil || svc.State != "silent" || svc.Protocol != "" {
		t.Fatalf("state %q protocol %q err %v", svc.State, svc.Protocol, err)
	}
	if n := s.accepted.Load(); n > 5 {
		t.Errorf("%d connections, the limit is 5", n)
	}
}

func TestExcludedGetsNoConnection(t *testing.T) {
	s := serve(t, func(c net.Conn) {})
	g := testGrabber(Config{Allowed: func(netip.Addr) bool { return false }})
	_, err := g.Grab(context.Background(), Target{Addr: s.addr(), Protocol: "http"})
	if ErrorKind(err) != "excluded" {
		t.Fatalf("err %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := s.accepted.Load(); n != 0 {
		t.Errorf("%d connections to an excluded address", n)
	}
}

func TestClosedPort(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	svc, err := testGrabber(Config{}).Grab(context.Background(), Target{Addr: addr})
	if svc.State != "closed" || ErrorKind(err) != "refused" {
		t.Fatalf("state %q err %v", svc.State, err)
	}
}

func TestPerHostConcurrencyBound(t *testing.T) {
	s := serve(t, func(c net.Conn) {
		time.Sleep(20 * time.Millisecond)
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		io.Copy(io.Discard, c)
	})
	// count connections on the grabber's side, where the bound applies
	var open, peak atomic.Int64
	d := &net.Dialer{}
	g := testGrabber(Config{PerHost: 2, Concurrency: 50, Dial: func(ctx context.Context, n, a string) (net.Conn, error) {
		c, err := d.DialContext(ctx, n, a)
		if err != nil {
			return nil, err
		}
		v := open.Add(1)
		for p := peak.Load(); v > p && !peak.CompareAndSwap(p, v); p = peak.Load() {
		}
		return &countedConn{Conn: c, open: &open}, nil
	}})
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.Grab(context.Background(), Target{Addr: s.addr(), Protocol: "http"})
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 2 || p == 0 {
		t.Errorf("%d connections at once to one host, the bound is 2", p)
	}
}

type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// Hostile servers: each must end within the connection's deadline with a
// bounded result, and never hang the grabber.
func TestHostileServers(t *testing.T) {
	cases := []struct {
		name   string
		handle func(c net.Conn)
		proto  string
		want   string // protocol recorded
	}{
		{"endless banner", func(c net.Conn) {
			line := bytes.Repeat([]byte("A"), 8192)
			for i := 0; i < 1<<14; i++ {
				if _, err := c.Write(line); err != nil {
					return
				}
			}
		}, "", "unknown"},
		{"endless HTTP header", func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\n"))
			for i := 0; i < 1<<14; i++ {
				if _, err := fmt.Fprintf(c, "X-%d: %s\r\n", i, strings.Repeat("v", 500)); err != nil {
					return
				}
			}
		}, "http", "http"},
		{"slowloris HTTP", func(c net.Conn) {
			readRequest(c)
			for _, b := range []byte("HTTP/1.1 200 OK\r\nServer: slow\r\n") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}, "http", "unknown"},
		{"huge chunk", func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffff\r\nabc"))
		}, "http", "http"},
		{"garbage TLS", func(c net.Conn) {
			c.Read(make([]byte, 1024))
			c.Write([]byte{22, 3, 3, 0xff, 0xff, 2, 0xff, 0xff, 0xff})
			c.Write(bytes.Repeat([]byte{0}, 4096))
		}, "tls", "unknown"},
		{"TLS record 4 GB handshake message", func(c net.Conn) {
			c.Read(make([]byte, 1024))
			c.Write([]byte{22, 3, 3, 0x00, 0x04, 11, 0xff, 0xff, 0xff})
		}, "tls", "unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := serve(t, c.handle)
			g := testGrabber(Config{Timeout: time.Second, MaxBytes: 64 << 10})
			v, err := grabOne(t, g, Target{Addr: s.addr(), Protocol: c.proto})
			if len(v.Banner) > 64<<10 {
				t.Errorf("banner of %d bytes past the cap", len(v.Banner))
			}
			t.Logf("protocol %q state %q banner %d bytes, err %v (%s)", v.Protocol, v.State, len(v.Banner), err, ErrorKind(err))
			if v.Protocol != c.want {
				t.Errorf("protocol %q, want %q", v.Protocol, c.want)
			}
		})
	}
}

func TestUnknownServiceKeepsItsBytes(t *testing.T) {
	s := serve(t, func(c net.Conn) {
		c.Write([]byte("\x00\x01WEIRD-PROTO v7\n"))
		io.Copy(io.Discard, c)
	})
	svc, err := testGrabber(Config{Timeout: 500 * time.Millisecond}).Grab(context.Background(), Target{Addr: s.addr()})
	if err != nil || svc.Protocol != "unknown" || !bytes.Contains(svc.Banner, []byte("WEIRD-PROTO")) {
		t.Fatalf("protocol %q banner %q err %v", svc.Protocol, svc.Banner, err)
	}
}

func FuzzHTTPHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nServer: x\r\n folded\r\nContent-Length: 3\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 404\n\n"))
	f.Add([]byte("HTTP/2 999 \r\n:\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseHTTPHead(b)
		if err != nil {
			return
		}
		if r.Status < 100 || r.Status > 999 || len(r.Headers) > httpMaxHeaders {
			t.Fatalf("status %d, %d headers", r.Status, len(r.Headers))
		}
		htmlTitle(b)
		faviconPath(b, "h")
	})
}

func FuzzServerHello(f *testing.F) {
	f.Add([]byte{22, 3, 3, 0, 46, 2, 0, 0, 42, 3, 3})
	f.Add(clientHello("example.test"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := parseServerHello(b); err == nil {
			if len(h.exts) > 64 {
				t.Fatalf("%d extensions", len(h.exts))
			}
			h.ja3s()
		}
		if chain, err := parseCertificateMsg(b); err == nil && len(chain) > 16 {
			t.Fatalf("chain of %d", len(chain))
		}
		parseCertLenient(b)
	})
}
