package store

import (
	"unicode/utf8"
	"unsafe"
)

// SearchText is the lower-cased, printable projection of binary data
// (banners, payloads) that free-text search scans, the same in every
// store: control bytes become spaces, invalid UTF-8 the replacement
// character, and ASCII letters are lower-cased. The raw bytes are kept
// beside it.
func SearchText(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	// most of what scanners send and services answer is ASCII: a byte at
	// a time until the first byte that is not
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= utf8.RuneSelf {
			out = appendSearchText(out[:i], b[i:])
			break
		}
		switch {
		case c < 0x20 || c == 0x7f:
			c = ' '
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		out[i] = c
	}
	// out is not written again: the string can share its bytes
	return unsafe.String(unsafe.SliceData(out), len(out))
}

// appendSearchText is SearchText's projection of b, rune by rune.
func appendSearchText(out, b []byte) []byte {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n == 1:
			out = utf8.AppendRune(out, utf8.RuneError)
		case r < 0x20 || r == 0x7f:
			out = append(out, ' ')
		case 'A' <= r && r <= 'Z':
			out = append(out, byte(r+'a'-'A'))
		default:
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}
