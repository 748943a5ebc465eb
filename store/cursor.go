package store

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Cursors are opaque to clients: the parts of the last row's sort key,
// with a kind, base64-encoded. Both stores use the same encoding, so a
// page of one continues on the other.

// EncodeCursor makes a cursor of a kind ("s" services, "e" events) and
// the last row's key parts.
func EncodeCursor(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "\x00")))
}

// DecodeCursor returns the n-1 key parts of a cursor of the kind, or
// ErrBadCursor.
func DecodeCursor(c, kind string, n int) ([]string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 256 {
		return nil, ErrBadCursor
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != n || parts[0] != kind {
		return nil, ErrBadCursor
	}
	return parts[1:], nil
}

// ServiceKey is where a page of services continues: the address as the
// stores keep it (two halves), the port and the transport.
type ServiceKey struct {
	Lo, Hi    uint64
	Port      uint16
	Transport string
}

// DecodeServiceCursor reads a services cursor.
func DecodeServiceCursor(c string) (ServiceKey, error) {
	p, err := DecodeCursor(c, "s", 5)
	if err != nil {
		return ServiceKey{}, err
	}
	lo, err1 := strconv.ParseUint(p[0], 10, 64)
	hi, err2 := strconv.ParseUint(p[1], 10, 64)
	port, err3 := strconv.ParseUint(p[2], 10, 16)
	// the transport goes to the database as text: only the values a
	// service can have (a forged byte string is not valid UTF-8, which
	// DuckDB refuses with an error, not with an empty page)
	if err1 != nil || err2 != nil || err3 != nil || p[3] != "tcp" && p[3] != "udp" {
		return ServiceKey{}, ErrBadCursor
	}
	return ServiceKey{lo, hi, uint16(port), p[3]}, nil
}
