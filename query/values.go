package query

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// checkTerm validates the operator and values of t for field f. The
// parser calls it (so that Parse reports bad values with a position) and
// the compiler calls it again (for trees built by hand).
func checkTerm(f *Field, t *Term) *Error {
	name := t.Field
	switch t.Op {
	case OpExists:
		if f.Kind == KindHas {
			return errorf(t.Pos, t.End, "_exists_ takes a field, not has")
		}
		return nil
	case OpEq:
		if len(t.Values) == 0 {
			return errorf(t.Pos, t.End, "expected a value after %s", quote(name+":"))
		}
		if len(t.Values) > 1 && (f.tmode == tmAfter || f.tmode == tmBefore) {
			return errorf(t.Values[1].Pos, t.End, "%s takes one value", name)
		}
		for _, v := range t.Values {
			if v.isStar() {
				if len(t.Values) > 1 {
					return errorf(v.Pos, v.End, `"*" (any value) cannot be part of a list`)
				}
				if f.Kind == KindHas {
					return errorf(v.Pos, v.End, "has takes one of: %s", strings.Join(allHasKeys, ", "))
				}
				continue
			}
			if err := checkValue(f, name, v, false); err != nil {
				return err
			}
		}
		return nil
	case OpLt, OpLe, OpGt, OpGe, OpRange:
		if !f.ordered() {
			return errorf(t.Pos, t.End, "%s cannot be compared or ranged; use %s:value", name, name)
		}
		want := 1
		if t.Op == OpRange {
			want = 2
		}
		if len(t.Values) != want {
			return errorf(t.Pos, t.End, "a comparison takes one value")
		}
		for _, v := range t.Values {
			if t.Op == OpRange && v.isStar() {
				continue
			}
			if v.Wildcard() {
				return errorf(v.Pos, v.End, "a comparison takes a plain value, not a pattern")
			}
			if err := checkValue(f, name, v, true); err != nil {
				return err
			}
		}
		if t.Op == OpRange && !t.Values[0].isStar() && !t.Values[1].isStar() {
			lo, hi := t.Values[0], t.Values[1]
			empty := false
			switch f.Kind {
			case KindInt:
				a, _ := parseInt(f, name, lo)
				b, _ := parseInt(f, name, hi)
				empty = a > b
			case KindVersion:
				empty = VersionKey(lo.Text) > VersionKey(hi.Text)
			case KindTime: // ages, or dates and times; a mix depends on now
				a, _ := parseTime(lo.Text)
				b, _ := parseTime(hi.Text)
				switch {
				case a.isDur && b.isDur:
					empty = a.dur > b.dur
				case !a.isDur && !b.isDur:
					empty = a.t.After(b.t)
				}
			}
			if empty {
				return errorf(lo.Pos, hi.End, "empty range: %s is above %s", quote(lo.Text), quote(hi.Text))
			}
		}
		return nil
	}
	return errorf(t.Pos, t.End, "unknown operator %d", t.Op)
}

// checkValue validates one value (not "*") of field f.
func checkValue(f *Field, name string, v Value, cmp bool) *Error {
	switch f.Kind {
	case KindString:
		if f.check != nil && !v.Wildcard() {
			if msg := f.check(v.Text); msg != "" {
				return errorf(v.Pos, v.End, "%s %s, not %s", name, msg, quote(v.Text))
			}
		}
	case KindInt:
		if v.Wildcard() {
			return errorf(v.Pos, v.End, "%s takes a number, not a pattern", name)
		}
		_, err := parseInt(f, name, v)
		return err
	case KindVersion:
		if v.Text == "" || cmp && VersionKey(v.Text) == "" {
			return errorf(v.Pos, v.End, "%s takes a version like 8.0", name)
		}
	case KindIP:
		_, err := parseIP(v)
		return err
	case KindTime:
		if _, ok := parseTime(v.Text); !ok || v.Wildcard() {
			return errorf(v.Pos, v.End, "%s takes a duration (15m, 1h, 7d), a date (2026-11-01) or an RFC 3339 time, not %s", name, quote(v.Text))
		}
	case KindBool:
		if _, ok := parseBool(v.Text); !ok {
			return errorf(v.Pos, v.End, "%s takes true or false, not %s", name, quote(v.Text))
		}
	case KindHas:
		for _, k := range allHasKeys {
			if strings.EqualFold(v.Text, k) {
				return nil
			}
		}
		return errorf(v.Pos, v.End, "unknown has:%s (has takes one of: %s)", v.Text, strings.Join(allHasKeys, ", "))
	}
	return nil
}

func parseInt(f *Field, name string, v Value) (int64, *Error) {
	s := v.Text
	if f.asn && len(s) > 2 && strings.EqualFold(s[:2], "as") {
		s = s[2:]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, errorf(v.Pos, v.End, "%s takes a number, not %s", name, quote(v.Text))
	}
	if err != nil || n < f.min || n > f.max {
		return 0, errorf(v.Pos, v.End, "%s must be %d-%d", name, f.min, f.max)
	}
	return n, nil
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// parseIP reads an address, a CIDR prefix or an IPv4 pattern with
// trailing "*" octets (10.1.*) as a masked prefix; a single address is a
// prefix of full length. Zones are dropped.
func parseIP(v Value) (netip.Prefix, *Error) {
	s := v.Text
	switch {
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errorf(v.Pos, v.End, "invalid CIDR %s", quote(s))
		}
		return p.Masked(), nil
	case strings.ContainsAny(s, "*?"):
		p, ok := parseIPv4Pattern(s)
		if !ok || v.Quoted {
			return netip.Prefix{}, errorf(v.Pos, v.End, "invalid IP address pattern %s (only trailing octets may be *, as in 10.1.*)", quote(s))
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errorf(v.Pos, v.End, "invalid IP address %s", quote(s))
	}
	a = a.WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseIPv4Pattern(s string) (netip.Prefix, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Prefix{}, false
	}
	var b [4]byte
	bits := 0
	star := false
	for i, p := range parts {
		if p == "*" {
			star = true
			continue
		}
		if star {
			return netip.Prefix{}, false
		}
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil || len(p) > 1 && p[0] == '0' {
			return netip.Prefix{}, false
		}
		b[i] = byte(n)
		bits += 8
	}
	if !star {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), bits), true
}

// timeValue is a parsed time value: a duration, a day, or an instant.
type timeValue struct {
	dur   time.Duration
	isDur bool
	t     time.Time // UTC
	day   bool      // t is midnight of a date written without a time
}

var durUnits = map[byte]time.Duration{
	's': time.Second, 'm': time.Minute, 'h': time.Hour,
	'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour,
}

const maxDuration = 100 * 365 * 24 * time.Hour

func parseTime(s string) (timeValue, bool) {
	if len(s) >= 2 {
		if unit, ok := durUnits[s[len(s)-1]]; ok {
			digits := s[:len(s)-1]
			if n, err := strconv.ParseUint(digits, 10, 32); err == nil {
				d := time.Duration(n) * unit
				if d/unit != time.Duration(n) || d > maxDuration {
					return timeValue{}, false
				}
				return timeValue{dur: d, isDur: true}, true
			}
		}
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return timeValue{t: t, day: true}, true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return timeValue{t: t.UTC()}, true
		}
	}
	return timeValue{}, false
}

func containsWildcard(s string) bool { return strings.ContainsAny(s, "*?") }

// likePattern turns a user pattern into a LIKE pattern with "\" as the
// escape character: "\", "%" and "_" are escaped, "*" becomes "%" and "?"
// becomes "_".
func likePattern(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '%', '_':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
