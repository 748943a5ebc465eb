package grab

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// pgFake plays a PostgreSQL backend (protocol 3, "Message Flow").
type pgFake struct {
	ssl      byte // answer to SSLRequest: 'S' (TLS follows), 'N', or 0 for a protocol 2 error
	maxMinor int  // newest protocol minor: 0 sends NegotiateProtocolVersion for 3.2, 2 accepts it, -1 refuses it with an error, -2 hangs up
	after    func(w io.Writer)

	mu        sync.Mutex
	versions  []string // protocol versions the client asked for
	errs      []error
	terminate bool
}

func (f *pgFake) fail(format string, args ...any) {
	f.mu.Lock()
	f.errs = append(f.errs, fmt.Errorf(format, args...))
	f.mu.Unlock()
}

// pgMsg frames a backend message: type, int32 length, body.
func pgMsg(typ byte, body []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

// pgErrorMsg is an ErrorResponse with fields in the order PostgreSQL
// sends them.
func pgErrorMsg(fields ...string) []byte {
	var b []byte
	for _, f := range fields {
		b = append(append(b, f...), 0)
	}
	return pgMsg('E', append(b, 0))
}

func pgAuthMsg(code uint32, extra []byte) []byte {
	return pgMsg('R', append(binary.BigEndian.AppendUint32(nil, code), extra...))
}

func pgParam(name, value string) []byte {
	return pgMsg('S', []byte(name+"\x00"+value+"\x00"))
}

var pgTestCert = sync.OnceValue(func() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "db.example.test"},
		DNSNames:     []string{"db.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
})

func (f *pgFake) handle(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	var conn net.Conn = c
	first := make([]byte, 8)
	if _, err := io.ReadFull(c, first); err != nil {
		return
	}
	if !bytes.Equal(first, pgSSLRequest()) {
		return // "invalid length of startup packet": the backend hangs up
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	switch f.ssl {
	case 0:
		c.Write([]byte("EFATAL:  unsupported frontend protocol 1234.5679: server supports 1.0 to 2.0\n\x00"))
		return
	case 'S':
		c.Write([]byte{'S'})
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{pgTestCert()}})
		if err := tc.Handshake(); err != nil {
			f.fail("tls: %v", err)
			return
		}
		conn = tc
	default:
		c.Write([]byte{f.ssl})
	}
	// StartupMessage: int32 length, int32 version, name/value pairs
	lb := make([]byte, 4)
	if _, err := io.ReadFull(conn, lb); err != nil {
		f.fail("no startup packet: %v", err)
		return
	}
	n := binary.BigEndian.Uint32(lb)
	if n < 8 || n > 10000 {
		f.fail("startup length %d", n)
		return
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(conn, body); err != nil {
		f.fail("startup body: %v", err)
		return
	}
	ver := binary.BigEndian.Uint32(body)
	major, minor := ver>>16, int(ver&0xffff)
	f.mu.Lock()
	f.versions = append(f.versions, fmt.Sprintf("%d.%d", major, minor))
	f.mu.Unlock()
	params := strings.Split(string(body[4:]), "\x00")
	if len(params) < 2 || params[len(params)-1] != "" || params[len(params)-2] != "" {
		f.fail("startup parameters not terminated: %q", body[4:])
		return
	}
	kv := map[string]string{}
	for i := 0; i+1 < len(params)-2; i += 2 {
		kv[params[i]] = params[i+1]
	}
	if kv["user"] != "vantage" || kv["database"] != "vantage" || len(kv) != 2 {
		f.fail("startup parameters %v", kv)
	}
	if major != 3 {
		f.fail("protocol %d.%d", major, minor)
		return
	}
	if minor > 0 && minor > f.maxMinor {
		if f.maxMinor == -2 {
			return // a look-alike that hangs up on what it does not know
		}
		if f.maxMinor < 0 {
			conn.Write(pgErrorMsg("SFATAL", "VFATAL", "C0A000",
				fmt.Sprintf("Munsupported frontend protocol 3.%d: server supports 3.0 to 3.0", minor),
				"Fpostmaster.c", "L2071", "RProcessStartupPacket"))
			return
		}
		// the newest version supported, as PostgreSQL sends it: major
		// and minor (backend_startup.c), then no unrecognised options
		conn.Write(pgMsg('v', []byte{0, 3, 0, 0, 0, 0, 0, 0}))
	}
	f.after(conn)
	// whatever the client sends now must not be a password
	for range 4 {
		typ := make([]byte, 5)
		if _, err := io.ReadFull(conn, typ); err != nil {
			return
		}
		switch typ[0] {
		case 'p':
			f.fail("the client sent a password message")
		case 'X':
			f.mu.Lock()
			f.terminate = true
			f.mu.Unlock()
		default:
			f.fail("the client sent message %q", typ[0])
		}
		return
	}
}

func pgAfterMD5(w io.Writer) { w.Write(pgAuthMsg(5, []byte{1, 2, 3, 4})) }

func pgAfterSCRAM(w io.Writer) {
	w.Write(pgAuthMsg(10, []byte("SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00")))
}

func pgAfterHBA(w io.Writer) {
	w.Write(pgErrorMsg("SFATAL", "VFATAL", "C28000",
		`Mno pg_hba.conf entry for host "192.0.2.10", user "vantage", database "vantage", no encryption`,
		"Fauth.c", "L543", "RClientAuthentication"))
}

func pgAfterTrust(w io.Writer) {
	var b []byte
	b = append(b, pgAuthMsg(0, nil)...)
	b = append(b, pgParam("application_name", "")...)
	b = append(b, pgParam("client_encoding", "UTF8")...)
	b = append(b, pgParam("server_encoding", "UTF8")...)
	b = append(b, pgParam("server_version", "18.1 (Debian 18.1-1.pgdg13+2)")...)
	b = append(b, pgMsg('K', make([]byte, 4+32))...) // 3.2: a 32-byte cancel key
	b = append(b, pgMsg('Z', []byte{'I'})...)
	w.Write(b)
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fake     *pgFake
		port     uint16
		proto    string
		want     string
		version  string
		data     map[string]string
		versions string // the protocol versions asked for, in order
		tls      bool
		term     bool
	}{
		{
			name: "postgres 16, md5, no TLS",
			fake: &pgFake{ssl: 'N', maxMinor: 0, after: pgAfterMD5},
			port: 5432, want: "postgres",
			data:     map[string]string{"postgres.ssl": "N", "postgres.protocol": "3.0", "postgres.auth": "md5"},
			versions: "3.2",
		},
		{
			name: "postgres 18, scram in TLS",
			fake: &pgFake{ssl: 'S', maxMinor: 2, after: pgAfterSCRAM},
			port: 5432, want: "postgres", tls: true,
			data: map[string]string{"postgres.ssl": "S", "postgres.protocol": "3.2", "postgres.auth": "scram-sha-256",
				"postgres.sasl_mechanisms": "SCRAM-SHA-256-PLUS,SCRAM-SHA-256"},
			versions: "3.2",
		},
		{
			name: "no pg_hba.conf entry",
			fake: &pgFake{ssl: 'N', maxMinor: 0, after: pgAfterHBA},
			port: 5432, want: "postgres",
			data: map[string]string{
				"postgres.protocol": "3.0", "postgres.error.severity": "FATAL", "postgres.error.code": "28000",
				"postgres.error.message": `no pg_hba.conf entry for host "192.0.2.10", user "vantage", database "vantage", no encryption`,
				"postgres.error.file":    "auth.c", "postgres.error.line": "543", "postgres.error.routine": "ClientAuthentication",
			},
		},
		{
			name: "3.2 refused, 3.0 on a second connection",
			fake: &pgFake{ssl: 'N', maxMinor: -1, after: pgAfterMD5},
			port: 5432, want: "postgres",
			data: map[string]string{"postgres.protocol": "3.0", "postgres.auth": "md5",
				"postgres.protocol_error": "unsupported frontend protocol 3.2: server supports 3.0 to 3.0"},
			versions: "3.2 3.0",
		},
		{
			name: "hangs up on 3.2 without a word",
			fake: &pgFake{ssl: 'N', maxMinor: -2, after: pgAfterMD5},
			port: 5432, want: "postgres",
			data: map[string]string{"postgres.protocol": "3.0", "postgres.auth": "md5",
				"postgres.protocol_error": "connection closed"},
			versions: "3.2 3.0",
		},
		{
			name:  "trust lets us in",
			fake:  &pgFake{ssl: 'N', maxMinor: 2, after: pgAfterTrust},
			proto: "postgres", want: "postgres", version: "18.1",
			data: map[string]string{"postgres.auth": "trust", "postgres.protocol": "3.2",
				"postgres.server_version": "18.1 (Debian 18.1-1.pgdg13+2)"},
			term: true,
		},
		{
			name: "blind on another port",
			fake: &pgFake{ssl: 'N', maxMinor: 0, after: pgAfterMD5},
			want: "postgres",
			data: map[string]string{"postgres.auth": "md5"},
		},
		{
			name:  "protocol 2 error to SSLRequest",
			fake:  &pgFake{ssl: 0},
			proto: "postgres", want: "postgres",
			data: map[string]string{"postgres.error.severity": "FATAL",
				"postgres.error.message": "unsupported frontend protocol 1234.5679: server supports 1.0 to 2.0"},
		},
		{
			name: "a lone N elsewhere is not enough",
			fake: &pgFake{ssl: 'N', maxMinor: 2, after: func(w io.Writer) { w.Write([]byte("hello\r\n")) }},
			want: "unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, tt.fake.handle)
			port := tt.port
			if port == 0 {
				port = addr.Port()
			}
			out := dbtGrab(t, addr, dbtTarget(port, tt.proto), 3*time.Second)
			if out.err != nil {
				t.Fatal(out.err)
			}
			time.Sleep(50 * time.Millisecond) // let the fake see the close
			f := tt.fake
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, err := range f.errs {
				t.Error(err)
			}
			svc := out.svc
			if svc.Protocol != tt.want || svc.Version != tt.version {
				t.Fatalf("got %q %q, want %q %q (%v)", svc.Protocol, svc.Version, tt.want, tt.version, svc.Data)
			}
			if tt.want != "postgres" {
				return
			}
			if svc.Product != "PostgreSQL" {
				t.Errorf("product %q", svc.Product)
			}
			for k, v := range tt.data {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q", k, svc.Data[k], v)
				}
			}
			if tt.versions != "" && strings.Join(f.versions, " ") != tt.versions {
				t.Errorf("asked for %v, want %s", f.versions, tt.versions)
			}
			if tt.tls != (svc.TLS != nil) {
				t.Errorf("tls %+v", svc.TLS)
			}
			if svc.TLS != nil && (svc.TLS.Subject != "CN=db.example.test" || len(svc.TLS.Chain) != 1 || svc.TLS.SHA256 == "") {
				t.Errorf("tls %+v", svc.TLS)
			}
			if f.terminate != tt.term {
				t.Errorf("terminate sent: %v", f.terminate)
			}
			if len(svc.Banner) == 0 || len(svc.Banner) > pgBannerMax {
				t.Errorf("banner %q", svc.Banner)
			}
		})
	}
}

func TestPostgresHostile(t *testing.T) {
	t.Parallel()
	afterSSL := func(then func(c net.Conn)) func(c net.Conn) {
		return func(c net.Conn) {
			if i, _ := dbtExpect(c, pgSSLRequest()); i != 0 {
				return
			}
			c.Write([]byte{'N'})
			then(c)
		}
	}
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"4 GB message", afterSSL(func(c net.Conn) {
			c.Write([]byte{'R', 0xff, 0xff, 0xff, 0xff})
			dbtHold(c)
		})},
		{"ParameterStatus flood", afterSSL(func(c net.Conn) {
			p := pgParam("x", "y")
			for range 100000 {
				if _, err := c.Write(p); err != nil {
					return
				}
			}
		})},
		{"endless protocol 2 error", afterSSL(func(c net.Conn) {
			c.Write([]byte("EFATAL"))
			for range 1000 {
				if _, err := c.Write(bytes.Repeat([]byte("A"), 4096)); err != nil {
					return
				}
			}
		})},
		{"N, then silence", afterSSL(dbtHold)},
		{"endless bytes", dbtEndless(nil)},
		{"slow drip", dbtDrip(append([]byte{'N'}, pgAuthMsg(5, []byte{1, 2, 3, 4})...))},
		{"silent", dbtHold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, tt.handle)
			out := dbtGrab(t, addr, dbtTarget(5432, "postgres"), 1500*time.Millisecond)
			if out.took > 2500*time.Millisecond {
				t.Fatalf("took %v", out.took)
			}
			if out.svc.Version != "" {
				t.Fatalf("identified %+v", out.svc)
			}
		})
	}
}

func TestPostgresStream(t *testing.T) {
	var b []byte
	// the minor version alone, as the documentation words it
	b = append(b, pgMsg('v', []byte{0, 0, 0, 0, 0, 0, 0, 1, '_', 'p', 'q', '_', '.', 'x', 0})...)
	b = append(b, pgMsg('N', []byte("SNOTICE\x00Mhello\x00\x00"))...)
	b = append(b, pgAuthMsg(10, []byte("SCRAM-SHA-256\x00\x00"))...)
	st, err := parsePGStream(b)
	if err != nil || st.negotiated != "3.0" || st.auth != "scram-sha-256" || strings.Join(st.unrecognized, ",") != "_pq_.x" {
		t.Fatalf("%+v %v", st, err)
	}
	// the whole version, as PostgreSQL sends it
	if st, err := parsePGStream(pgMsg('v', []byte{0, 3, 0, 0, 0, 0, 0, 0})); !errors.Is(err, errPGShort) || st.negotiated != "3.0" {
		t.Fatalf("%+v %v", st, err)
	}
	for _, bad := range [][]byte{
		pgMsg('R', []byte{0, 0, 0, 5, 1}),             // md5 without its salt
		pgMsg('E', []byte("Xnothing\x00\x00")),        // no severity, no message
		pgMsg('E', []byte("SFATAL\x00Mcut")),          // not terminated
		pgMsg('v', []byte{0, 4, 0, 0, 0, 0, 0, 0}),    // another major version
		pgMsg('v', []byte{0, 3, 0, 0, 0xff, 0, 0, 0}), // implausible option count
		pgMsg('Q', nil),
	} {
		if _, err := parsePGStream(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, err := parsePGStream([]byte{'R', 0, 0, 0}); !errors.Is(err, errPGShort) {
		t.Errorf("short: %v", err)
	}
}

func FuzzPostgresMessages(f *testing.F) {
	f.Add(pgAuthMsg(5, []byte{1, 2, 3, 4}))
	f.Add(append(pgMsg('v', make([]byte, 8)), pgAuthMsg(10, []byte("SCRAM-SHA-256\x00\x00"))...))
	f.Add([]byte(pgErrorMsg("SFATAL", "C28000", "Mno pg_hba.conf entry", "Fauth.c", "L543", "RClientAuthentication")))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, _ := parsePGStream(b)
		if st.messages > pgMaxMessages || len(st.sasl) > 16 || len(st.unrecognized) > 64 || len(st.params) > 64 {
			t.Fatalf("unbounded state %+v", st)
		}
		r := &Result{}
		pgDescribe(r, &pgAttempt{ssl: 'N', st: st, raw: b[:min(len(b), pgBannerMax)]})
		if len(r.Version) > 32 {
			t.Fatalf("version %q", r.Version)
		}
	})
}
