package record

import (
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the service as encoding/json marshals it: the same
// bytes (TestAppendJSON and FuzzAppendJSON compare the two), without the
// reflection. A grabber writes one object per service, and json.Marshal
// was a tenth of an HTTP grab's CPU.
func (s *Service) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	b = s.AppendJSONFields(b, true)
	return append(b, '}')
}

// AppendJSONFields appends the service's members as AppendJSON does, with
// neither brace, so that a caller can add members of its own; banner false
// leaves the raw banner out (for a caller that shows it another way). The
// members are never empty: "geo" is always there.
func (s *Service) AppendJSONFields(b []byte, banner bool) []byte {
	b = append(b, `"id":"`...)
	b = hex.AppendEncode(b, s.ID[:])
	b = append(b, `","time":`...)
	b = appendJSONTime(b, s.Time)
	b = appendStrMember(b, "scan_id", s.ScanID)
	b = append(b, `,"ip":"`...)
	if s.IP.IsValid() {
		b = s.IP.AppendTo(b)
	}
	b = append(b, `","port":`...)
	b = strconv.AppendUint(b, uint64(s.Port), 10)
	b = append(b, `,"transport":`...)
	b = AppendJSONString(b, s.Transport)
	b = append(b, `,"state":`...)
	b = AppendJSONString(b, s.State)
	b = appendUintMember(b, "ttl", uint64(s.TTL))
	b = appendUintMember(b, "window", uint64(s.Window))
	b = appendStrMembers(b, "protocol", s.Protocol, "product", s.Product, "version", s.Version)
	b = appendStrsMember(b, "cpe", s.CPE)
	if banner && len(s.Banner) > 0 {
		b = append(b, `,"banner":"`...)
		b = base64.StdEncoding.AppendEncode(b, s.Banner)
		b = append(b, '"')
	}
	if h := s.HTTP; h != nil {
		b = append(b, `,"http":{`...)
		n := len(b)
		if h.Status != 0 {
			b = append(b, `,"status":`...)
			b = strconv.AppendInt(b, int64(h.Status), 10)
		}
		b = appendStrMembers(b, "title", h.Title, "server", h.Server)
		if len(h.Headers) > 0 {
			b = append(b, `,"headers":[`...)
			for i, hd := range h.Headers {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"name":`...)
				b = AppendJSONString(b, hd.Name)
				b = append(b, `,"value":`...)
				b = AppendJSONString(b, hd.Value)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		if h.FaviconHash != 0 {
			b = append(b, `,"favicon_hash":`...)
			b = strconv.AppendInt(b, int64(h.FaviconHash), 10)
		}
		b = appendStrMembers(b, "body_sha256", h.BodySHA256, "location", h.Location)
		b = closeObject(b, n)
	}
	if t := s.TLS; t != nil {
		b = append(b, `,"tls":{`...)
		n := len(b)
		b = appendStrMembers(b, "version", t.Version, "cipher", t.Cipher, "ja3s", t.JA3S,
			"sha256", t.SHA256, "subject", t.Subject, "issuer", t.Issuer)
		b = appendStrsMember(b, "sans", t.SANs)
		if !t.NotBefore.IsZero() {
			b = append(b, `,"not_before":`...)
			b = appendJSONTime(b, t.NotBefore)
		}
		if !t.NotAfter.IsZero() {
			b = append(b, `,"not_after":`...)
			b = appendJSONTime(b, t.NotAfter)
		}
		if len(t.Chain) > 0 {
			b = append(b, `,"chain":[`...)
			for i, der := range t.Chain {
				if i > 0 {
					b = append(b, ',')
				}
				if der == nil {
					b = append(b, "null"...)
					continue
				}
				b = append(b, '"')
				b = base64.StdEncoding.AppendEncode(b, der)
				b = append(b, '"')
			}
			b = append(b, ']')
		}
		b = closeObject(b, n)
	}
	if h := s.SSH; h != nil {
		b = append(b, `,"ssh":{`...)
		n := len(b)
		b = appendStrMembers(b, "banner", h.Banner, "hassh", h.HASSH,
			"host_key_type", h.HostKeyType, "host_key_sha256", h.HostKeySHA256)
		b = appendStrsMember(b, "kex_algorithms", h.KexAlgorithms)
		b = closeObject(b, n)
	}
	b = appendStrsMember(b, "tags", s.Tags)
	b = appendStrsMember(b, "vulns", s.Vulns)
	if len(s.Data) > 0 {
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"data":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, k)
			b = append(b, ':')
			b = AppendJSONString(b, s.Data[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"geo":{`...)
	n := len(b)
	b = appendStrMember(b, "country", s.Geo.Country)
	b = appendUintMember(b, "asn", uint64(s.Geo.ASN))
	b = appendStrMember(b, "org", s.Geo.Org)
	b = appendStrMember(b, "label", s.Geo.Label)
	return closeObject(b, n)
}

// closeObject ends an object whose members (each written with a leading
// comma) start at n: the first member's comma goes.
func closeObject(b []byte, n int) []byte {
	if len(b) > n {
		copy(b[n:], b[n+1:])
		b = b[:len(b)-1]
	}
	return append(b, '}')
}

func appendStrMember(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return AppendJSONString(b, v)
}

// appendStrMembers appends name, value pairs with appendStrMember.
func appendStrMembers(b []byte, pairs ...string) []byte {
	for i := 0; i+1 < len(pairs); i += 2 {
		b = appendStrMember(b, pairs[i], pairs[i+1])
	}
	return b
}

func appendUintMember(b []byte, name string, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendUint(b, v, 10)
}

func appendStrsMember(b []byte, name string, vs []string) []byte {
	if len(vs) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":[`...)
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, v)
	}
	return append(b, ']')
}

// appendJSONTime writes a time as time.Time's MarshalJSON does (RFC 3339
// with nanoseconds), for the years that it accepts.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// AppendJSONString appends s as a JSON string the way encoding/json writes
// one: <, > and & escaped for HTML, invalid UTF-8 as U+FFFD, and U+2028 and
// U+2029 escaped for JavaScript.
func AppendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
