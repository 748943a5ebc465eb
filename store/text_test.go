package store

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// searchTextRunes is SearchText's definition, a rune at a time.
func searchTextRunes(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		switch {
		case r == utf8.RuneError && n == 1:
			sb.WriteRune(utf8.RuneError)
		case r < 0x20 || r == 0x7f:
			sb.WriteByte(' ')
		case 'A' <= r && r <= 'Z':
			sb.WriteRune(r + 'a' - 'A')
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

func TestSearchText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"GET /Admin HTTP/1.1\r\nHost: X\r\n\r\n", "get /admin http/1.1  host: x    "},
		{"\x00\x1f\x7f~", "   ~"},
		{"Ünïcode ÄÖ stays", "Ünïcode ÄÖ stays"},
		{"bad \xff\xfe utf8 \xe2\x82", "bad \uFFFD\uFFFD utf8 \uFFFD\uFFFD"},
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // a surrogate is not UTF-8
	} {
		if got := SearchText([]byte(c.in)); got != c.want {
			t.Errorf("SearchText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzSearchText: the byte-at-a-time fast path says what the definition
// says, and the result is valid UTF-8 without control characters.
func FuzzSearchText(f *testing.F) {
	f.Add([]byte("SSH-2.0-OpenSSH_9.2p1\r\n"))
	f.Add([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := SearchText(b)
		if want := searchTextRunes(b); got != want {
			t.Fatalf("SearchText(%q) = %q, want %q", b, got, want)
		}
		if !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("SearchText(%q) = %q: not printable UTF-8", b, got)
		}
	})
}

func BenchmarkSearchText(b *testing.B) {
	payload := []byte("GET /cgi-bin/luci/;stok=/locale?form=country HTTP/1.1\r\nHost: 198.51.100.130:80\r\nUser-Agent: Mozilla/5.0\r\n\r\n")
	b.SetBytes(int64(len(payload)))
	for range b.N {
		SearchText(payload)
	}
}
