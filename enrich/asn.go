package enrich

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"os"
	"unicode/utf8"
)

// asnDB maps address ranges to an AS number and organisation, from the
// ip-location-db CSV files: one row per range, "start,end,asn,org", where
// start and end are inclusive bounds written either as addresses or as
// integers (the -num files), and org is a CSV field (quoted when it holds a
// comma or a quote, quotes doubled inside). Rows are flattened into sorted,
// non-overlapping intervals; where rows overlap the later start wins.
type asnDB struct {
	v4   table4
	v6   table6
	orgs []string // interned; val = asn<<32 | index into orgs
}

func (d *asnDB) lookup(ip netip.Addr) (asn uint32, org string, ok bool) {
	var v uint64
	if ip.Is4() {
		v, ok = d.v4.find(uint32(b4Of(ip)))
	} else {
		v, ok = d.v6.find(u128Of(ip))
	}
	if !ok {
		return 0, "", false
	}
	return uint32(v >> 32), d.orgs[uint32(v)], true
}

// maxLine bounds one line of an ASN or overrides file.
const maxLine = 64 << 10

// asnLoader reads ASN CSV files into one asnDB, interning organisations
// across files.
type asnLoader struct {
	rows4   []span[b4]
	rows6   []span[u128]
	orgs    []string
	orgIdx  map[string]uint32
	scratch []byte
	lastOrg string // the previous row's organisation, interned as lastIdx
	lastIdx uint32
}

func newASNLoader() *asnLoader {
	return &asnLoader{orgIdx: map[string]uint32{"": 0}, orgs: []string{""}}
}

// loadFile reads one CSV file of one address family.
func (l *asnLoader) loadFile(path string, v6 bool) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		// The files run at about 52 (IPv4 -num) to 85 (IPv6) bytes a row.
		n := int(st.Size() / 48)
		if v6 {
			l.rows6 = slicesGrow(l.rows6, n)
		} else {
			l.rows4 = slicesGrow(l.rows4, n)
		}
	}
	return l.read(f, path, v6)
}

func slicesGrow[T any](s []T, n int) []T {
	if cap(s)-len(s) < n {
		t := make([]T, len(s), len(s)+n)
		copy(t, s)
		return t
	}
	return s
}

// read parses CSV rows of one family from r; name is used in errors.
func (l *asnLoader) read(r io.Reader, name string, v6 bool) (int, error) {
	br := bufio.NewReaderSize(r, maxLine)
	n := 0
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return n, &SyntaxError{File: name, Line: lineNo, Msg: fmt.Sprintf("line longer than %d bytes", maxLine)}
		}
		if err != nil && err != io.EOF {
			return n, fmt.Errorf("%s: %w", name, err)
		}
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if len(bytes.TrimSpace(line)) > 0 {
			row, perr := l.parseLine(line, v6)
			if perr != nil {
				perr.File, perr.Line = name, lineNo
				return n, perr
			}
			n++
			if v6 {
				l.rows6 = append(l.rows6, span[u128]{row.lo, row.hi, row.val})
			} else {
				l.rows4 = append(l.rows4, span[b4]{b4(row.lo.lo), b4(row.hi.lo), row.val})
			}
		}
		if err == io.EOF {
			break
		}
	}
	return n, nil
}

type asnRow struct {
	lo, hi u128 // IPv4 rows use lo.lo
	val    uint64
}

// parseLine parses one CSV row and interns its organisation.
func (l *asnLoader) parseLine(line []byte, v6 bool) (asnRow, *SyntaxError) {
	lo, hi, asn, org, err := parseASNLine(line, v6, l.scratch[:0])
	if err != nil {
		return asnRow{}, err
	}
	if cap(org) > cap(l.scratch) {
		l.scratch = org[:0]
	}
	if string(org) == l.lastOrg { // runs of one organisation are common
		return asnRow{lo, hi, uint64(asn)<<32 | uint64(l.lastIdx)}, nil
	}
	idx, ok := l.orgIdx[string(org)]
	if !ok {
		idx = uint32(len(l.orgs))
		s := string(org)
		l.orgs = append(l.orgs, s)
		l.orgIdx[s] = idx
	}
	l.lastOrg, l.lastIdx = l.orgs[idx], idx
	return asnRow{lo, hi, uint64(asn)<<32 | uint64(idx)}, nil
}

func (l *asnLoader) db() *asnDB {
	d := &asnDB{v4: newTable4(l.rows4), v6: newTable6(l.rows6), orgs: l.orgs}
	l.rows4, l.rows6, l.orgIdx = nil, nil, nil
	return d
}

// parseASNLine parses "start,end,asn,org" (a trailing newline is allowed).
// IPv4 bounds are returned in lo.lo. org is the field's value with CSV
// quoting removed and invalid UTF-8 or control characters replaced; it may
// be appended to buf.
func parseASNLine(line []byte, v6 bool, buf []byte) (lo, hi u128, asn uint32, org []byte, err *SyntaxError) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	var f [3][]byte
	rest := line
	for i := range f {
		j := bytes.IndexByte(rest, ',')
		if j < 0 {
			return lo, hi, 0, nil, &SyntaxError{Token: string(line), Msg: fmt.Sprintf("want 4 comma-separated fields (start,end,asn,org), found %d", i+1)}
		}
		f[i], rest = bytes.TrimSpace(rest[:j]), rest[j+1:]
	}
	if lo, err = parseBound(f[0], v6); err != nil {
		return
	}
	if hi, err = parseBound(f[1], v6); err != nil {
		return
	}
	if hi.less(lo) {
		return lo, hi, 0, nil, &SyntaxError{Token: string(f[0]) + "," + string(f[1]), Msg: "range ends before it starts"}
	}
	if asn, err = parseASN(f[2]); err != nil {
		return
	}
	org, err = parseCSVField(rest, buf)
	return
}

// parseBound parses a range bound: an address of the file's family or its
// value as a decimal integer.
func parseBound(b []byte, v6 bool) (u128, *SyntaxError) {
	if len(b) > 0 && isDigits(b) {
		v, ok := parseDec128(b)
		if !ok || !v6 && (v.hi != 0 || v.lo > 0xffffffff) {
			return u128{}, &SyntaxError{Token: string(b), Msg: "address number out of range"}
		}
		return v, nil
	}
	a, perr := netip.ParseAddr(string(b))
	switch {
	case perr != nil:
		return u128{}, &SyntaxError{Token: string(b), Msg: "bad address"}
	case a.Zone() != "":
		return u128{}, &SyntaxError{Token: string(b), Msg: "address with a zone"}
	case v6 && !a.Is6():
		return u128{}, &SyntaxError{Token: string(b), Msg: "IPv4 address in an IPv6 file"}
	case !v6 && !a.Is4():
		return u128{}, &SyntaxError{Token: string(b), Msg: "IPv6 address in an IPv4 file"}
	case v6:
		return u128Of(a), nil
	default:
		return u128{lo: uint64(b4Of(a))}, nil
	}
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseDec128 parses a decimal number of at most 128 bits.
func parseDec128(b []byte) (u128, bool) {
	var v u128
	if len(b) <= 19 { // fits in 64 bits
		for _, c := range b {
			v.lo = v.lo*10 + uint64(c-'0')
		}
		return v, true
	}
	for _, c := range b {
		// v = v*10 + d
		hi1, lo1 := bits.Mul64(v.lo, 10)
		hi2, hi2lo := bits.Mul64(v.hi, 10)
		if hi2 != 0 {
			return u128{}, false
		}
		h, carry := bits.Add64(hi2lo, hi1, 0)
		if carry != 0 {
			return u128{}, false
		}
		l, carry := bits.Add64(lo1, uint64(c-'0'), 0)
		h, carry = bits.Add64(h, 0, carry)
		if carry != 0 {
			return u128{}, false
		}
		v = u128{h, l}
	}
	return v, true
}

// parseASN parses an AS number: decimal, optionally written AS123.
func parseASN(b []byte) (uint32, *SyntaxError) {
	d := b
	if len(d) > 2 && (d[0] == 'A' || d[0] == 'a') && (d[1] == 'S' || d[1] == 's') {
		d = d[2:]
	}
	if len(d) == 0 || len(d) > 10 || !isDigits(d) {
		return 0, &SyntaxError{Token: string(b), Msg: "bad AS number"}
	}
	var v uint64
	for _, c := range d {
		v = v*10 + uint64(c-'0')
	}
	if v > 0xffffffff {
		return 0, &SyntaxError{Token: string(b), Msg: "AS number out of range"}
	}
	return uint32(v), nil
}

// parseCSVField parses the last field of a row: either bare (everything up
// to the end of the line, trimmed; commas are taken literally) or quoted
// with doubled quotes inside and nothing after the closing quote.
func parseCSVField(b []byte, buf []byte) ([]byte, *SyntaxError) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '"' {
		if bytes.IndexByte(b, '"') >= 0 {
			return nil, &SyntaxError{Token: string(b), Msg: `quote in an unquoted field (quote the field and double the quote)`}
		}
		return cleanText(buf, b), nil
	}
	out := buf
	for i := 1; ; {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return nil, &SyntaxError{Token: string(b), Msg: "unterminated quoted field"}
		}
		out = append(out, b[i:i+j]...)
		i += j + 1
		if i < len(b) && b[i] == '"' { // doubled quote
			out = append(out, '"')
			i++
			continue
		}
		if i != len(b) {
			return nil, &SyntaxError{Token: string(b), Msg: "text after the closing quote"}
		}
		break
	}
	if !isClean(out[len(buf):]) {
		return cleanText(buf, bytes.Clone(out[len(buf):])), nil
	}
	return out, nil
}

// isClean reports whether s is valid UTF-8 without control characters.
func isClean(s []byte) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if c < 0x80 || r == utf8.RuneError && n == 1 || r < 0xa0 {
			return false // ASCII control, invalid UTF-8 or C1 control
		}
		i += n
	}
	return true
}

// cleanText appends s to dst with invalid UTF-8 and control characters
// replaced by U+FFFD: names go to stores and UIs that expect valid text
// (DuckDB stores NULL for a VARCHAR that is not valid UTF-8). s and dst
// must not overlap.
func cleanText(dst, s []byte) []byte {
	if isClean(s) {
		return append(dst, s...)
	}
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 || r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			r = utf8.RuneError
		}
		dst = utf8.AppendRune(dst, r)
		s = s[n:]
	}
	return dst
}
