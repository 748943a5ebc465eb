package grab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// SIP (RFC 3261): an OPTIONS request, the method meant for asking a user
// agent or proxy what it supports, over UDP and over TCP. The response's
// Server (or User-Agent) header names the product for the fingerprint
// rules; Allow lists the methods it handles.
//
// Registered twice under the one name "sip": the UDP module ranks early
// among UDP probes (SIP on 5060/udp is common and answers an OPTIONS from
// anyone), the TCP one late among TCP probes.

func init() {
	Register(Module{
		Name:      "sip",
		Transport: "udp",
		Ports:     []uint16{5060},
		Rank:      30,
		Grab:      grabSIP,
	})
	Register(Module{
		Name:  "sip",
		Ports: []uint16{5060},
		Rank:  70,
		Grab:  grabSIP,
	})
}

const (
	sipMaxHead      = 16 << 10 // bytes of a response head over TCP
	sipMaxResponses = 3        // provisional (1xx) responses skipped before the final one
	sipMaxHeaders   = 100
	sipMaxBodySkip  = 64 << 10 // a provisional response's body skipped over TCP
)

// sipHeader is one header field, its name in canonical long form.
type sipHeader struct{ Name, Value string }

// sipResponse is a parsed response head.
type sipResponse struct {
	Code    int
	Reason  string
	Headers []sipHeader
	// HeadLen is the length of the head in the input, including the
	// blank line when there is one.
	HeadLen int
}

// Get returns the first value of the named header (case-insensitive).
func (r *sipResponse) Get(name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// sipCompact maps the compact header forms (RFC 3261 §7.3.3 and the
// extensions registered since) to their long names.
var sipCompact = map[string]string{
	"a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
	"e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact",
	"k": "Supported", "l": "Content-Length", "m": "Contact", "o": "Event",
	"r": "Refer-To", "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via",
	"x": "Session-Expires", "y": "Identity",
}

var errSIPStatus = errors.New("sip: no SIP/2.0 status line")

// parseSIPResponse parses the response head at the start of b: the
// status line and header fields up to the blank line (or the end of b,
// as for a datagram without one). Folded lines (leading whitespace) are
// joined to the field above them.
func parseSIPResponse(b []byte) (sipResponse, error) {
	var r sipResponse
	end := bytes.Index(b, []byte("\r\n\r\n"))
	head := b
	if end >= 0 {
		head = b[:end]
		r.HeadLen = end + 4
	} else {
		r.HeadLen = len(b)
	}
	line, rest, _ := bytes.Cut(head, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	if len(line) < 12 || !bytes.EqualFold(line[:8], []byte("SIP/2.0 ")) {
		return r, errSIPStatus
	}
	code, err := strconv.Atoi(string(line[8:11]))
	if err != nil || code < 100 || code > 699 || (len(line) > 11 && line[11] != ' ') {
		return r, fmt.Errorf("%w: status %q", errSIPStatus, clip(line, 40))
	}
	r.Code = code
	if len(line) > 12 {
		r.Reason = string(line[12:])
	}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if n := len(r.Headers); n > 0 {
				r.Headers[n-1].Value += " " + string(bytes.TrimSpace(line))
			}
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue // tolerate a stray line
		}
		if len(r.Headers) >= sipMaxHeaders {
			break
		}
		n := string(bytes.TrimSpace(name))
		if long, ok := sipCompact[strings.ToLower(n)]; ok {
			n = long
		}
		r.Headers = append(r.Headers, sipHeader{n, string(bytes.TrimSpace(value))})
	}
	return r, nil
}

// sipRequest builds the OPTIONS request. The addresses are the target's
// and our end of the connection.
func sipRequest(transport, userAgent string, target, local netip.AddrPort) []byte {
	var tok [16]byte
	rand.Read(tok[:])
	h := hex.EncodeToString(tok[:])
	branch, tag, callID := "z9hG4bK"+h[:16], h[16:24], h[:32]
	host := sipHost(target.Addr())
	if target.Port() != 5060 {
		host = net.JoinHostPort(target.Addr().String(), strconv.Itoa(int(target.Port())))
	}
	lhost := sipHost(local.Addr())
	lhp := net.JoinHostPort(local.Addr().String(), strconv.Itoa(int(local.Port())))
	var b bytes.Buffer
	fmt.Fprintf(&b, "OPTIONS sip:nm@%s SIP/2.0\r\n", host)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=%s;rport\r\n", strings.ToUpper(transport), lhp, branch)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "To: <sip:nm@%s>\r\n", host)
	fmt.Fprintf(&b, "From: <sip:nm@%s>;tag=%s\r\n", lhost, tag)
	fmt.Fprintf(&b, "Call-ID: %s@%s\r\n", callID, lhost)
	b.WriteString("CSeq: 42 OPTIONS\r\n")
	fmt.Fprintf(&b, "Contact: <sip:nm@%s;transport=%s>\r\n", lhp, transport)
	b.WriteString("Accept: application/sdp\r\n")
	fmt.Fprintf(&b, "User-Agent: %s\r\n", userAgent)
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}

func sipHost(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "[" + a.String() + "]"
	}
	return a.Unmap().String()
}

func grabSIP(ctx context.Context, s *Session) (*Result, error) {
	transport := s.Target.transport()
	local, _ := netip.ParseAddrPort(s.NetConn().LocalAddr().String())
	ua := s.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	if err := s.Write(sipRequest(transport, ua, s.Target.Addr, local)); err != nil {
		return nil, err
	}
	var (
		resp sipResponse
		head []byte
		err  error
	)
	for range sipMaxResponses {
		if transport == "udp" {
			resp, head, err = sipReadDatagram(s)
		} else {
			resp, head, err = sipReadStream(s)
		}
		if err != nil {
			return nil, err
		}
		if resp.Code >= 200 {
			break
		}
	}
	r := &Result{Protocol: "sip", Banner: head}
	r.Set("sip.status", strings.TrimSpace(strconv.Itoa(resp.Code)+" "+resp.Reason))
	r.Set("sip.allow", resp.Get("Allow"))
	r.Set("sip.supported", resp.Get("Supported"))
	r.Set("sip.server", resp.Get("Server"))
	r.Set("sip.user_agent", resp.Get("User-Agent"))
	server := resp.Get("Server")
	if server == "" {
		server = resp.Get("User-Agent")
	}
	if server != "" {
		r.Match = map[string]string{"server": server}
	}
	return r, nil
}

// sipReadDatagram reads one datagram: a whole SIP message.
func sipReadDatagram(s *Session) (sipResponse, []byte, error) {
	b, err := s.ReadFor(time.Until(s.Deadline()), 1)
	if err != nil {
		return sipResponse{}, nil, err
	}
	resp, err := parseSIPResponse(b)
	if err != nil {
		return resp, nil, NotMine("%v: %q", err, clip(b, 40))
	}
	return resp, b[:resp.HeadLen:resp.HeadLen], nil
}

// sipReadStream reads one response head from a stream, and skips the
// body of a provisional response so the next one can be read.
func sipReadStream(s *Session) (sipResponse, []byte, error) {
	pre, err := s.ReadFull(8)
	if err != nil {
		return sipResponse{}, nil, err
	}
	if !bytes.EqualFold(pre, []byte("SIP/2.0 ")) {
		return sipResponse{}, nil, NotMine("%v: %q", errSIPStatus, pre)
	}
	rest, err := s.ReadUntil([]byte("\r\n\r\n"), sipMaxHead)
	if err != nil {
		return sipResponse{}, nil, err
	}
	head := append(bytes.Clone(pre), rest...)
	resp, err := parseSIPResponse(head)
	if err != nil {
		return resp, nil, NotMine("%v", err)
	}
	if resp.Code < 200 {
		if n, _ := strconv.Atoi(resp.Get("Content-Length")); n > 0 {
			if n > sipMaxBodySkip {
				return resp, nil, fmt.Errorf("sip: %w: %d-byte body", ErrTooLarge, n)
			}
			if _, err := s.ReadFull(n); err != nil {
				return resp, nil, err
			}
		}
	}
	return resp, head, nil
}
