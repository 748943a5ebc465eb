package grab

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vantagehq/vantage/record"
)

// TLS: a handshake that offers everything a server might still speak,
// the presented chain kept as raw DER and described leniently, JA3S from
// the ServerHello as it came over the wire, and then whatever runs inside
// the tunnel (usually HTTP). A chain Go's x509 rejects (a negative serial,
// a malformed extension) fails crypto/tls's handshake; then a TLS 1.2
// ClientHello of our own reads the Certificate message in the clear, so
// the service is never lost for its certificate's sake.
func init() {
	Register(Module{
		Name:  "tls",
		Ports: []uint16{443, 465, 636, 853, 989, 990, 992, 993, 994, 995, 2376, 3269, 4443, 5061, 5986, 6443, 8443, 9443, 10443},
		Rank:  20,
		Grab:  grabTLS,
	})
}

// errChainInHand ends a handshake-only grab's handshake once the server's
// chain has been read.
var errChainInHand = errors.New("certificate chain read, handshake not completed")

var tlsCiphers = func() []uint16 {
	var ids []uint16
	for _, c := range tls.CipherSuites() {
		ids = append(ids, c.ID)
	}
	for _, c := range tls.InsecureCipherSuites() {
		ids = append(ids, c.ID)
	}
	return ids
}()

func grabTLS(ctx context.Context, s *Session) (*Result, error) {
	raw := s.NetConn().(*rawConn)
	raw.keep = 8 << 10
	cfg := &tls.Config{
		InsecureSkipVerify: true, // we describe certificates, we do not trust them
		MinVersion:         tls.VersionTLS10,
		CipherSuites:       tlsCiphers,
		NextProtos:         []string{"http/1.1"},
		// one classical key share: the post-quantum hybrid share costs a
		// third of a handshake's CPU and tells us nothing more about the
		// server (one that lacks X25519 answers with a retry for P-256)
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384},
	}
	if s.Target.Name != "" {
		if _, err := netip.ParseAddr(s.Target.Name); err != nil {
			cfg.ServerName = s.Target.Name
		}
	}
	// Handshake only: everything we record (version, cipher, ALPN, the
	// chain) is in hand once the server's Certificate is read, so stop
	// there rather than check its CertificateVerify signature, derive the
	// application keys and send a Finished, which tell us nothing more and
	// cost a fifth of a handshake. The alert crypto/tls sends on the way
	// out is muted: the connection just closes.
	var presented *tls.ConnectionState
	if s.inner == nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			presented = &cs
			raw.mute = true
			return errChainInHand
		}
	}
	conn := tls.Client(raw, cfg)
	herr := conn.HandshakeContext(ctx)
	if presented != nil {
		herr = nil
	}
	hello, _ := parseServerHello(raw.seen)
	if s.first == nil && len(raw.seen) > 0 {
		s.first = bytes.Clone(clip(raw.seen, 1024))
	}
	if herr != nil {
		if hello == nil {
			return nil, NotMine("no TLS ServerHello: %v", herr)
		}
		if !strings.Contains(herr.Error(), "certificate") {
			return nil, fmt.Errorf("tls handshake: %w", herr)
		}
		// a chain crypto/tls would not parse: read it ourselves, on a
		// new connection
		again, err := s.Redial(ctx)
		if err != nil {
			return nil, fmt.Errorf("tls handshake: %w (and no second connection: %v)", herr, err)
		}
		defer again.Close()
		return grabTLSRaw(again)
	}
	var st tls.ConnectionState
	if presented != nil {
		st = *presented
	} else {
		st = conn.ConnectionState()
	}
	info := &record.TLS{Version: tlsVersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite)}
	if hello != nil {
		info.JA3S = hello.ja3s()
	}
	var chain [][]byte
	for _, c := range st.PeerCertificates {
		chain = append(chain, c.Raw)
	}
	var leaf *x509.Certificate
	if len(st.PeerCertificates) > 0 {
		leaf = st.PeerCertificates[0] // parsed already by the handshake
	}
	describeChainParsed(info, chain, leaf)
	if presented == nil {
		s.Upgrade(conn)
	}
	r, err := s.Inner(ctx)
	if err != nil || r == nil {
		r = &Result{Protocol: "tls"}
	}
	r.TLS = info
	r.Set("tls.alpn", st.NegotiatedProtocol)
	return r, nil
}

// grabTLSRaw runs a TLS 1.2 handshake of our own as far as the server's
// Certificate message and stops.
func grabTLSRaw(s *Session) (*Result, error) {
	hello := clientHello(s.Target.Name)
	if err := s.Write(hello); err != nil {
		return nil, err
	}
	var sh *serverHello
	var chain [][]byte
	var hs []byte // handshake bytes across records
	for i := 0; i < 32 && chain == nil; i++ {
		hdr, err := s.ReadFull(5)
		if err != nil {
			return nil, err
		}
		n := int(binary.BigEndian.Uint16(hdr[3:]))
		if hdr[0] == 21 {
			return nil, fmt.Errorf("tls alert from server")
		}
		if hdr[0] != 22 || n > 1<<14+2048 {
			return nil, NotMine("tls record type %d length %d", hdr[0], n)
		}
		body, err := s.ReadFull(n)
		if err != nil {
			return nil, err
		}
		hs = append(hs, body...)
		for len(hs) >= 4 {
			mlen := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			if mlen > 1<<20 {
				return nil, fmt.Errorf("%w: tls handshake message of %d bytes", ErrTooLarge, mlen)
			}
			if len(hs) < 4+mlen {
				break
			}
			msg := hs[:4+mlen]
			hs = hs[4+mlen:]
			switch msg[0] {
			case 2:
				sh, _ = parseServerHelloMsg(msg[4:])
			case 11:
				chain, err = parseCertificateMsg(msg[4:])
				if err != nil {
					return nil, err
				}
			}
		}
	}
	if sh == nil {
		return nil, NotMine("no ServerHello")
	}
	info := &record.TLS{Version: tlsVersionName(sh.version), Cipher: tls.CipherSuiteName(sh.cipher), JA3S: sh.ja3s()}
	describeChain(info, chain)
	return &Result{Protocol: "tls", TLS: info, Data: map[string]string{"tls.lenient": "certificate not parsable by crypto/x509"}}, nil
}

// describeChain keeps the raw chain and the leaf's names and dates.
func describeChain(info *record.TLS, chain [][]byte) { describeChainParsed(info, chain, nil) }

func describeChainParsed(info *record.TLS, chain [][]byte, leaf *x509.Certificate) {
	if len(chain) > 16 {
		chain = chain[:16]
	}
	info.Chain = chain
	if len(chain) == 0 {
		return
	}
	sum := sha256.Sum256(chain[0])
	info.SHA256 = hex.EncodeToString(sum[:])
	c := leaf
	if c == nil {
		c, _ = x509.ParseCertificate(chain[0])
	}
	if c != nil {
		info.Subject = c.Subject.String()
		info.Issuer = c.Issuer.String()
		info.SANs = append(info.SANs, c.DNSNames...)
		for _, ip := range c.IPAddresses {
			info.SANs = append(info.SANs, ip.String())
		}
		info.NotBefore, info.NotAfter = c.NotBefore.UTC(), c.NotAfter.UTC()
		return
	}
	if c, err := parseCertLenient(chain[0]); err == nil {
		info.Subject, info.Issuer = c.subject, c.issuer
		info.NotBefore, info.NotAfter = c.notBefore, c.notAfter
	}
}

type lenientCert struct {
	subject, issuer     string
	notBefore, notAfter time.Time
}

// parseCertLenient reads the names and validity out of a certificate
// that crypto/x509 refuses, with encoding/asn1 and no checks beyond the
// structure.
func parseCertLenient(der []byte) (*lenientCert, error) {
	var cert struct {
		TBS       asn1.RawValue
		Algorithm asn1.RawValue
		Signature asn1.RawValue
	}
	if _, err := asn1.Unmarshal(der, &cert); err != nil {
		return nil, err
	}
	var tbs struct {
		Version   int `asn1:"optional,explicit,default:0,tag:0"`
		Serial    asn1.RawValue
		Algorithm asn1.RawValue
		Issuer    asn1.RawValue
		Validity  struct{ NotBefore, NotAfter time.Time }
		Subject   asn1.RawValue
	}
	if _, err := asn1.Unmarshal(cert.TBS.FullBytes, &tbs); err != nil {
		return nil, err
	}
	out := &lenientCert{notBefore: tbs.Validity.NotBefore.UTC(), notAfter: tbs.Validity.NotAfter.UTC()}
	var rdn pkix.RDNSequence
	if _, err := asn1.Unmarshal(tbs.Subject.FullBytes, &rdn); err == nil {
		var n pkix.Name
		n.FillFromRDNSequence(&rdn)
		out.subject = n.String()
	}
	rdn = nil
	if _, err := asn1.Unmarshal(tbs.Issuer.FullBytes, &rdn); err == nil {
		var n pkix.Name
		n.FillFromRDNSequence(&rdn)
		out.issuer = n.String()
	}
	return out, nil
}

type serverHello struct {
	legacy  uint16 // the version field as sent: what JA3S hashes
	version uint16 // the negotiated version (supported_versions in TLS 1.3)
	cipher  uint16
	exts    []uint16
}

func (h *serverHello) ja3s() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(int(h.legacy)))
	b.WriteByte(',')
	b.WriteString(strconv.Itoa(int(h.cipher)))
	b.WriteByte(',')
	for i, e := range h.exts {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(strconv.Itoa(int(e)))
	}
	sum := md5.Sum([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// parseServerHello finds the ServerHello in the first bytes a server sent
// (TLS records, the hello possibly split across them).
func parseServerHello(b []byte) (*serverHello, error) {
	var hs []byte
	for len(b) >= 5 {
		if b[0] != 22 {
			break
		}
		n := int(binary.BigEndian.Uint16(b[3:]))
		if len(b) < 5+n {
			hs = append(hs, b[5:]...)
			break
		}
		hs = append(hs, b[5:5+n]...)
		b = b[5+n:]
		if len(hs) >= 4 && len(hs) >= 4+(int(hs[1])<<16|int(hs[2])<<8|int(hs[3])) {
			break
		}
	}
	if len(hs) < 4 || hs[0] != 2 {
		return nil, errors.New("no ServerHello")
	}
	n := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
	if len(hs) < 4+n {
		return nil, errors.New("ServerHello cut short")
	}
	return parseServerHelloMsg(hs[4 : 4+n])
}

// parseServerHelloMsg parses the body of a ServerHello handshake message.
func parseServerHelloMsg(m []byte) (*serverHello, error) {
	short := errors.New("ServerHello cut short")
	if len(m) < 2+32+1 {
		return nil, short
	}
	h := &serverHello{legacy: binary.BigEndian.Uint16(m)}
	h.version = h.legacy
	m = m[34:]
	sid := int(m[0])
	if len(m) < 1+sid+3 {
		return nil, short
	}
	m = m[1+sid:]
	h.cipher = binary.BigEndian.Uint16(m)
	m = m[3:] // cipher, compression
	if len(m) < 2 {
		return h, nil // no extensions
	}
	n := int(binary.BigEndian.Uint16(m))
	m = m[2:]
	if len(m) < n {
		return nil, short
	}
	m = m[:n]
	for len(m) >= 4 && len(h.exts) < 64 {
		typ := binary.BigEndian.Uint16(m)
		l := int(binary.BigEndian.Uint16(m[2:]))
		if len(m) < 4+l {
			return nil, short
		}
		h.exts = append(h.exts, typ)
		if typ == 43 && l == 2 { // supported_versions: the real version
			h.version = binary.BigEndian.Uint16(m[4:])
		}
		m = m[4+l:]
	}
	return h, nil
}

// parseCertificateMsg parses a TLS 1.2 Certificate message body.
func parseCertificateMsg(m []byte) ([][]byte, error) {
	if len(m) < 3 {
		return nil, errors.New("certificate message cut short")
	}
	n := int(m[0])<<16 | int(m[1])<<8 | int(m[2])
	m = m[3:]
	if len(m) < n {
		return nil, errors.New("certificate list cut short")
	}
	m = m[:n]
	var chain [][]byte
	for len(m) >= 3 && len(chain) < 16 {
		l := int(m[0])<<16 | int(m[1])<<8 | int(m[2])
		if len(m) < 3+l {
			return nil, errors.New("certificate cut short")
		}
		chain = append(chain, append([]byte(nil), m[3:3+l]...))
		m = m[3+l:]
	}
	return chain, nil
}

// clientHello is a TLS 1.2 ClientHello offering the common suites, with
// SNI when name is a host name.
func clientHello(name string) []byte {
	var body []byte
	body = append(body, 3, 3)
	rnd := make([]byte, 32)
	binary.BigEndian.PutUint64(rnd, uint64(time.Now().UnixNano()))
	body = append(body, rnd...)
	body = append(body, 0) // no session id
	suites := []uint16{0xc02f, 0xc030, 0xc02b, 0xc02c, 0xcca8, 0xcca9, 0xc013, 0xc014, 0xc009, 0xc00a, 0x009c, 0x009d, 0x002f, 0x0035, 0x000a}
	body = binary.BigEndian.AppendUint16(body, uint16(2*len(suites)))
	for _, c := range suites {
		body = binary.BigEndian.AppendUint16(body, c)
	}
	body = append(body, 1, 0) // compression: null
	var ext []byte
	if name != "" {
		if _, err := netip.ParseAddr(name); err != nil && len(name) < 256 {
			sni := []byte{0, 0, 0, 0, 0, 0, 0}
			binary.BigEndian.PutUint16(sni[0:], 0)
			binary.BigEndian.PutUint16(sni[2:], uint16(len(name)+5))
			binary.BigEndian.PutUint16(sni[4:], uint16(len(name)+3))
			sni[6] = 0
			sni = binary.BigEndian.AppendUint16(sni, uint16(len(name)))
			sni = append(sni, name...)
			ext = append(ext, sni...)
		}
	}
	ext = append(ext, 0, 10, 0, 8, 0, 6, 0, 29, 0, 23, 0, 24) // groups: x25519, P-256, P-384
	ext = append(ext, 0, 11, 0, 2, 1, 0)                      // point formats: uncompressed
	ext = append(ext, 0, 13, 0, 12, 0, 10, 4, 1, 5, 1, 8, 4, 4, 3, 2, 1)
	ext = append(ext, 0xff, 1, 0, 1, 0) // renegotiation_info
	body = binary.BigEndian.AppendUint16(body, uint16(len(ext)))
	body = append(body, ext...)
	msg := []byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	msg = append(msg, body...)
	rec := []byte{22, 3, 1, byte(len(msg) >> 8), byte(len(msg))}
	return append(rec, msg...)
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1.0"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	case 0x0300:
		return "SSLv3"
	}
	return fmt.Sprintf("0x%04x", v)
}
