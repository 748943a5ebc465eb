package grab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/vantagehq/vantage/record"
)

// PostgreSQL, frontend/backend protocol 3: the client speaks first.
//
//  1. SSLRequest: the server answers 'S' (then TLS) or 'N'. After 'S' we
//     do the TLS handshake (recording the certificate) and go on inside.
//  2. StartupMessage for user and database "vantage", asking for protocol
//     3.2: PostgreSQL 18 accepts it; 10 to 17 (and patched 9.3 to 9.6)
//     answer NegotiateProtocolVersion with their newest minor, 3.0; older
//     servers and some look-alikes refuse it with an error, after which
//     one more connection asks for 3.0.
//  3. The server then asks for authentication (we record the method and
//     close: no password is ever sent) or refuses us with an
//     ErrorResponse whose fields we keep (a missing pg_hba.conf entry, an
//     unknown role). Only a server that trusts anyone lets us in; then its
//     ParameterStatus messages include server_version.
func init() {
	Register(Module{
		Name:  "postgres",
		Ports: []uint16{5432},
		Rank:  45,
		Grab:  grabPostgres,
	})
}

const (
	pgSSLRequestCode = 80877103
	pgProto30        = 3 << 16
	pgProto32        = 3<<16 | 2
	pgMaxMessage     = 32 << 10 // an ErrorResponse is a few hundred bytes
	pgMaxMessages    = 64       // messages read after the startup packet
	pgBannerMax      = 1024
	pgUser           = "vantage"
)

// pgState is what the backend's messages said, in the order they came.
type pgState struct {
	negotiated   string   // "3.0" from NegotiateProtocolVersion
	unrecognized []string // protocol options the server did not know
	auth         string   // the authentication method asked for
	sasl         []string // SASL mechanisms offered
	authOK       bool
	errFields    map[string]string // ErrorResponse fields by name
	params       map[string]string // ParameterStatus
	ready        bool
	messages     int
}

var errPGShort = errors.New("postgres: message incomplete")

// pgMessage splits the first backend message off b: a type byte, an
// int32 length counting itself, the body.
func pgMessage(b []byte) (typ byte, body []byte, n int, err error) {
	if len(b) < 5 {
		return 0, nil, 0, errPGShort
	}
	typ = b[0]
	l := binary.BigEndian.Uint32(b[1:])
	if l < 4 || l > pgMaxMessage {
		return 0, nil, 0, NotMine("postgres message %q of length %d", typ, l)
	}
	if len(b) < 1+int(l) {
		return 0, nil, 0, errPGShort
	}
	return typ, b[5 : 1+int(l)], 1 + int(l), nil
}

// pgCString splits a NUL-terminated string off b.
func pgCString(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}

// pgErrorFieldNames are the ErrorResponse fields we keep (protocol 3,
// "Error and Notice Message Fields").
var pgErrorFieldNames = map[byte]string{
	'S': "severity", 'V': "severity_v", 'C': "code", 'M': "message",
	'D': "detail", 'H': "hint", 'F': "file", 'L': "line", 'R': "routine",
}

// parsePGFields reads an ErrorResponse or NoticeResponse body: fields of
// a type byte and a string, ended by a zero byte.
func parsePGFields(b []byte) (map[string]string, error) {
	out := map[string]string{}
	for range 64 {
		if len(b) == 0 {
			return nil, errors.New("postgres: error fields not terminated")
		}
		t := b[0]
		if t == 0 {
			break
		}
		v, rest, ok := pgCString(b[1:])
		if !ok {
			return nil, errors.New("postgres: error field not terminated")
		}
		b = rest
		if name, ok := pgErrorFieldNames[t]; ok && len(v) <= 1024 {
			out[name] = v
		}
	}
	if out["severity"] == "" && out["severity_v"] == "" && out["message"] == "" {
		return nil, errors.New("postgres: error without severity or message")
	}
	if out["severity"] == "" {
		out["severity"] = out["severity_v"]
	}
	delete(out, "severity_v")
	return out, nil
}

// pgAuthNames maps AuthenticationRequest codes to method names.
var pgAuthNames = map[uint32]string{
	2: "kerberos5", 3: "password", 5: "md5", 6: "scm", 7: "gss",
	8: "gss-continue", 9: "sspi", 11: "sasl-continue", 12: "sasl-final",
}

// handle takes one backend message. done is true when nothing more is
// to be learnt on this connection.
func (st *pgState) handle(typ byte, body []byte) (done bool, err error) {
	st.messages++
	switch typ {
	case 'R': // AuthenticationRequest
		if len(body) < 4 {
			return true, errors.New("postgres: short authentication request")
		}
		code := binary.BigEndian.Uint32(body)
		switch code {
		case 0:
			st.authOK = true
			return false, nil
		case 10:
			rest := body[4:]
			for range 16 {
				m, r, ok := pgCString(rest)
				if !ok || m == "" {
					break
				}
				if len(m) <= 64 {
					st.sasl = append(st.sasl, m)
				}
				rest = r
			}
			st.auth = "sasl"
			if slices.Contains(st.sasl, "SCRAM-SHA-256") {
				st.auth = "scram-sha-256"
			}
		case 5:
			if len(body) != 8 {
				return true, errors.New("postgres: md5 request without a 4-byte salt")
			}
			st.auth = "md5"
		default:
			if name, ok := pgAuthNames[code]; ok {
				st.auth = name
			} else {
				st.auth = fmt.Sprintf("code %d", code)
			}
		}
		return true, nil
	case 'E': // ErrorResponse
		f, err := parsePGFields(body)
		if err != nil {
			return true, err
		}
		st.errFields = f
		return true, nil
	case 'N': // NoticeResponse: noted, not kept
		if _, err := parsePGFields(body); err != nil {
			return true, err
		}
		return false, nil
	case 'v': // NegotiateProtocolVersion
		if len(body) < 8 {
			return true, errors.New("postgres: short NegotiateProtocolVersion")
		}
		// PostgreSQL sends the whole version (3<<16 | minor) where the
		// documentation speaks of the minor version; take either
		ver := binary.BigEndian.Uint32(body)
		n := binary.BigEndian.Uint32(body[4:])
		if ver>>16 == 3 {
			ver &= 0xffff
		}
		if ver > 0xffff || n > 64 {
			return true, errors.New("postgres: implausible NegotiateProtocolVersion")
		}
		st.negotiated = fmt.Sprintf("3.%d", ver)
		rest := body[8:]
		for range n {
			o, r, ok := pgCString(rest)
			if !ok {
				return true, errors.New("postgres: NegotiateProtocolVersion option not terminated")
			}
			st.unrecognized = append(st.unrecognized, o)
			rest = r
		}
		return false, nil
	case 'S': // ParameterStatus
		name, rest, ok := pgCString(body)
		if !ok {
			return true, errors.New("postgres: ParameterStatus name not terminated")
		}
		val, _, ok := pgCString(rest)
		if !ok {
			return true, errors.New("postgres: ParameterStatus value not terminated")
		}
		if st.params == nil {
			st.params = map[string]string{}
		}
		if len(st.params) < 64 && len(name) <= 64 && len(val) <= 256 {
			st.params[name] = val
		}
		return false, nil
	case 'K': // BackendKeyData: the cancel key, not ours to keep
		if len(body) < 8 {
			return true, errors.New("postgres: short BackendKeyData")
		}
		return false, nil
	case 'Z': // ReadyForQuery
		st.ready = true
		return true, nil
	}
	return true, NotMine("postgres message type %q", typ)
}

// parsePGStream runs the messages in b through a fresh state, as the
// backend would send them after a startup packet.
func parsePGStream(b []byte) (*pgState, error) {
	st := &pgState{}
	for range pgMaxMessages {
		typ, body, n, err := pgMessage(b)
		if err != nil {
			return st, err
		}
		b = b[n:]
		done, err := st.handle(typ, body)
		if err != nil || done {
			return st, err
		}
	}
	return st, nil
}

// pgStartup builds a StartupMessage for protocol version proto.
func pgStartup(proto uint32) []byte {
	b := make([]byte, 8, 64)
	binary.BigEndian.PutUint32(b[4:], proto)
	for _, kv := range [][2]string{{"user", pgUser}, {"database", pgUser}} {
		b = append(b, kv[0]...)
		b = append(b, 0)
		b = append(b, kv[1]...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func pgSSLRequest() []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, 8)
	binary.BigEndian.PutUint32(b[4:], pgSSLRequestCode)
	return b
}

// pgAttempt is one connection's worth.
type pgAttempt struct {
	ssl    byte // 'S', 'N', or 'E' for an error instead
	tls    *record.TLS
	tlsErr string
	st     *pgState
	raw    []byte // the backend messages, for the banner
	valid  bool   // at least one well-formed backend message
	err    error  // what ended the reading after the startup packet
}

// pgReadMessage reads one backend message. An 'E' whose length is not
// plausible is taken for protocol 2's error: text up to a NUL.
func pgReadMessage(s *Session) (typ byte, body, raw []byte, v2 bool, err error) {
	t, err := s.ReadFull(1)
	if err != nil {
		return 0, nil, nil, false, err
	}
	return pgReadRest(s, t[0])
}

// pgReadRest reads the rest of a message whose type byte came already.
func pgReadRest(s *Session, typ byte) (_ byte, body, raw []byte, v2 bool, err error) {
	lb, err := s.ReadFull(4)
	if err != nil {
		return 0, nil, nil, false, err
	}
	hdr := []byte{typ, lb[0], lb[1], lb[2], lb[3]}
	l := binary.BigEndian.Uint32(lb)
	if typ == 'E' && (l < 4 || l > pgMaxMessage) && mysqlPrintable(lb) {
		rest, err := s.ReadUntil([]byte{0}, 4096)
		if err != nil {
			return 0, nil, nil, false, err
		}
		text := append(bytes.Clone(lb), rest[:len(rest)-1]...)
		return typ, text, append(hdr, rest...), true, nil
	}
	if l < 4 || l > pgMaxMessage {
		return 0, nil, nil, false, NotMine("postgres message %q of length %d", typ, l)
	}
	body, err = s.ReadFull(int(l) - 4)
	if err != nil {
		return 0, nil, nil, false, err
	}
	return typ, body, append(hdr, body...), false, nil
}

// readMessages reads backend messages into a.st until one ends the
// exchange. first, when not zero, is a type byte already read.
func (a *pgAttempt) readMessages(s *Session, first byte) error {
	for range pgMaxMessages {
		var typ byte
		var body, raw []byte
		var v2 bool
		var err error
		if first != 0 {
			typ, body, raw, v2, err = pgReadRest(s, first)
			first = 0
		} else {
			typ, body, raw, v2, err = pgReadMessage(s)
		}
		if err != nil {
			return err
		}
		if len(a.raw) < pgBannerMax {
			a.raw = append(a.raw, raw[:min(len(raw), pgBannerMax-len(a.raw))]...)
		}
		if v2 {
			return a.v2Error(body)
		}
		done, err := a.st.handle(typ, body)
		if err != nil {
			return err
		}
		a.valid = true
		if done {
			return nil
		}
	}
	return nil
}

// v2Error takes protocol 2's ErrorResponse: "FATAL:  message\n".
func (a *pgAttempt) v2Error(body []byte) error {
	text := strings.TrimRight(string(body), "\n")
	if !mysqlPrintableText([]byte(text)) {
		return NotMine("postgres protocol 2 error %q", clip(body, 40))
	}
	a.st.errFields = map[string]string{"message": text}
	if sev, msg, ok := strings.Cut(text, ":"); ok && (sev == "FATAL" || sev == "ERROR") {
		a.st.errFields = map[string]string{"severity": sev, "message": strings.TrimSpace(msg)}
	}
	a.valid = true
	return nil
}

// pgTry runs SSLRequest, TLS when offered, and the startup packet on s.
func pgTry(ctx context.Context, s *Session, proto uint32) (*pgAttempt, error) {
	a := &pgAttempt{st: &pgState{}}
	if err := s.Write(pgSSLRequest()); err != nil {
		return nil, err
	}
	b, err := s.ReadFull(1)
	if err != nil {
		return nil, err
	}
	a.ssl = b[0]
	switch a.ssl {
	case 'N':
	case 'S':
		cfg := &tls.Config{
			InsecureSkipVerify: true, // we describe the certificate, we do not trust it
			MinVersion:         tls.VersionTLS10,
			NextProtos:         []string{"postgresql"},
		}
		if n := s.Target.Name; n != "" {
			if _, err := netip.ParseAddr(n); err != nil {
				cfg.ServerName = n
			}
		}
		conn := tls.Client(s.NetConn(), cfg)
		if err := conn.HandshakeContext(ctx); err != nil {
			a.tlsErr = err.Error()
			return a, nil
		}
		a.tls = pgTLSInfo(conn.ConnectionState())
		s.Upgrade(conn)
	case 'E':
		// a server that predates SSLRequest, or refuses us before it
		// looks at it: the error follows, in either protocol's format
		err := a.readMessages(s, 'E')
		return a, err
	default:
		return nil, NotMine("reply %q to SSLRequest", b)
	}
	if err := s.Write(pgStartup(proto)); err != nil {
		return a, nil
	}
	err = a.readMessages(s, 0)
	a.err = err
	if err == nil && a.st.authOK && a.st.ready {
		s.Write([]byte{'X', 0, 0, 0, 4}) // Terminate
	}
	return a, err
}

// protocolRefused reports whether the server turned down the protocol
// version we asked for, rather than us.
func (a *pgAttempt) protocolRefused() bool {
	if a.ssl == 'S' && a.tls == nil || a.st.auth != "" || a.st.authOK || a.st.negotiated != "" {
		return false
	}
	if a.st.errFields == nil {
		// hung up on us without a word (a timeout says nothing)
		return !a.valid && (errors.Is(a.err, io.EOF) || errors.Is(a.err, io.ErrUnexpectedEOF) || errors.Is(a.err, syscall.ECONNRESET))
	}
	msg := strings.ToLower(a.st.errFields["message"])
	return a.st.errFields["code"] == "0A000" || strings.Contains(msg, "protocol")
}

// protocol is the protocol version the server went on with, when it
// said: its NegotiateProtocolVersion, or else the one asked for if it
// went on to authentication (or refused us for a reason of its own).
func (a *pgAttempt) protocol(asked string) string {
	switch {
	case a.st.negotiated != "":
		return a.st.negotiated
	case a.st.authOK || a.st.auth != "":
		return asked
	case a.st.errFields["code"] != "" && !a.protocolRefused():
		return asked
	}
	return ""
}

func grabPostgres(ctx context.Context, s *Session) (*Result, error) {
	own := s.Target.Protocol == "postgres" || s.Target.Addr.Port() == 5432
	a, err := pgTry(ctx, s, pgProto32)
	if a == nil {
		return nil, err
	}
	if !own && !a.valid {
		// a lone byte is not enough on a port that is not PostgreSQL's
		if err == nil || !errors.Is(err, ErrNotMine) {
			err = NotMine("answered %q to SSLRequest, then nothing PostgreSQL says (%v)", a.ssl, err)
		}
		return nil, err
	}
	r := &Result{Protocol: "postgres", Product: "PostgreSQL"}
	if a.ssl != 'E' {
		r.Set("postgres.ssl", string(a.ssl))
	}
	proto := a.protocol("3.2")
	if a.ssl != 'E' && a.protocolRefused() {
		// ask again for 3.0, on a new connection
		msg := "connection closed"
		if a.st.errFields != nil {
			msg = a.st.errFields["message"]
		}
		r.Set("postgres.protocol_error", pgClip(msg, 256))
		if again, rerr := s.Redial(ctx); rerr == nil {
			b, _ := pgTry(ctx, again, pgProto30)
			again.Close()
			if b != nil && b.valid {
				a.st, a.raw, a.valid = b.st, b.raw, true
				if a.tls == nil {
					a.tls = b.tls
				}
				proto = b.protocol("3.0")
			}
		}
	}
	r.Set("postgres.protocol", proto)
	pgDescribe(r, a)
	return r, nil
}

// pgDescribe records an attempt's findings in r.
func pgDescribe(r *Result, a *pgAttempt) {
	st := a.st
	r.TLS = a.tls
	r.Set("postgres.tls_error", pgClip(a.tlsErr, 256))
	if len(st.unrecognized) > 0 {
		r.Set("postgres.unrecognized_options", strings.Join(st.unrecognized, ","))
	}
	switch {
	case st.authOK:
		r.Set("postgres.auth", "trust")
	default:
		r.Set("postgres.auth", st.auth)
	}
	if len(st.sasl) > 0 {
		r.Set("postgres.sasl_mechanisms", strings.Join(st.sasl, ","))
	}
	for k, v := range st.errFields {
		r.Set("postgres.error."+k, pgClip(v, 512))
	}
	if v := st.params["server_version"]; v != "" && mysqlPrintable([]byte(v)) {
		r.Set("postgres.server_version", v)
		r.Version = pgLeadingVersion(v)
	}
	if a.raw != nil {
		r.Banner = a.raw
	} else {
		r.Banner = []byte{a.ssl}
	}
}

// pgLeadingVersion is the version number a server_version starts with:
// "16.4 (Debian 16.4-1.pgdg120+1)" is 16.4, "17beta1" is 17beta1.
func pgLeadingVersion(v string) string {
	v, _, _ = strings.Cut(strings.TrimSpace(v), " ")
	if len(v) > 32 || v == "" || v[0] < '0' || v[0] > '9' {
		return ""
	}
	return v
}

func pgClip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// pgTLSInfo describes the TLS session a server offered after 'S'.
func pgTLSInfo(cs tls.ConnectionState) *record.TLS {
	info := &record.TLS{Version: tls.VersionName(cs.Version), Cipher: tls.CipherSuiteName(cs.CipherSuite)}
	for i, c := range cs.PeerCertificates {
		if i == 8 {
			break
		}
		info.Chain = append(info.Chain, c.Raw)
	}
	if len(cs.PeerCertificates) > 0 {
		leaf := cs.PeerCertificates[0]
		sum := sha256.Sum256(leaf.Raw)
		info.SHA256 = hex.EncodeToString(sum[:])
		info.Subject, info.Issuer = leaf.Subject.String(), leaf.Issuer.String()
		info.SANs = pgSANs(leaf)
		info.NotBefore, info.NotAfter = leaf.NotBefore.UTC(), leaf.NotAfter.UTC()
	}
	return info
}

func pgSANs(c *x509.Certificate) []string {
	out := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}
