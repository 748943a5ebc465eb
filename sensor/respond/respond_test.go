package respond

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

// served is what one connection to a test listener produced.
type served struct {
	ev   record.Event
	info Info
	err  error
	took time.Duration
}

// listen starts a listener on 127.0.0.1 whose connections are handled as
// if they had been sent to port; results arrive on the channel.
func listen(t *testing.T, port uint16, lim Limits) (string, <-chan served) {
	t.Helper()
	return listenAt(t, "127.0.0.1:0", port, lim)
}

func listenAt(t *testing.T, at string, port uint16, lim Limits) (string, <-chan served) {
	t.Helper()
	ln, err := net.Listen("tcp", at)
	if err != nil {
		t.Skipf("listen %s: %v", at, err)
	}
	out := make(chan served, 16)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				ev := record.Event{Transport: "tcp"}
				start := time.Now()
				info, err := HandleInfo(ctx, c, port, &ev, lim)
				out <- served{ev, info, err, time.Since(start)}
			}()
		}
	}()
	return ln.Addr().String(), out
}

func wait(t *testing.T, ch <-chan served, within time.Duration) served {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(within):
		t.Fatalf("no result within %v", within)
	}
	return served{}
}

func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed", tool)
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// readUntil reads from c until s appears (or 64 KiB, or an error).
func readUntil(t *testing.T, c net.Conn, s string) string {
	t.Helper()
	var buf []byte
	b := make([]byte, 1024)
	for !strings.Contains(string(buf), s) {
		n, err := c.Read(b)
		buf = append(buf, b[:n]...)
		if err != nil || len(buf) > 64<<10 {
			t.Fatalf("waiting for %q: got %q, %v", s, buf, err)
		}
	}
	return string(buf)
}

func TestDetect(t *testing.T) {
	cases := []struct {
		first string
		want  string // "" for none
	}{
		{"GET / HTTP/1.1\r\n", "http"},
		{"POST /x HTTP/1.0\r\n", "http"},
		{"OPTIONS * HTTP/1.1\r\n", "http"},
		{"OPTIONS sip:100@1.2.3.4 SIP/2.0\r\n", "sip"},
		{"OPTIONS si", ""}, // could still be either
		{"REGISTER sip:x SIP/2.0\r\n", "sip"},
		{"\x16\x03\x01\x02\x00\x01", "tls"},
		{"SSH-2.0-Go\r\n", "ssh"},
		{"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00", "rdp"},
		{"\x00\x00\x00\x54\xffSMBr", "smb"},
		{"\x00\x00\x00\x54\xfeSMB@", "smb"},
		{"*1\r\n$4\r\nPING\r\n", "redis"},
		{"PING\r\n", "redis"},
		{"info\r\n", "redis"},
		{"\xff\xfb\x01", "telnet"},
		{"\x00\x01garbage", ""},
		{"G", ""},
	}
	for _, c := range cases {
		r := Detect([]byte(c.first))
		got := ""
		if r != nil {
			got = r.Name
		}
		if got != c.want {
			t.Errorf("Detect(%q) = %q, want %q", c.first, got, c.want)
		}
	}
	if ForPort(22).Name != "ssh" || ForPort(2323).Name != "telnet" || ForPort(80) != nil {
		t.Error("ForPort")
	}
}

func TestSilentRecordsFirstBytes(t *testing.T) {
	addr, ch := listen(t, 9999, Limits{Deadline: 2 * time.Second, FirstWait: 300 * time.Millisecond})
	c := dial(t, addr)
	c.Write([]byte("\x00\x01\x02hello garbage that nobody speaks"))
	c.(*net.TCPConn).CloseWrite()
	if n, _ := c.Read(make([]byte, 10)); n != 0 {
		t.Error("silent answered")
	}
	s := wait(t, ch, 3*time.Second)
	if s.info.Protocol != "silent" || !bytes.HasPrefix(s.ev.Payload, []byte("\x00\x01\x02hello")) {
		t.Errorf("got %s %q", s.info.Protocol, s.ev.Payload)
	}
	if s.err != nil {
		t.Errorf("err %v", s.err)
	}
}

// TestNothingSent: a client that never speaks on a client-first port
// costs FirstWait, then silence until the deadline at most.
func TestNothingSent(t *testing.T) {
	addr, ch := listen(t, 8080, Limits{Deadline: time.Second, FirstWait: 200 * time.Millisecond})
	dial(t, addr)
	s := wait(t, ch, 3*time.Second)
	if s.info.Protocol != "silent" || len(s.ev.Payload) != 0 || s.took > 1500*time.Millisecond {
		t.Errorf("got %+v", s)
	}
}

// TestHostile drives every responder with clients that try to hold it or
// make it buffer: each must end by the deadline with bounded payload.
func TestHostile(t *testing.T) {
	lim := Limits{Deadline: 1500 * time.Millisecond, FirstWait: 300 * time.Millisecond, MaxRead: 32 << 10}
	big := bytes.Repeat([]byte("A"), 1<<20)
	cases := []struct {
		name string
		port uint16
		send func(c net.Conn)
	}{
		{"http-endless-headers", 80, func(c net.Conn) {
			c.Write([]byte("GET / HTTP/1.1\r\n"))
			for i := 0; i < 20000; i++ {
				if _, err := c.Write([]byte("X-A: b\r\n")); err != nil {
					return
				}
			}
		}},
		{"http-giant-line", 80, func(c net.Conn) { c.Write([]byte("GET /")); c.Write(big) }},
		{"http-giant-body", 80, func(c net.Conn) {
			c.Write([]byte("POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"))
			c.Write(big)
		}},
		{"http-chunked-4g", 80, func(c net.Conn) {
			c.Write([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n"))
			c.Write(big)
		}},
		{"slow-drip", 80, func(c net.Conn) {
			for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\n") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}},
		{"tls-4g-record", 443, func(c net.Conn) { c.Write([]byte{0x16, 3, 1, 0xff, 0xff, 1, 0xff, 0xff, 0xff}); c.Write(big) }},
		{"tls-many-records", 443, func(c net.Conn) {
			for i := 0; i < 100; i++ {
				c.Write([]byte{0x16, 3, 1, 0, 4, 1, 0, 0xff, 0xff})
			}
		}},
		{"ssh-4g-packet", 22, func(c net.Conn) { c.Write([]byte("SSH-2.0-x\r\n\xff\xff\xff\xff\x04")); c.Write(big) }},
		{"ssh-endless-prelines", 22, func(c net.Conn) { c.Write(bytes.Repeat([]byte("hello\r\n"), 10000)) }},
		{"ssh-giant-version", 22, func(c net.Conn) { c.Write([]byte("SSH-2.0-")); c.Write(big) }},
		{"telnet-endless-sb", 23, func(c net.Conn) { c.Write([]byte{tIAC, tSB, 24}); c.Write(big) }},
		{"telnet-giant-user", 23, func(c net.Conn) { c.Write(big) }},
		{"telnet-many-attempts", 23, func(c net.Conn) { c.Write(bytes.Repeat([]byte("root\r\nroot\r\n"), 10000)) }},
		{"redis-4g-bulk", 6379, func(c net.Conn) { c.Write([]byte("*1\r\n$4294967296\r\n")); c.Write(big) }},
		{"redis-many-args", 6379, func(c net.Conn) { c.Write([]byte("*99999999\r\n")); c.Write(big) }},
		{"redis-endless-pings", 6379, func(c net.Conn) { c.Write(bytes.Repeat([]byte("PING\r\n"), 100000)) }},
		{"rdp-short-tpkt", 3389, func(c net.Conn) { c.Write([]byte{3, 0, 0xff, 0xff, 0xfe, 0xe0}); c.Write(big) }},
		{"smb-16m-message", 445, func(c net.Conn) { c.Write([]byte("\x00\xff\xff\xff\xfeSMB")); c.Write(big) }},
		{"sip-endless-headers", 5060, func(c net.Conn) {
			c.Write([]byte("OPTIONS sip:a SIP/2.0\r\n"))
			for i := 0; i < 20000; i++ {
				if _, err := c.Write([]byte("Via: b\r\n")); err != nil {
					return
				}
			}
		}},
		{"garbage", 7777, func(c net.Conn) { c.Write(big) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, ch := listen(t, tc.port, lim)
			c := dial(t, addr)
			go func() {
				tc.send(c)
			}()
			// Drain what the responder says so its writes never block.
			go io.Copy(io.Discard, c)
			s := wait(t, ch, 4*time.Second)
			if s.took > lim.Deadline+500*time.Millisecond {
				t.Errorf("took %v", s.took)
			}
			if len(s.ev.Payload) > DefaultLimits.MaxPayload {
				t.Errorf("payload %d bytes", len(s.ev.Payload))
			}
			t.Logf("%s: %v after %v", s.info.Protocol, s.err, s.took.Round(time.Millisecond))
		})
	}
}

// TestMemoryBounded: many hostile connections at once stay within a
// bounded heap.
func TestMemoryBounded(t *testing.T) {
	lim := Limits{Deadline: time.Second, FirstWait: 200 * time.Millisecond}
	addr, ch := listen(t, 80, lim)
	const n = 50
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	big := bytes.Repeat([]byte("B"), 256<<10)
	for i := 0; i < n; i++ {
		c := dial(t, addr)
		go func() {
			c.Write([]byte("POST / HTTP/1.1\r\nX: "))
			c.Write(big)
		}()
		go io.Copy(io.Discard, c)
	}
	var peak uint64
	for i := 0; i < n; i++ {
		s := wait(t, ch, 5*time.Second)
		if !errors.Is(s.err, ErrLimit) && s.err != nil && !isTimeout(s.err) {
			t.Logf("err %v", s.err)
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		peak = max(peak, m.HeapAlloc)
	}
	if grow := int64(peak) - int64(before.HeapAlloc); grow > 64<<20 {
		t.Errorf("heap grew by %d MiB for %d connections", grow>>20, n)
	}
}

func TestContextCancel(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		ev := record.Event{}
		done <- Handle(ctx, b, 23, &ev, Limits{Deadline: time.Minute})
	}()
	go io.Copy(io.Discard, a)
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("want an error after cancel")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancel did not end Handle")
	}
}
