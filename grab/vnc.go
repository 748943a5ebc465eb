package grab

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// VNC, the RFB protocol (RFC 6143): the server's ProtocolVersion, our
// reply, and the security types the server offers; then we hang up
// before choosing one (no authentication, no ClientInit).
func init() {
	Register(Module{
		Name:   "vnc",
		Ports:  []uint16{5900, 5901, 5902, 5903},
		Claims: vncClaims,
		Grab:   grabVNC,
	})
}

const vncMaxReason = 1024 // bytes of a failure reason kept

// vncClaims accepts "RFB xxx.yyy\n", the 12-byte ProtocolVersion.
func vncClaims(g []byte) bool {
	_, _, ok := vncParseVersion(clip(g, 12))
	return ok
}

// vncParseVersion parses a ProtocolVersion message: "RFB ", three
// digits, ".", three digits, "\n" (RFC 6143 §7.1.1).
func vncParseVersion(b []byte) (major, minor int, ok bool) {
	if len(b) != 12 || string(b[:4]) != "RFB " || b[7] != '.' || b[11] != '\n' {
		return 0, 0, false
	}
	for _, i := range []int{4, 5, 6, 8, 9, 10} {
		if b[i] < '0' || b[i] > '9' {
			return 0, 0, false
		}
	}
	major, _ = strconv.Atoi(string(b[4:7]))
	minor, _ = strconv.Atoi(string(b[8:11]))
	return major, minor, true
}

// vncReply is the version we answer with: the server's own for the
// versions whose handshake we know (3.3, 3.7, 3.8 and Apple's 3.889),
// 3.8 to anything newer, and 3.3 to the rest, which RFC 6143 §7.1.1
// says to treat as 3.3. legacy is 3.3's handshake: the server picks the
// security type instead of listing them.
func vncReply(major, minor int) (reply string, legacy bool) {
	switch {
	case major == 3 && (minor == 3 || minor == 7 || minor == 8 || minor == 889):
		return fmt.Sprintf("RFB %03d.%03d\n", major, minor), minor == 3
	case major > 3 || (major == 3 && minor > 8):
		return "RFB 003.008\n", false
	}
	return "RFB 003.003\n", true
}

func grabVNC(ctx context.Context, s *Session) (*Result, error) {
	v, err := s.ReadFull(12)
	if err != nil {
		return nil, err
	}
	major, minor, ok := vncParseVersion(v)
	if !ok {
		return nil, NotMine("greeting %q", clip(v, 12))
	}
	r := &Result{Protocol: "vnc", Banner: bytes.TrimRight(v, "\n")}
	r.Set("vnc.version", fmt.Sprintf("%d.%d", major, minor))
	reply, legacy := vncReply(major, minor)
	if err := s.Write([]byte(reply)); err != nil {
		return r, nil
	}
	msg, err := vncReadSecurity(s, legacy)
	if err != nil {
		return r, nil
	}
	names, reason, err := vncParseSecurity(msg, legacy)
	if err != nil {
		return r, nil
	}
	r.Set("vnc.security", strings.Join(names, ", "))
	r.Set("vnc.error", reason)
	return r, nil
}

// vncReadSecurity reads the server's security message whole: for 3.3 a
// U32 type, for 3.7 and later a U8 count and that many U8 types; a zero
// type or count is followed by a U32 length and a reason string.
func vncReadSecurity(s *Session, legacy bool) ([]byte, error) {
	var msg []byte
	var zero bool
	if legacy {
		b, err := s.ReadFull(4)
		if err != nil {
			return nil, err
		}
		msg, zero = b, binary.BigEndian.Uint32(b) == 0
	} else {
		b, err := s.ReadFull(1)
		if err != nil {
			return nil, err
		}
		msg, zero = b, b[0] == 0
		if !zero {
			types, err := s.ReadFull(int(b[0]))
			if err != nil {
				return nil, err
			}
			return append(append([]byte{}, msg...), types...), nil
		}
	}
	if !zero {
		return msg, nil
	}
	l, err := s.ReadFull(4)
	if err != nil {
		return nil, err
	}
	msg = append(append([]byte{}, msg...), l...)
	n := min(binary.BigEndian.Uint32(l), vncMaxReason)
	reason, err := s.ReadFull(int(n))
	if err != nil {
		return msg, nil // the reason is a courtesy
	}
	return append(msg, reason...), nil
}

// vncParseSecurity parses what vncReadSecurity read: the security type
// names, or the reason the server gave for refusing. A reason longer than
// vncMaxReason may be cut short.
func vncParseSecurity(b []byte, legacy bool) (names []string, reason string, err error) {
	var types []uint32
	var zero bool
	if legacy {
		if len(b) < 4 {
			return nil, "", errors.New("vnc: short security type")
		}
		t := binary.BigEndian.Uint32(b)
		b, zero = b[4:], t == 0
		if !zero {
			types = []uint32{t}
		}
	} else {
		if len(b) < 1 {
			return nil, "", errors.New("vnc: short security types")
		}
		n := int(b[0])
		b, zero = b[1:], n == 0
		if !zero {
			if len(b) < n {
				return nil, "", errors.New("vnc: truncated security types")
			}
			for _, t := range b[:n] {
				types = append(types, uint32(t))
			}
		}
	}
	if zero {
		if len(b) < 4 {
			return nil, "", errors.New("vnc: refused without a reason")
		}
		n := int(min(binary.BigEndian.Uint32(b), vncMaxReason))
		reason = string(b[4:min(len(b), 4+n)])
		return nil, vncCleanText(reason), nil
	}
	for _, t := range types {
		names = append(names, vncSecurityName(t))
	}
	return names, "", nil
}

// vncSecurityName names a security type (IANA RFB Security Types).
func vncSecurityName(t uint32) string {
	switch t {
	case 1:
		return "None"
	case 2:
		return "VNC"
	case 5:
		return "RA2"
	case 6:
		return "RA2ne"
	case 16:
		return "Tight"
	case 17:
		return "Ultra"
	case 18:
		return "TLS"
	case 19:
		return "VeNCrypt"
	case 20:
		return "SASL"
	case 21:
		return "MD5"
	case 22:
		return "xvp"
	case 30:
		return "Apple"
	}
	return strconv.FormatUint(uint64(t), 10)
}

// vncCleanText keeps the printable part of a reason string.
func vncCleanText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return -1
		}
		return r
	}, s)
}
