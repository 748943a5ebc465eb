package respond

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/vantagehq/vantage/record"
)

// SIP (RFC 3261) over TCP, and the shared request handling for UDP:
// records the method, Request-URI and User-Agent (and the digest username
// when a client answers our challenge), answers OPTIONS with 200, REGISTER
// and INVITE with a 401 digest challenge (a second attempt with
// credentials gets 403), anything else with 405.
func init() {
	Register(&Responder{Name: "sip", Detect: detectSIP, Serve: serveSIP})
}

var sipMethods = []string{"OPTIONS", "REGISTER", "INVITE", "ACK", "BYE", "CANCEL",
	"SUBSCRIBE", "NOTIFY", "MESSAGE", "INFO", "PRACK", "UPDATE", "REFER", "PUBLISH"}

func detectSIP(b []byte) bool {
	for _, m := range sipMethods {
		if len(b) > len(m) && string(b[:len(m)]) == m && b[len(m)] == ' ' {
			rest := b[len(m)+1:]
			return hasPrefixFold(rest, "sip:") || hasPrefixFold(rest, "sips:") || hasPrefixFold(rest, "tel:")
		}
	}
	return false
}

// sipCompact maps RFC 3261 7.3.3 compact header names.
var sipCompact = map[string]string{"v": "Via", "f": "From", "t": "To", "i": "Call-ID",
	"l": "Content-Length", "m": "Contact", "c": "Content-Type", "k": "Supported"}

func sipGet(r *httpRequest, name string) []string {
	var out []string
	for _, h := range r.Headers {
		n := h.Name
		if full, ok := sipCompact[strings.ToLower(n)]; ok && len(n) == 1 {
			n = full
		}
		if strings.EqualFold(n, name) {
			out = append(out, h.Value)
		}
	}
	return out
}

func sipFirst(r *httpRequest, name string) string {
	if v := sipGet(r, name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// sipRecord fills ev from a request.
func sipRecord(req *httpRequest, ev *record.Event) {
	if ev.HTTPMethod == "" {
		ev.HTTPMethod = clean(req.Method, 32)
		ev.HTTPPath = clean(req.Target, 512)
		ev.UserAgent = clean(sipFirst(req, "User-Agent"), 512)
	}
	if a := sipFirst(req, "Authorization"); a != "" && ev.Username == "" {
		ev.Username = clean(digestParam(a, "username"), 128)
	}
}

// digestParam returns a parameter of a Digest credentials header.
func digestParam(h, name string) string {
	for _, part := range strings.Split(h, ",") {
		part = strings.TrimSpace(part)
		if i := strings.IndexByte(part, ' '); i >= 0 && strings.EqualFold(part[:i], "digest") {
			part = strings.TrimSpace(part[i+1:])
		}
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// sipResponse answers req. short leaves out optional headers (for UDP,
// where the reply must not outgrow the request).
func sipResponse(req *httpRequest, short bool) []byte {
	code, reason := 405, "Method Not Allowed"
	var extra []string
	switch req.Method {
	case "OPTIONS":
		code, reason = 200, "OK"
		extra = []string{"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REGISTER", "Accept: application/sdp"}
	case "REGISTER", "INVITE":
		if sipFirst(req, "Authorization") != "" || sipFirst(req, "Proxy-Authorization") != "" {
			code, reason = 403, "Forbidden"
		} else {
			code, reason = 401, "Unauthorized"
			nonce := make([]byte, 8)
			rand.Read(nonce)
			extra = []string{fmt.Sprintf(`WWW-Authenticate: Digest algorithm=MD5, realm="sip", nonce="%s"`, hex.EncodeToString(nonce))}
		}
	case "ACK":
		return nil // never answered
	default:
		extra = []string{"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REGISTER"}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, v := range sipGet(req, "Via") {
		fmt.Fprintf(&b, "Via: %s\r\n", v)
	}
	fmt.Fprintf(&b, "From: %s\r\n", sipFirst(req, "From"))
	to := sipFirst(req, "To")
	if !strings.Contains(strings.ToLower(to), ";tag=") {
		tag := make([]byte, 4)
		rand.Read(tag)
		to += ";tag=" + hex.EncodeToString(tag)
	}
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", sipFirst(req, "Call-ID"))
	fmt.Fprintf(&b, "CSeq: %s\r\n", sipFirst(req, "CSeq"))
	if !short || code == 401 {
		for _, e := range extra {
			if short && strings.HasPrefix(e, "Allow") {
				continue
			}
			b.WriteString(e + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}

func serveSIP(ctx context.Context, c *Conn, ev *record.Event) error {
	for round := 0; round < c.Lim.MaxRounds; round++ {
		req, err := readHead(c)
		if req == nil {
			if round > 0 && (isTimeout(err)) {
				return nil
			}
			return err
		}
		sipRecord(req, ev)
		if err != nil {
			return err
		}
		if cl := sipFirst(req, "Content-Length"); cl != "" {
			req.Headers = append(req.Headers, record.Header{Name: "Content-Length", Value: cl})
		}
		if err := readBody(c, req); err != nil {
			return err
		}
		if resp := sipResponse(req, false); resp != nil {
			if err := c.Write(resp); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseSIPPacket parses a request in one datagram.
func parseSIPPacket(p []byte) (*httpRequest, error) {
	head, _, _ := bytes.Cut(p, []byte("\r\n\r\n"))
	lines := bytes.Split(head, []byte("\n"))
	if len(lines) == 0 || len(lines) > maxHeaders {
		return nil, errBadRequest
	}
	m, t, v, err := parseRequestLine(bytes.TrimRight(lines[0], "\r"))
	if err != nil || !strings.HasPrefix(v, "SIP/") {
		return nil, errBadRequest
	}
	req := &httpRequest{Method: m, Target: t, Version: v}
	for _, l := range lines[1:] {
		l = bytes.TrimRight(l, "\r")
		if len(l) == 0 {
			break
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		req.Headers = append(req.Headers, record.Header{Name: string(bytes.TrimSpace(name)), Value: string(bytes.TrimSpace(value))})
	}
	return req, nil
}

// handleSIPPacket records a SIP datagram and returns a reply no larger
// than it (nil when it would be larger, or for anything but a request).
func handleSIPPacket(p []byte, ev *record.Event) []byte {
	req, err := parseSIPPacket(p)
	if err != nil {
		return nil
	}
	sipRecord(req, ev)
	if sipFirst(req, "Via") == "" || sipFirst(req, "Call-ID") == "" {
		return nil
	}
	resp := sipResponse(req, true)
	if len(resp) > len(p) {
		return nil
	}
	return resp
}
