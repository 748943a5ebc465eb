package respond

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/vantagehq/vantage/record"
)

// HTTP (RFC 9112): parses request lines and headers, reads bodies up to
// the caps, answers a plain page (200 for "/", 404 otherwise) with a
// neutral Server header, and serves a few pipelined or keep-alive requests.
// The first request's method, target, User-Agent and Host are recorded.
// It never proxies: absolute targets and CONNECT get a 404/405 like any
// other path.
func init() {
	Register(&Responder{Name: "http", Detect: detectHTTP, Serve: serveHTTP})
}

var httpMethods = []string{"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT",
	"TRACE", "PATCH", "PROPFIND", "PRI", "SEARCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "DEBUG"}

func detectHTTP(b []byte) bool {
	for _, m := range httpMethods {
		if len(b) > len(m) && string(b[:len(m)]) == m && b[len(m)] == ' ' {
			rest := b[len(m)+1:]
			// "OPTIONS sip:..." and "REGISTER sip:" are SIP's.
			for _, p := range []string{"sip:", "sips:"} {
				if len(rest) < len(p) && strings.HasPrefix(p, strings.ToLower(string(rest))) {
					return false // could still be either
				}
				if hasPrefixFold(rest, p) {
					return false
				}
			}
			return true
		}
	}
	return false
}

func hasPrefixFold(b []byte, p string) bool {
	return len(b) >= len(p) && strings.EqualFold(string(b[:len(p)]), p)
}

// httpRequest is one parsed request head.
type httpRequest struct {
	Method, Target, Version string
	Headers                 []record.Header
}

func (r *httpRequest) get(name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

var errBadRequest = errors.New("respond: malformed request")

const maxHeaders = 100

// parseRequestLine splits "METHOD SP target SP version".
func parseRequestLine(line []byte) (method, target, version string, err error) {
	parts := bytes.Split(line, []byte(" "))
	if len(parts) != 3 || len(parts[0]) == 0 || len(parts[1]) == 0 || len(parts[0]) > 32 {
		return "", "", "", errBadRequest
	}
	for _, c := range parts[0] {
		if c < 'A' || c > 'Z' && c < 'a' || c > 'z' {
			if c != '-' && c != '_' {
				return "", "", "", errBadRequest
			}
		}
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), nil
}

// readHead reads a request line and headers (HTTP and SIP share it). The
// whole head is bounded by MaxMessage and maxHeaders lines.
func readHead(c *Conn) (*httpRequest, error) {
	var line []byte
	var err error
	// RFC 9112 2.2: ignore at least one empty line before the request line.
	for i := 0; i < 4; i++ {
		if line, err = c.ReadLine(0); err != nil || len(line) > 0 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	m, t, v, err := parseRequestLine(line)
	if err != nil {
		return nil, err
	}
	req := &httpRequest{Method: m, Target: t, Version: v}
	total := len(line)
	for {
		h, err := c.ReadLine(0)
		if err != nil {
			return req, err
		}
		if len(h) == 0 {
			return req, nil
		}
		total += len(h)
		if total > c.Lim.MaxMessage || len(req.Headers) >= maxHeaders {
			return req, ErrLimit
		}
		if (h[0] == ' ' || h[0] == '\t') && len(req.Headers) > 0 { // obsolete folding
			last := &req.Headers[len(req.Headers)-1]
			last.Value += " " + string(bytes.TrimSpace(h))
			continue
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok || len(name) == 0 {
			return req, errBadRequest
		}
		req.Headers = append(req.Headers, record.Header{
			Name:  string(bytes.TrimSpace(name)),
			Value: string(bytes.TrimSpace(value)),
		})
	}
}

// readBody skips the request body, bounded by the byte cap.
func readBody(c *Conn, req *httpRequest) error {
	if te := req.get("Transfer-Encoding"); te != "" && strings.Contains(strings.ToLower(te), "chunked") {
		return readChunked(c)
	}
	cl := req.get("Content-Length")
	if cl == "" {
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(cl), 10, 64)
	if err != nil || n < 0 {
		return errBadRequest
	}
	if n > int64(c.Lim.MaxRead) {
		// Read what the cap allows, then give up.
		n = int64(c.Lim.MaxRead)
	}
	return c.Discard(int(n))
}

func readChunked(c *Conn) error {
	for i := 0; ; i++ {
		if i > 4096 {
			return ErrLimit
		}
		line, err := c.ReadLine(256)
		if err != nil {
			return err
		}
		sz, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseUint(string(bytes.TrimSpace(sz)), 16, 32)
		if err != nil {
			return errBadRequest
		}
		if n == 0 {
			for j := 0; j < maxHeaders; j++ { // trailers
				t, err := c.ReadLine(0)
				if err != nil || len(t) == 0 {
					return err
				}
			}
			return ErrLimit
		}
		if n > uint64(c.Lim.MaxRead) {
			n = uint64(c.Lim.MaxRead)
		}
		if err := c.Discard(int(n)); err != nil {
			return err
		}
		if _, err := c.ReadLine(2); err != nil {
			return err
		}
	}
}

const httpPage = `<!DOCTYPE html>
<html>
<head><title>Welcome</title></head>
<body>
<h1>It works!</h1>
</body>
</html>
`

const httpNotFound = `<html>
<head><title>404 Not Found</title></head>
<body>
<center><h1>404 Not Found</h1></center>
</body>
</html>
`

func httpResponse(status int, reason, body string, head, keep bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, reason)
	fmt.Fprintf(&b, "Server: nginx\r\nDate: %s\r\n", time.Now().UTC().Format(timeFormatHTTP))
	fmt.Fprintf(&b, "Content-Type: text/html\r\nContent-Length: %d\r\n", len(body))
	if keep {
		b.WriteString("Connection: keep-alive\r\n\r\n")
	} else {
		b.WriteString("Connection: close\r\n\r\n")
	}
	if !head {
		b.WriteString(body)
	}
	return b.Bytes()
}

const timeFormatHTTP = "Mon, 02 Jan 2006 15:04:05 GMT"

func serveHTTP(ctx context.Context, c *Conn, ev *record.Event) error {
	for round := 0; round < c.Lim.MaxRounds; round++ {
		req, err := readHead(c)
		if req == nil {
			if errors.Is(err, errBadRequest) {
				c.Write(httpResponse(400, "Bad Request", "", false, false))
			}
			if round > 0 && (isTimeout(err) || errors.Is(err, io.EOF)) {
				return nil
			}
			return err
		}
		if round == 0 {
			ev.HTTPMethod = clean(req.Method, 32)
			ev.HTTPPath = clean(req.Target, 2048)
			ev.UserAgent = clean(req.get("User-Agent"), 512)
			ev.SNI = clean(req.get("Host"), 255)
		}
		c.Fact(fmt.Sprintf("http.request.%d", round), req.Method+" "+req.Target)
		if err != nil {
			if errors.Is(err, errBadRequest) || errors.Is(err, ErrLimit) {
				c.Write(httpResponse(400, "Bad Request", "", false, false))
			}
			return err
		}
		bodyErr := readBody(c, req)
		keep := bodyErr == nil && round+1 < c.Lim.MaxRounds && keepAlive(req)
		head := req.Method == "HEAD"
		var resp []byte
		switch {
		case req.Method == "CONNECT" || req.Method == "PRI":
			resp = httpResponse(405, "Not Allowed", httpNotFound, false, false)
			keep = false
		case req.Target == "/" || req.Target == "/index.html":
			resp = httpResponse(200, "OK", httpPage, head, keep)
		default:
			resp = httpResponse(404, "Not Found", httpNotFound, head, keep)
		}
		if err := c.Write(resp); err != nil {
			return err
		}
		if bodyErr != nil {
			return bodyErr
		}
		if !keep {
			return nil
		}
	}
	return nil
}

func keepAlive(r *httpRequest) bool {
	conn := strings.ToLower(r.get("Connection"))
	if strings.Contains(conn, "close") {
		return false
	}
	if r.Version == "HTTP/1.0" {
		return strings.Contains(conn, "keep-alive")
	}
	return r.Version == "HTTP/1.1"
}
