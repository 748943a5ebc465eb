package grab

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// ntpTestStamp converts a time to the NTP timestamp format.
func ntpTestStamp(t time.Time) uint64 {
	sec := uint64(t.Unix() + ntpUnixOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}

// ntpTestServer describes the server a fake answers as.
type ntpTestServer struct {
	leap, stratum   uint8
	poll, precision int8
	delay, disp     uint32
	refid           [4]byte
	skew            time.Duration // the server clock's offset from ours
	echoOrigin      bool
}

// reply builds the mode 4 answer to request q as RFC 5905 8 describes:
// version copied, origin = the request's transmit timestamp.
func (s ntpTestServer) reply(q []byte) []byte {
	now := time.Now().Add(s.skew)
	b := make([]byte, 48)
	b[0] = s.leap<<6 | (q[0]>>3&7)<<3 | ntpModeServer
	b[1] = s.stratum
	b[2] = byte(s.poll)
	b[3] = byte(s.precision)
	binary.BigEndian.PutUint32(b[4:], s.delay)
	binary.BigEndian.PutUint32(b[8:], s.disp)
	copy(b[12:], s.refid[:])
	if s.stratum != 0 {
		binary.BigEndian.PutUint64(b[16:], ntpTestStamp(now.Add(-37*time.Second)))
		binary.BigEndian.PutUint64(b[32:], ntpTestStamp(now))
		binary.BigEndian.PutUint64(b[40:], ntpTestStamp(now))
	}
	if s.echoOrigin {
		copy(b[24:32], q[40:48])
	}
	return b
}

// ntpFake answers client-mode packets; anything else (including mode 6
// and 7 queries, which it would never answer) is ignored.
func ntpFake(t *testing.T, answer func(q []byte) [][]byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			if n < 48 || q[0]&7 != ntpModeClient || q[0]>>3&7 == 0 {
				continue
			}
			for _, d := range answer(q) {
				pc.WriteTo(d, from)
			}
		}
	}()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

func TestNTP(t *testing.T) {
	chrony := ntpTestServer{stratum: 2, poll: 6, precision: -25, delay: 0x0000_0800, disp: 0x0000_1000, refid: [4]byte{192, 0, 2, 123}, skew: 3 * time.Second, echoOrigin: true}
	gps := ntpTestServer{stratum: 1, poll: 4, precision: -20, refid: [4]byte{'G', 'P', 'S', 0}, echoOrigin: true}
	kod := ntpTestServer{leap: 3, stratum: 0, refid: [4]byte{'R', 'A', 'T', 'E'}, echoOrigin: true}
	noEcho := ntpTestServer{stratum: 3, refid: [4]byte{10, 1, 2, 3}}
	tests := []struct {
		name   string
		answer func(q []byte) [][]byte
		blind  bool
		want   map[string]string
		check  func(t *testing.T, data map[string]string)
	}{
		{"stratum 2", func(q []byte) [][]byte { return [][]byte{chrony.reply(q)} }, false,
			map[string]string{"ntp.version": "4", "ntp.stratum": "2", "ntp.leap": "none", "ntp.refid": "192.0.2.123",
				"ntp.poll": "6", "ntp.precision": "-25", "ntp.root_delay": "31.25ms", "ntp.root_dispersion": "62.5ms"},
			func(t *testing.T, d map[string]string) {
				off, err := time.ParseDuration(d["ntp.offset"])
				if err != nil || off < 2900*time.Millisecond || off > 3100*time.Millisecond {
					t.Errorf("offset %q, want about 3s", d["ntp.offset"])
				}
				if _, err := time.Parse(time.RFC3339Nano, d["ntp.time"]); err != nil {
					t.Errorf("time %q: %v", d["ntp.time"], err)
				}
			}},
		{"stratum 1 GPS, found blind", func(q []byte) [][]byte { return [][]byte{gps.reply(q)} }, true,
			map[string]string{"ntp.stratum": "1", "ntp.refid": "GPS"}, nil},
		{"kiss of death", func(q []byte) [][]byte { return [][]byte{kod.reply(q)} }, false,
			map[string]string{"ntp.stratum": "0", "ntp.kiss": "RATE", "ntp.leap": "unsynchronized"},
			func(t *testing.T, d map[string]string) {
				if _, ok := d["ntp.offset"]; ok {
					t.Error("offset from a kiss-o'-death packet")
				}
			}},
		{"origin not echoed, on a port asked for by name", func(q []byte) [][]byte { return [][]byte{noEcho.reply(q)} }, false,
			map[string]string{"ntp.origin": "mismatch", "ntp.refid": "10.1.2.3"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := Target{Addr: ntpFake(t, tt.answer), Transport: "udp", Protocol: "ntp"}
			if tt.blind {
				target.Protocol = ""
			}
			svc, _, err := grabC2(t, target, Config{Timeout: time.Second})
			if err != nil {
				t.Fatalf("grab: %v", err)
			}
			if svc.Protocol != "ntp" {
				t.Fatalf("protocol %q, want ntp", svc.Protocol)
			}
			for k, v := range tt.want {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q (all %v)", k, svc.Data[k], v, svc.Data)
				}
			}
			if tt.check != nil {
				tt.check(t, svc.Data)
			}
			if len(svc.Banner) != 48 {
				t.Errorf("banner of %d bytes", len(svc.Banner))
			}
		})
	}
}

func TestNTPHostile(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(q []byte) [][]byte
		notMine bool
	}{
		{"silent", func([]byte) [][]byte { return nil }, false},
		{"short reply", func(q []byte) [][]byte { return [][]byte{q[:20]} }, true},
		{"request echoed", func(q []byte) [][]byte { return [][]byte{q} }, true},
		{"mode 7 reply", func(q []byte) [][]byte {
			b := make([]byte, 48)
			b[0] = 0x97 // response bit, version 2, mode 7
			return [][]byte{b}
		}, true},
		{"text", func([]byte) [][]byte { return [][]byte{[]byte(strings.Repeat("garbage ", 100))} }, true},
		{"mode 4 without the origin echo, blind", func(q []byte) [][]byte { return [][]byte{ntpTestServer{stratum: 2}.reply(q)} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := ntpFake(t, tt.answer)
			start := time.Now()
			svc, _, _ := grabC2(t, Target{Addr: addr, Transport: "udp", Protocol: "ntp"}, Config{Timeout: time.Second})
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			if svc.Protocol == "ntp" && !strings.Contains(tt.name, "blind") {
				t.Fatalf("recognised ntp: %v", svc.Data)
			}
			c, err := net.Dial("udp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := newSession(Target{Addr: addr, Transport: "udp"}, c, 1<<16, time.Now().Add(time.Second))
			_, err = grabNTP(context.Background(), s)
			if err == nil || errors.Is(err, ErrNotMine) != tt.notMine {
				t.Errorf("grabNTP: %v", err)
			}
		})
	}
}

func TestNTPHelpers(t *testing.T) {
	if got := ntpRefID(2, [4]byte{'L', 'O', 'C', 'L'}); got != "76.79.67.76" {
		t.Errorf("stratum 2 refid %q", got)
	}
	if got := ntpRefID(16, [4]byte{'I', 'N', 'I', 'T'}); got != "INIT" {
		t.Errorf("stratum 16 refid %q", got)
	}
	if got := ntpRefID(1, [4]byte{1, 2, 3, 4}); got != "1.2.3.4" {
		t.Errorf("binary stratum 1 refid %q", got)
	}
	// era 1: the seconds field wraps in 2036
	want := time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, ok := ntpTime(ntpTestStamp(want)); !ok || !got.Equal(want) {
		t.Errorf("era 1: %v", got)
	}
	if _, ok := ntpTime(0); ok {
		t.Error("zero timestamp is a time")
	}
	if r := ntpRequest(42); len(r) != 48 || r[0] != 0x23 || binary.BigEndian.Uint64(r[40:]) != 42 {
		t.Errorf("request % x", r)
	}
}

func FuzzNTPPacket(f *testing.F) {
	f.Add(ntpTestServer{stratum: 2, precision: -24, refid: [4]byte{192, 0, 2, 1}}.reply(ntpRequest(1)))
	f.Add(ntpTestServer{stratum: 0, leap: 3, refid: [4]byte{'D', 'E', 'N', 'Y'}}.reply(ntpRequest(2)))
	f.Add([]byte("\x1c\x01\x00\xe9"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseNTPPacket(b)
		if err != nil {
			if len(b) >= ntpPacketLen {
				t.Fatalf("%d bytes rejected: %v", len(b), err)
			}
			return
		}
		if p.Leap > 3 || p.Mode > 7 || p.Version > 7 {
			t.Fatalf("fields out of range: %+v", p)
		}
		ntpRefID(p.Stratum, p.RefID)
		ntpShort(p.RootDelay)
		ntpTime(p.Transmit)
		_ = ntpLeap[p.Leap]
	})
}
