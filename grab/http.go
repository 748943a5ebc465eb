package grab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vantagehq/vantage/record"
)

// HTTP: one GET / with a User-Agent that names the scanner, the response
// head kept in order, the title, a hash of the body, and on a kept-alive
// connection same-host redirects and the favicon. The client is our own:
// net/http's costs several times the CPU per grab and hides header order.
func init() {
	Register(Module{
		Name:  "http",
		Ports: []uint16{80, 81, 591, 2375, 3000, 5000, 5601, 7001, 8000, 8008, 8080, 8081, 8088, 8888, 9000, 9090, 9200},
		Rank:  10,
		Grab:  grabHTTP,
	})
}

const (
	httpMaxHead      = 64 << 10
	httpMaxBody      = 64 << 10
	httpMaxHeaders   = 128
	httpMaxRedirects = 3
)

// httpResponse is one parsed response.
type httpResponse struct {
	Status    int
	Proto     string
	Headers   [][2]string
	Head      []byte
	Body      []byte
	KeepAlive bool
}

func (r *httpResponse) header(name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

func grabHTTP(ctx context.Context, s *Session) (*Result, error) {
	host := httpHost(s.Target)
	path := "/"
	resp, err := httpRoundTrip(s, host, path)
	if err != nil {
		return nil, err
	}
	for hop := 0; hop < httpMaxRedirects && resp.Status/100 == 3 && resp.KeepAlive; hop++ {
		next, ok := sameHostPath(host, path, resp.header("Location"))
		if !ok {
			break
		}
		nr, err := httpRoundTrip(s, host, next)
		if err != nil {
			break
		}
		path, resp = next, nr
	}
	r := describeHTTP(resp)
	if path != "/" {
		r.Set("http.path", path)
	}
	if resp.KeepAlive && resp.Status == 200 && isHTML(resp) {
		if icon, err := httpRoundTrip(s, host, faviconPath(resp.Body, host)); err == nil && icon.Status == 200 && len(icon.Body) > 0 && !isHTML(icon) {
			r.HTTP.FaviconHash = FaviconHash(icon.Body)
		}
	}
	return r, nil
}

// describeHTTP turns a response into a Result; the http fields are also
// what fingerprint rules match on.
func describeHTTP(resp *httpResponse) *Result {
	r := &Result{Protocol: "http", Banner: resp.Head, HTTP: &record.HTTP{Status: resp.Status}}
	var hb strings.Builder
	for _, kv := range resp.Headers {
		r.HTTP.Headers = append(r.HTTP.Headers, record.Header{Name: kv[0], Value: kv[1]})
		hb.WriteString(kv[0])
		hb.WriteString(": ")
		hb.WriteString(kv[1])
		hb.WriteByte('\n')
	}
	r.HTTP.Server = resp.header("Server")
	r.HTTP.Location = resp.header("Location")
	r.HTTP.Title = htmlTitle(resp.Body)
	if len(resp.Body) > 0 {
		sum := sha256.Sum256(resp.Body)
		r.HTTP.BodySHA256 = hex.EncodeToString(sum[:])
	}
	r.Match = map[string]string{
		"server":       r.HTTP.Server,
		"title":        r.HTTP.Title,
		"headers":      hb.String(),
		"body":         string(resp.Body),
		"x-powered-by": resp.header("X-Powered-By"),
	}
	return r
}

// httpRoundTrip sends one GET and reads one response.
func httpRoundTrip(s *Session, host, path string) (*httpResponse, error) {
	req := make([]byte, 0, 256)
	req = append(req, "GET "...)
	req = append(req, path...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, host...)
	req = append(req, "\r\nUser-Agent: "...)
	req = append(req, s.UserAgent...)
	req = append(req, "\r\nAccept: */*\r\nAccept-Encoding: identity\r\n\r\n"...)
	if err := s.Write(req); err != nil {
		return nil, err
	}
	first, err := s.Peek()
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(first, []byte("HTTP/")) && !bytes.HasPrefix([]byte("HTTP/"), first) {
		return nil, NotMine("reply to GET starts %q", clip(first, 16))
	}
	head, err := readHead(s)
	if err != nil {
		return nil, err
	}
	resp, err := parseHTTPHead(head)
	if err != nil {
		return nil, err
	}
	if err := readBody(s, resp); err != nil && len(resp.Body) == 0 && resp.bodyExpected() {
		// the head alone still identifies the service
		resp.KeepAlive = false
	}
	if plainToTLS(resp) {
		return nil, NotMine("plain HTTP sent to a TLS port")
	}
	return resp, nil
}

func readHead(s *Session) ([]byte, error) {
	// servers that end lines with a bare LF exist; accept both
	for {
		buf, err := s.Peek()
		if err != nil {
			return nil, err
		}
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return s.ReadFull(i + 4)
		}
		if i := bytes.Index(buf, []byte("\n\n")); i >= 0 {
			return s.ReadFull(i + 2)
		}
		if len(buf) >= httpMaxHead {
			// an endless head is still an HTTP server's: keep the start
			return s.ReadFull(httpMaxHead)
		}
		if err := s.fill(); err != nil {
			// a head cut off by the close still says who answered
			if len(s.buf) > 0 {
				return s.ReadFull(len(s.buf))
			}
			return nil, err
		}
	}
}

// parseHTTPHead parses a status line and headers. It is lenient about
// what real servers send (bare LF, missing reason, folded lines) and
// strict only where a bound is at stake.
func parseHTTPHead(head []byte) (*httpResponse, error) {
	resp := &httpResponse{Head: head}
	text := string(head)
	line, rest, _ := strings.Cut(text, "\n")
	line = strings.TrimRight(line, "\r")
	proto, status, ok := strings.Cut(line, " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/") {
		return nil, NotMine("status line %q", clip([]byte(line), 40))
	}
	code, _, _ := strings.Cut(strings.TrimLeft(status, " "), " ")
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 || n > 999 {
		return nil, NotMine("status code %q", code)
	}
	resp.Status, resp.Proto = n, proto
	for len(rest) > 0 && len(resp.Headers) < httpMaxHeaders {
		line, rest, _ = strings.Cut(rest, "\n")
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(resp.Headers) > 0 {
			resp.Headers[len(resp.Headers)-1][1] += " " + strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		resp.Headers = append(resp.Headers, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	conn := strings.ToLower(resp.header("Connection"))
	resp.KeepAlive = proto == "HTTP/1.1" && !strings.Contains(conn, "close") || strings.Contains(conn, "keep-alive")
	return resp, nil
}

func (r *httpResponse) bodyExpected() bool {
	return r.Status >= 200 && r.Status != 204 && r.Status != 304
}

// readBody reads up to httpMaxBody bytes of the body. When the body is
// longer than that the connection cannot be reused.
func readBody(s *Session, r *httpResponse) error {
	if !r.bodyExpected() {
		return nil
	}
	te := strings.ToLower(r.header("Transfer-Encoding"))
	switch {
	case strings.Contains(te, "chunked"):
		return readChunked(s, r)
	case r.header("Content-Length") != "":
		n, err := strconv.ParseInt(r.header("Content-Length"), 10, 64)
		if err != nil || n < 0 {
			r.KeepAlive = false
			return fmt.Errorf("bad Content-Length %q", r.header("Content-Length"))
		}
		if n > httpMaxBody {
			r.KeepAlive = false
			n = httpMaxBody
		}
		b, err := s.ReadFull(int(n))
		if err != nil {
			r.Body = bytes.Clone(s.buf)
			r.KeepAlive = false
			return err
		}
		r.Body = b
		return nil
	}
	// delimited by the close
	r.KeepAlive = false
	b, err := s.ReadFor(time.Until(s.Deadline()), httpMaxBody)
	r.Body = b[:min(len(b), httpMaxBody)]
	return err
}

func readChunked(s *Session, r *httpResponse) error {
	for i := 0; i < 1024; i++ {
		line, err := s.ReadLine(1024)
		if err != nil {
			r.KeepAlive = false
			return err
		}
		sizeText, _, _ := strings.Cut(line, ";")
		size, err := strconv.ParseUint(strings.TrimSpace(sizeText), 16, 31)
		if err != nil {
			r.KeepAlive = false
			return fmt.Errorf("bad chunk size %q", clip([]byte(line), 20))
		}
		if size == 0 {
			// trailers, then the blank line
			for j := 0; j < 64; j++ {
				if l, err := s.ReadLine(1024); err != nil || l == "" {
					return err
				}
			}
			r.KeepAlive = false
			return nil
		}
		if len(r.Body)+int(size) > httpMaxBody {
			take := httpMaxBody - len(r.Body)
			b, _ := s.ReadFull(take)
			r.Body = append(r.Body, b...)
			r.KeepAlive = false
			return nil
		}
		b, err := s.ReadFull(int(size))
		if err != nil {
			r.KeepAlive = false
			return err
		}
		r.Body = append(r.Body, b...)
		if _, err := s.ReadLine(16); err != nil {
			r.KeepAlive = false
			return err
		}
	}
	r.KeepAlive = false
	return nil
}

// plainToTLS recognises the answer of a TLS server's HTTP layer to a
// plain request (nginx: "The plain HTTP request was sent to HTTPS port"),
// so the grabber goes on to the TLS module instead of stopping here.
func plainToTLS(r *httpResponse) bool {
	if r.Status != 400 {
		return false
	}
	b := bytes.ToLower(clip(r.Body, 4096))
	return bytes.Contains(b, []byte("https port")) || bytes.Contains(b, []byte("speaking plain http to an ssl")) ||
		bytes.Contains(b, []byte("use the https scheme"))
}

func isHTML(r *httpResponse) bool {
	ct := strings.ToLower(r.header("Content-Type"))
	if ct != "" {
		return strings.Contains(ct, "html")
	}
	b := bytes.ToLower(clip(bytes.TrimSpace(r.Body), 64))
	return bytes.HasPrefix(b, []byte("<!doctype html")) || bytes.HasPrefix(b, []byte("<html"))
}

// htmlTitle returns the text of the first <title>, unescaped, whitespace
// collapsed, at most 256 bytes.
func htmlTitle(body []byte) string {
	lower := bytes.ToLower(clip(body, httpMaxBody))
	i := bytes.Index(lower, []byte("<title"))
	if i < 0 {
		return ""
	}
	j := bytes.IndexByte(lower[i:], '>')
	if j < 0 {
		return ""
	}
	start := i + j + 1
	end := bytes.Index(lower[start:], []byte("</title"))
	if end < 0 {
		end = min(len(lower)-start, 1024)
	}
	t := strings.Join(strings.Fields(html.UnescapeString(string(body[start:start+end]))), " ")
	if len(t) > 256 {
		t = strings.ToValidUTF8(t[:256], "")
	}
	return t
}

// faviconPath is the icon the page links to when it is on the same host,
// or /favicon.ico.
func faviconPath(body []byte, host string) string {
	lower := bytes.ToLower(clip(body, httpMaxBody))
	for off := 0; off < len(lower); {
		i := bytes.Index(lower[off:], []byte("<link"))
		if i < 0 {
			break
		}
		start := off + i
		end := bytes.IndexByte(lower[start:], '>')
		if end < 0 {
			break
		}
		tag := string(body[start : start+end])
		off = start + end
		if !strings.Contains(strings.ToLower(tag), "icon") {
			continue
		}
		if href := attr(tag, "href"); href != "" {
			if p, ok := sameHostPath(host, "/", html.UnescapeString(href)); ok {
				return p
			}
		}
	}
	return "/favicon.ico"
}

func attr(tag, name string) string {
	lower := strings.ToLower(tag)
	i := strings.Index(lower, name+"=")
	if i < 0 {
		return ""
	}
	v := tag[i+len(name)+1:]
	if v == "" {
		return ""
	}
	if q := v[0]; q == '"' || q == '\'' {
		if j := strings.IndexByte(v[1:], q); j >= 0 {
			return v[1 : j+1]
		}
		return ""
	}
	if j := strings.IndexAny(v, " \t>"); j >= 0 {
		return v[:j]
	}
	return v
}

// sameHostPath resolves location against the current path and returns
// the new path when it stays on host (same scheme is not checked: a
// redirect to https on the same host ends the chain).
func sameHostPath(host, path, location string) (string, bool) {
	base := &url.URL{Scheme: "http", Host: host, Path: path}
	u, err := url.Parse(strings.TrimSpace(location))
	if err != nil {
		return "", false
	}
	abs := base.ResolveReference(u)
	if abs.Scheme != "http" || !strings.EqualFold(abs.Host, host) {
		return "", false
	}
	p := abs.EscapedPath()
	if p == "" {
		p = "/"
	}
	if abs.RawQuery != "" {
		p += "?" + abs.RawQuery
	}
	if len(p) > 1024 || strings.ContainsAny(p, " \r\n") {
		return "", false
	}
	return p, true
}

// httpHost is the Host header: the known name, or the address, with the
// port unless it is the scheme's default.
func httpHost(t Target) string {
	h := t.Name
	if h == "" {
		a := t.Addr.Addr()
		if a.Is6() && !a.Is4In6() {
			h = "[" + a.String() + "]"
		} else {
			h = a.Unmap().String()
		}
	}
	if p := t.Addr.Port(); p != 80 && p != 443 {
		h = net.JoinHostPort(strings.Trim(h, "[]"), strconv.Itoa(int(p)))
	}
	return h
}

// FaviconHash is the hash Shodan popularised for favicons: MurmurHash3
// (x86, 32-bit, seed 0) of the icon's base64 text with a newline after
// every 76 characters and at the end, as a signed integer.
func FaviconHash(icon []byte) int32 {
	enc := base64.StdEncoding.EncodeToString(icon)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteByte('\n')
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteByte('\n')
	return int32(murmur3([]byte(b.String()), 0))
}

func murmur3(data []byte, seed uint32) uint32 {
	const c1, c2 = 0xcc9e2d51, 0x1b873593
	h := seed
	n := len(data) / 4
	for i := 0; i < n; i++ {
		k := uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24
		k *= c1
		k = k<<15 | k>>17
		k *= c2
		h ^= k
		h = h<<13 | h>>19
		h = h*5 + 0xe6546b64
	}
	tail := data[4*n:]
	var k uint32
	switch len(tail) {
	case 3:
		k ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(tail[0])
		k *= c1
		k = k<<15 | k>>17
		k *= c2
		h ^= k
	}
	h ^= uint32(len(data))
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
