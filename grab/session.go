package grab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"
)

// Target is one service to grab.
type Target struct {
	Addr      netip.AddrPort
	Transport string // "tcp" (default) or "udp"
	// Name is a host name for the service when one is known: sent as TLS
	// SNI and HTTP Host.
	Name string
	// Protocol, when set, names the only module to try.
	Protocol string
}

func (t Target) transport() string {
	if t.Transport == "" {
		return "tcp"
	}
	return t.Transport
}

// Session is one connection as a module sees it: reads and writes bounded
// by the grabber's deadline and byte cap, and the bytes already received
// but not yet consumed.
type Session struct {
	Target Target
	// Greeting is what the server sent before we spoke (empty for
	// client-first protocols). The same bytes are still unread in the
	// session, so a module can parse them with ReadLine and friends.
	Greeting []byte
	// UserAgent is what HTTP-like modules send to name the scanner.
	UserAgent string

	conn     net.Conn
	raw      net.Conn // the socket under any TLS
	buf      []byte   // received, not yet consumed
	received int      // total bytes read on this connection
	max      int
	deadline time.Time
	first    []byte // the first bytes ever received, for unknown services
	inner    func(ctx context.Context, s *Session) (*Result, error)
	redial   func(ctx context.Context) (*Session, error)
}

func newSession(t Target, c net.Conn, max int, deadline time.Time) *Session {
	c.SetDeadline(deadline)
	return &Session{Target: t, conn: c, raw: c, max: max, deadline: deadline}
}

// Write sends p.
func (s *Session) Write(p []byte) error {
	_, err := s.conn.Write(p)
	return err
}

// fill reads once more from the connection into buf.
func (s *Session) fill() error {
	if s.received >= s.max {
		return ErrTooLarge
	}
	n := min(s.max-s.received, 16<<10)
	if cap(s.buf) == 0 {
		// most greetings and response heads fit in a few kilobytes
		n = min(n, 4<<10)
	}
	if cap(s.buf)-len(s.buf) < n {
		nb := make([]byte, len(s.buf), len(s.buf)+max(n, 2*cap(s.buf)))
		copy(nb, s.buf)
		s.buf = nb
	}
	k, err := s.conn.Read(s.buf[len(s.buf) : len(s.buf)+n])
	if k > 0 && s.first == nil {
		s.first = bytes.Clone(s.buf[len(s.buf) : len(s.buf)+min(k, 1024)])
	}
	s.buf = s.buf[:len(s.buf)+k]
	s.received += k
	if k > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// Read implements io.Reader over the session: buffered bytes first.
func (s *Session) Read(p []byte) (int, error) {
	if len(s.buf) == 0 {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.buf)
	s.consume(n)
	return n, nil
}

func (s *Session) consume(n int) {
	s.buf = s.buf[n:]
	if len(s.buf) == 0 {
		s.buf = s.buf[:0:0]
	}
}

// Peek returns up to the buffered bytes without consuming them, reading
// once if nothing is buffered.
func (s *Session) Peek() ([]byte, error) {
	if len(s.buf) == 0 {
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
	return s.buf, nil
}

// ReadFull returns exactly n bytes. n is checked against the byte cap
// first, so a hostile length field fails at once instead of allocating.
func (s *Session) ReadFull(n int) ([]byte, error) {
	if n < 0 || n > s.max {
		return nil, fmt.Errorf("%w: %d bytes announced", ErrTooLarge, n)
	}
	for len(s.buf) < n {
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
	out := s.buf[:n:n]
	s.consume(n)
	return out, nil
}

// ReadUntil returns the bytes up to and including delim, reading at most
// limit bytes.
func (s *Session) ReadUntil(delim []byte, limit int) ([]byte, error) {
	from := 0
	for {
		if i := bytes.Index(s.buf[from:], delim); i >= 0 {
			n := from + i + len(delim)
			out := s.buf[:n:n]
			s.consume(n)
			return out, nil
		}
		if len(s.buf) >= limit {
			return nil, fmt.Errorf("%w: no %q in %d bytes", ErrTooLarge, delim, limit)
		}
		from = max(0, len(s.buf)-len(delim)+1)
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
}

// ReadLine returns one line without its CR LF (or LF), at most limit bytes.
func (s *Session) ReadLine(limit int) (string, error) {
	b, err := s.ReadUntil([]byte{'\n'}, limit)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimRight(b, "\r\n")), nil
}

// ReadFor reads whatever arrives within wait (or until limit bytes, or
// the session's deadline) and returns all unconsumed bytes. It is for
// replies of unknown length; a timeout is not an error when something came.
func (s *Session) ReadFor(wait time.Duration, limit int) ([]byte, error) {
	end := time.Now().Add(wait)
	if end.After(s.deadline) {
		end = s.deadline
	}
	s.conn.SetReadDeadline(end)
	defer s.conn.SetReadDeadline(s.deadline)
	var err error
	for len(s.buf) < limit {
		if err = s.fill(); err != nil {
			break
		}
	}
	out := s.buf
	s.consume(len(out))
	if len(out) > 0 && (isTimeout(err) || errors.Is(err, io.EOF)) {
		err = nil
	}
	return out, err
}

// readGreeting waits up to wait for the server to speak first and returns
// the first bytes it sends, without waiting for more: modules read the
// rest of a greeting as they parse it.
func (s *Session) readGreeting(wait time.Duration) ([]byte, error) {
	end := time.Now().Add(wait)
	if end.After(s.deadline) {
		end = s.deadline
	}
	s.conn.SetReadDeadline(end)
	defer s.conn.SetReadDeadline(s.deadline)
	if len(s.buf) == 0 {
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
	// a text greeting is offered whole once its first line is in; a
	// binary one once the server pauses (a server dripping bytes gets
	// until the end of the wait)
	for bytes.IndexByte(s.buf, '\n') < 0 && len(s.buf) < 1024 {
		pause := time.Now().Add(greetingPause)
		if pause.After(end) {
			break
		}
		s.conn.SetReadDeadline(pause)
		if err := s.fill(); err != nil {
			// a pause ends a binary greeting, or a line ended by a bare
			// CR; text still short of its line end waits on
			if !isTimeout(err) || !printable(s.buf) || bytes.HasSuffix(s.buf, []byte{'\r'}) {
				break
			}
		}
	}
	return s.buf, nil
}

// greetingPause is how long a server that sent part of a greeting may pause
// before the greeting is taken as complete.
const greetingPause = 50 * time.Millisecond

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\r' && c != '\n' && c != '\t' || c > 0x7e {
			return false
		}
	}
	return true
}

// NetConn returns the connection under the session as a net.Conn, for
// wrapping in TLS: bytes already buffered come first, and reads still
// count against the byte cap. Call Upgrade with the wrapping conn next.
func (s *Session) NetConn() net.Conn {
	c := &rawConn{Conn: s.conn, pending: s.buf, limit: s.max - s.received}
	s.buf = nil
	return c
}

// Upgrade replaces the connection, after a TLS handshake on NetConn. The
// byte cap starts again for what the tunnel carries.
func (s *Session) Upgrade(c net.Conn) {
	s.conn = c
	s.buf = nil
	s.Greeting = nil
	s.received = 0
}

type rawConn struct {
	net.Conn
	pending []byte
	limit   int
	// seen keeps the first bytes read, for parsing what a library
	// consumed (a TLS ServerHello)
	seen []byte
	keep int
	// mute drops writes: what a library sends while abandoning a
	// handshake we have stopped on purpose
	mute bool
}

func (c *rawConn) Write(p []byte) (int, error) {
	if c.mute {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *rawConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		c.record(p[:n])
		return n, nil
	}
	if c.limit <= 0 {
		return 0, ErrTooLarge
	}
	if len(p) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.Conn.Read(p)
	c.limit -= n
	c.record(p[:n])
	return n, err
}

func (c *rawConn) record(b []byte) {
	if room := c.keep - len(c.seen); room > 0 {
		c.seen = append(c.seen, b[:min(room, len(b))]...)
	}
}

// Inner identifies what runs inside an upgraded connection (the service
// behind TLS). It returns ErrNotMine when nothing was recognised.
func (s *Session) Inner(ctx context.Context) (*Result, error) {
	if s.inner == nil {
		return nil, ErrNotMine
	}
	return s.inner(ctx, s)
}

// Redial opens another connection to the same service, for protocols
// that learn more from a second handshake (a different offer, a lenient
// retry). It counts against the grabber's handshake limit and checks the
// exclusions again; the caller closes it.
func (s *Session) Redial(ctx context.Context) (*Session, error) {
	if s.redial == nil {
		return nil, errors.New("no further connections allowed")
	}
	return s.redial(ctx)
}

// Close ends the connection.
func (s *Session) Close() error { return s.conn.Close() }

// Deadline is when the connection gives up.
func (s *Session) Deadline() time.Time { return s.deadline }

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
