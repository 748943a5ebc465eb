// Package respond holds the low-interaction responders of a sensor: each
// speaks just enough of one protocol to draw the client's next message out
// and records what the client sent into a record.Event. Nothing received is
// ever executed, nothing is ever connected to, every read is bounded (a
// per-connection deadline, a byte cap, per-message bounds) and no responder
// starts a goroutine.
//
// TCP: Handle picks a responder by the original destination port for
// server-first protocols (SSH on 22/2222, Telnet on 23/2323), otherwise by
// the client's first bytes (HTTP, TLS, RDP, SMB, Redis, SIP), falling back
// to a silent responder that records the first bytes and never answers.
// UDP: HandlePacket answers SIP OPTIONS and DNS queries (always REFUSED,
// never larger than the query) and records everything else silently.
//
// Where things land in record.Event:
//
//	Payload     the first bytes the client sent (bounded by Limits.MaxPayload)
//	HTTPMethod  HTTP and SIP request method; DNS query type ("A", "ANY", "TYPE65")
//	HTTPPath    HTTP request target; SIP Request-URI; DNS query name
//	UserAgent   HTTP and SIP User-Agent; the SSH client's version line
//	SNI         TLS server_name; the HTTP Host header
//	JA3         MD5 of the TLS ClientHello's JA3 string (TLS, and RDP clients that go on to TLS)
//	HASSH       HASSH of the SSH client's KEXINIT
//	Username    Telnet login, Redis AUTH user, RDP mstshash cookie, SIP digest username
//	Password    Telnet password, Redis AUTH password
//
// Details without a field of their own (TLS ALPN, the full JA3 and HASSH
// strings, RDP requested protocols, SMB dialects, Redis command names, ...)
// are returned as Info.Facts by HandleInfo; the raw bytes are in Payload.
package respond

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vantagehq/vantage/record"
)

// Limits bound one connection. Zero values take the defaults in brackets.
type Limits struct {
	Deadline   time.Duration // whole connection, first byte to close [10s]
	FirstWait  time.Duration // wait for the client's first bytes when detecting [2s]
	MaxRead    int           // bytes read from the client, overall [64 KiB]
	MaxPayload int           // bytes kept in Event.Payload [4 KiB]
	MaxLine    int           // one line (request line, header, prompt answer) [8 KiB]
	MaxMessage int           // one message (header block, TLS handshake, SSH packet, RESP value) [32 KiB]
	MaxRounds  int           // requests, commands or login attempts per connection [8]
}

// DefaultLimits are the bounds used for zero fields.
var DefaultLimits = Limits{
	Deadline:   10 * time.Second,
	FirstWait:  2 * time.Second,
	MaxRead:    64 << 10,
	MaxPayload: 4 << 10,
	MaxLine:    8 << 10,
	MaxMessage: 32 << 10,
	MaxRounds:  8,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.Deadline > 0 {
		d.Deadline = l.Deadline
	}
	if l.FirstWait > 0 {
		d.FirstWait = l.FirstWait
	}
	if l.MaxRead > 0 {
		d.MaxRead = l.MaxRead
	}
	if l.MaxPayload > 0 {
		d.MaxPayload = l.MaxPayload
	}
	if l.MaxLine > 0 {
		d.MaxLine = l.MaxLine
	}
	if l.MaxMessage > 0 {
		d.MaxMessage = l.MaxMessage
	}
	if l.MaxRounds > 0 {
		d.MaxRounds = l.MaxRounds
	}
	return d
}

// Responder speaks one protocol.
type Responder struct {
	Name string
	// Ports are the ports where the protocol is chosen without waiting for
	// the client (only for ServerFirst responders).
	Ports       []uint16
	ServerFirst bool
	// Detect reports whether the client's first bytes belong to this
	// protocol. It must not claim a prefix that could still become
	// another protocol's: Handle waits for more bytes when none claims.
	Detect func(first []byte) bool
	// Serve talks to the client and fills ev. The first bytes are still
	// unread in c.
	Serve func(ctx context.Context, c *Conn, ev *record.Event) error
}

var (
	regMu    sync.RWMutex
	registry []*Responder
	byName   = map[string]*Responder{}
	byPort   = map[uint16]*Responder{}
)

// Register adds r; responders register in init. It panics on a duplicate
// name or port, a programming error.
func Register(r *Responder) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := byName[r.Name]; dup {
		panic("respond: duplicate responder " + r.Name)
	}
	byName[r.Name] = r
	registry = append(registry, r)
	sort.Slice(registry, func(i, j int) bool { return registry[i].Name < registry[j].Name })
	if r.ServerFirst {
		for _, p := range r.Ports {
			if o, dup := byPort[p]; dup {
				panic("respond: port claimed by " + o.Name + " and " + r.Name)
			}
			byPort[p] = r
		}
	}
}

// Lookup returns the responder called name, or nil.
func Lookup(name string) *Responder {
	regMu.RLock()
	defer regMu.RUnlock()
	return byName[name]
}

// Names lists the registered responders.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	var out []string
	for _, r := range registry {
		out = append(out, r.Name)
	}
	return out
}

// ForPort returns the server-first responder that owns port, or nil.
func ForPort(port uint16) *Responder {
	regMu.RLock()
	defer regMu.RUnlock()
	return byPort[port]
}

// Detect returns the responder whose Detect claims first, or nil.
func Detect(first []byte) *Responder {
	regMu.RLock()
	defer regMu.RUnlock()
	for _, r := range registry {
		if r.Detect != nil && r.Detect(first) {
			return r
		}
	}
	return nil
}

// detectMax is how many first bytes Handle waits for at most before it
// gives up detecting.
const detectMax = 24

// ErrLimit is returned when a client sent more than a bound allows.
var ErrLimit = errors.New("respond: limit reached")

// Info is what HandleInfo learnt beyond the Event's fields.
type Info struct {
	Protocol string            // the responder that served the connection
	Facts    map[string]string // details without an Event field ("tls.alpn", "smb.dialects", ...)
}

// Handle serves one accepted connection: it picks a responder and lets it
// fill ev. It matches the sensor's Handler signature once lim is bound
// (see Handler). The returned error says why the conversation ended early
// and is informational: ev holds what was learnt either way. Handle does
// not close conn.
func Handle(ctx context.Context, conn net.Conn, origDstPort uint16, ev *record.Event, lim Limits) error {
	_, err := HandleInfo(ctx, conn, origDstPort, ev, lim)
	return err
}

// Handler returns Handle with lim bound, in the sensor's Handler shape.
func Handler(lim Limits) func(ctx context.Context, conn net.Conn, origDstPort uint16, ev *record.Event) error {
	return func(ctx context.Context, conn net.Conn, origDstPort uint16, ev *record.Event) error {
		return Handle(ctx, conn, origDstPort, ev, lim)
	}
}

// HandleInfo is Handle that also returns the responder's name and facts.
func HandleInfo(ctx context.Context, conn net.Conn, origDstPort uint16, ev *record.Event, lim Limits) (Info, error) {
	lim = lim.withDefaults()
	deadline := time.Now().Add(lim.Deadline)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	// Cancellation reaches a blocked read through the deadline; AfterFunc
	// runs only when ctx ends, not per connection.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if ev.Transport == "" {
		ev.Transport = "tcp"
	}
	if ev.DstPort == 0 {
		ev.DstPort = origDstPort
	}
	c := newConn(conn, ev, lim, deadline)
	r := ForPort(origDstPort)
	if r == nil {
		r = c.detect(Lookup("silent"))
	}
	err := r.Serve(ctx, c, ev)
	info := Info{Protocol: r.Name, Facts: c.facts}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return info, err
}

// Conn is a client connection as a responder sees it: reads are buffered,
// counted against the byte cap and copied into Event.Payload up to its
// bound; the deadline is already set.
type Conn struct {
	nc       net.Conn
	r        *bufio.Reader
	cr       *capReader
	Lim      Limits
	deadline time.Time
	facts    map[string]string
}

type capReader struct {
	nc         net.Conn
	n, max     int
	ev         *record.Event
	maxPayload int
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n >= c.max {
		return 0, ErrLimit
	}
	if len(p) > c.max-c.n {
		p = p[:c.max-c.n]
	}
	n, err := c.nc.Read(p)
	c.n += n
	if room := c.maxPayload - len(c.ev.Payload); room > 0 && n > 0 {
		c.ev.Payload = append(c.ev.Payload, p[:min(n, room)]...)
	}
	return n, err
}

func newConn(nc net.Conn, ev *record.Event, lim Limits, deadline time.Time) *Conn {
	cr := &capReader{nc: nc, max: lim.MaxRead, ev: ev, maxPayload: lim.MaxPayload}
	return &Conn{nc: nc, cr: cr, r: bufio.NewReaderSize(cr, 4096), Lim: lim, deadline: deadline}
}

// detect waits for the first bytes (up to FirstWait) and returns the
// responder that claims them, or fallback.
func (c *Conn) detect(fallback *Responder) *Responder {
	first := time.Now().Add(c.Lim.FirstWait)
	if first.After(c.deadline) {
		first = c.deadline
	}
	c.nc.SetReadDeadline(first)
	defer c.nc.SetReadDeadline(c.deadline)
	want := 1
	for {
		b, err := c.r.Peek(want)
		if len(b) > 0 {
			if r := Detect(b); r != nil {
				return r
			}
		}
		if err != nil || len(b) >= detectMax {
			return fallback
		}
		want = len(b) + 1
	}
}

// Read reads from the client (buffered, capped, recorded).
func (c *Conn) Read(p []byte) (int, error) { return c.r.Read(p) }

// ReadByte reads one byte.
func (c *Conn) ReadByte() (byte, error) { return c.r.ReadByte() }

// Peek returns the next n bytes without consuming them.
func (c *Conn) Peek(n int) ([]byte, error) { return c.r.Peek(n) }

// Buffered returns the bytes already read and not yet consumed.
func (c *Conn) Buffered() []byte {
	b, _ := c.r.Peek(c.r.Buffered())
	return b
}

// ReadFull reads exactly n bytes; n beyond MaxMessage is refused unread.
func (c *Conn) ReadFull(n int) ([]byte, error) {
	if n < 0 || n > c.Lim.MaxMessage {
		return nil, ErrLimit
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c.r, b)
	return b, err
}

// Discard skips n bytes.
func (c *Conn) Discard(n int) error {
	_, err := c.r.Discard(n)
	return err
}

// ReadLine reads up to and without the next LF (and a CR before it). A
// line longer than max (MaxLine when max <= 0) ends with ErrLimit.
func (c *Conn) ReadLine(max int) ([]byte, error) {
	if max <= 0 || max > c.Lim.MaxLine {
		max = c.Lim.MaxLine
	}
	var line []byte
	for {
		b, err := c.r.ReadSlice('\n')
		if len(line)+len(b) > max+2 {
			return line, ErrLimit
		}
		line = append(line, b...)
		if err == nil {
			line = line[:len(line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, nil
		}
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

// Write sends b to the client.
func (c *Conn) Write(b []byte) error {
	_, err := c.nc.Write(b)
	return err
}

// WaitRead sets a shorter read deadline (bounded by the connection's) for
// an optional next message; Restore ends it.
func (c *Conn) WaitRead(d time.Duration) {
	t := time.Now().Add(d)
	if t.After(c.deadline) {
		t = c.deadline
	}
	c.nc.SetReadDeadline(t)
}

// Restore puts the connection's deadline back after WaitRead.
func (c *Conn) Restore() { c.nc.SetReadDeadline(c.deadline) }

// Fact records a detail that has no Event field.
func (c *Conn) Fact(key, value string) {
	if c.facts == nil {
		c.facts = map[string]string{}
	}
	c.facts[key] = clean(value, 1024)
}

// Facts returns the facts recorded so far.
func (c *Conn) Facts() map[string]string { return c.facts }

// clean makes s fit for a string field: valid UTF-8, no NULs, at most max
// bytes.
func clean(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return s
}

// isTimeout reports whether err is a deadline.
func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}
