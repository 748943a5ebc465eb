package grab

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// NTP (RFC 5905): one 48-byte mode 3 (client) packet, the same request an
// ordinary NTP client sends, and the mode 4 (server) reply parsed. Mode 6
// (control, READVAR) and mode 7 (private, monlist) are never sent: they are
// the amplification vectors, and nothing here needs them.
//
// The transmit timestamp we send is random, as data-minimising clients do
// (it reveals nothing about our clock); the server must echo it as the
// origin timestamp, which tells a real reply from stray bytes.

func init() {
	Register(Module{
		Name:      "ntp",
		Transport: "udp",
		Ports:     []uint16{123},
		Rank:      20,
		Grab:      grabNTP,
	})
}

const (
	ntpPacketLen  = 48
	ntpModeClient = 3
	ntpModeServer = 4
	// seconds from the NTP epoch (1900) to the Unix epoch (1970)
	ntpUnixOffset = 2208988800
)

// ntpPacket is the fixed 48-byte header of an NTP packet.
type ntpPacket struct {
	Leap, Version, Mode uint8
	Stratum             uint8
	Poll, Precision     int8
	RootDelay, RootDisp uint32 // NTP short format, 16.16 seconds
	RefID               [4]byte
	Reference, Origin   uint64 // NTP timestamp format, 32.32 seconds
	Receive, Transmit   uint64
}

// parseNTPPacket decodes the header of b; extension fields and a MAC that
// may follow it are ignored.
func parseNTPPacket(b []byte) (ntpPacket, error) {
	var p ntpPacket
	if len(b) < ntpPacketLen {
		return p, fmt.Errorf("ntp: %d bytes, want %d", len(b), ntpPacketLen)
	}
	p.Leap = b[0] >> 6
	p.Version = (b[0] >> 3) & 7
	p.Mode = b[0] & 7
	p.Stratum = b[1]
	p.Poll = int8(b[2])
	p.Precision = int8(b[3])
	p.RootDelay = binary.BigEndian.Uint32(b[4:])
	p.RootDisp = binary.BigEndian.Uint32(b[8:])
	copy(p.RefID[:], b[12:16])
	p.Reference = binary.BigEndian.Uint64(b[16:])
	p.Origin = binary.BigEndian.Uint64(b[24:])
	p.Receive = binary.BigEndian.Uint64(b[32:])
	p.Transmit = binary.BigEndian.Uint64(b[40:])
	return p, nil
}

// ntpTime converts an NTP timestamp to time; zero means "not set". Values
// before 1970 are taken to be in era 1 (from 2036 on).
func ntpTime(ts uint64) (time.Time, bool) {
	if ts == 0 {
		return time.Time{}, false
	}
	sec := int64(ts >> 32)
	if sec < ntpUnixOffset {
		sec += 1 << 32
	}
	frac := int64((ts & 0xffffffff) * 1e9 >> 32)
	return time.Unix(sec-ntpUnixOffset, frac).UTC(), true
}

// ntpShort renders an NTP short-format duration (16.16 seconds).
func ntpShort(v uint32) string {
	d := time.Duration(uint64(v) * uint64(time.Second) >> 16)
	return d.Round(time.Microsecond).String()
}

// ntpRefID renders the reference ID: a kiss code or clock source name in
// ASCII for stratum 0 and 1 (and 16, unsynchronised, where servers put
// codes such as "INIT"), the upstream server's IPv4 address otherwise
// (for an IPv6 upstream it is the first four bytes of an MD5 hash of the
// address, which cannot be told apart from an IPv4 address).
func ntpRefID(stratum uint8, id [4]byte) string {
	if stratum <= 1 || stratum >= 16 {
		n := 0
		for n < 4 && id[n] != 0 {
			if id[n] < 0x20 || id[n] > 0x7e {
				n = -1
				break
			}
			n++
		}
		if n > 0 {
			return string(id[:n])
		}
		if id == [4]byte{} {
			return ""
		}
	}
	return netip.AddrFrom4(id).String()
}

var ntpLeap = [...]string{"none", "+1s", "-1s", "unsynchronized"}

func ntpRequest(xmt uint64) []byte {
	b := make([]byte, ntpPacketLen)
	b[0] = 4<<3 | ntpModeClient // LI 0, VN 4, mode 3
	binary.BigEndian.PutUint64(b[40:], xmt)
	return b
}

func grabNTP(ctx context.Context, s *Session) (*Result, error) {
	var x [8]byte
	rand.Read(x[:])
	xmt := binary.BigEndian.Uint64(x[:]) | 1 // never zero
	t1 := time.Now()
	if err := s.Write(ntpRequest(xmt)); err != nil {
		return nil, err
	}
	b, err := s.ReadFor(time.Until(s.Deadline()), 1)
	t4 := time.Now()
	if err != nil {
		return nil, err
	}
	p, err := parseNTPPacket(b)
	if err != nil {
		return nil, NotMine("%v", err)
	}
	if p.Mode != ntpModeServer || p.Version < 1 || p.Version > 4 {
		return nil, NotMine("ntp: mode %d version %d", p.Mode, p.Version)
	}
	own := s.Target.Addr.Port() == 123 || s.Target.Protocol == "ntp"
	if p.Origin != xmt && !own {
		// a mode-4-looking datagram that does not echo us, on a port
		// where NTP is not expected: too weak to call it NTP
		return nil, NotMine("ntp: origin timestamp not echoed")
	}
	r := &Result{Protocol: "ntp", Banner: clip(b, 512)}
	r.Set("ntp.version", strconv.Itoa(int(p.Version)))
	r.Set("ntp.stratum", strconv.Itoa(int(p.Stratum)))
	r.Set("ntp.leap", ntpLeap[p.Leap])
	r.Set("ntp.refid", ntpRefID(p.Stratum, p.RefID))
	if p.Stratum == 0 {
		// Kiss-o'-Death: the reference ID is the kiss code (RATE, DENY...)
		r.Set("ntp.kiss", ntpRefID(0, p.RefID))
	}
	r.Set("ntp.poll", strconv.Itoa(int(p.Poll)))
	r.Set("ntp.precision", strconv.Itoa(int(p.Precision)))
	r.Set("ntp.root_delay", ntpShort(p.RootDelay))
	r.Set("ntp.root_dispersion", ntpShort(p.RootDisp))
	if t, ok := ntpTime(p.Reference); ok {
		r.Set("ntp.reference_time", t.Format(time.RFC3339Nano))
	}
	if p.Origin != xmt {
		r.Set("ntp.origin", "mismatch")
	}
	t2, ok2 := ntpTime(p.Receive)
	t3, ok3 := ntpTime(p.Transmit)
	if ok3 {
		r.Set("ntp.time", t3.Format(time.RFC3339Nano))
	}
	if ok2 && ok3 && p.Origin == xmt && p.Stratum != 0 {
		// the server clock's offset from ours, RFC 5905 §8
		off := (t2.Sub(t1) + t3.Sub(t4)) / 2
		r.Set("ntp.offset", off.Round(time.Millisecond).String())
	}
	return r, nil
}
