package grab

import (
	"bytes"
	"context"
	"strings"
)

// memcached: the client speaks first. "version" is answered with
// "VERSION 1.6.21"; then "stats" (read-only counters, no key is touched)
// tells the libevent version and the pointer size. Anything other than a
// VERSION line is not memcached, except its error lines on its own port
// (a server with SASL on refuses the text protocol).
func init() {
	Register(Module{
		Name:  "memcached",
		Ports: []uint16{11211},
		Rank:  50,
		Grab:  grabMemcached,
	})
}

const (
	memcachedLineMax  = 512
	memcachedStatsMax = 16 << 10
	memcachedStatsN   = 128 // stats lines read at most
)

func grabMemcached(ctx context.Context, s *Session) (*Result, error) {
	own := s.Target.Protocol == "memcached" || s.Target.Addr.Port() == 11211
	if err := s.Write([]byte("version\r\n")); err != nil {
		return nil, err
	}
	line, err := s.ReadLine(memcachedLineMax)
	if err != nil {
		if b, _ := s.Peek(); len(b) > 0 && !bytes.HasPrefix(b, []byte("VERSION ")) {
			return nil, NotMine("reply %q", clip(b, 40))
		}
		return nil, err
	}
	r, err := memcachedDescribe(line, own)
	if err != nil || r.Version == "" {
		return r, err
	}
	// stats: STAT lines up to END, all on one connection we already own
	if err := s.Write([]byte("stats\r\n")); err != nil {
		return r, nil
	}
	stats, err := s.ReadUntil([]byte("END\r\n"), memcachedStatsMax)
	if err == nil {
		memcachedStats(r, parseMemcachedStats(stats))
	}
	return r, nil
}

// memcachedDescribe reads the reply to "version".
func memcachedDescribe(line string, own bool) (*Result, error) {
	if v, ok := parseMemcachedVersion(line); ok {
		r := &Result{Protocol: "memcached", Banner: []byte(line), Product: "memcached", Version: v}
		return r, nil
	}
	if own && memcachedIsError(line) {
		r := &Result{Protocol: "memcached", Banner: []byte(line)}
		r.Set("memcached.error", line)
		return r, nil
	}
	return nil, NotMine("reply %q", clip([]byte(line), 40))
}

// parseMemcachedVersion reads "VERSION 1.6.21". The version is the first
// word after it, in the characters versions use.
func parseMemcachedVersion(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "VERSION ")
	if !ok {
		return "", false
	}
	v, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
	if v == "" || len(v) > 64 {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte(".-_+~:", c) >= 0) {
			return "", false
		}
	}
	return v, true
}

func memcachedIsError(line string) bool {
	if len(line) > memcachedLineMax || !redisPrintable(line) {
		return false
	}
	return line == "ERROR" || strings.HasPrefix(line, "CLIENT_ERROR") || strings.HasPrefix(line, "SERVER_ERROR")
}

// parseMemcachedStats reads "STAT name value" lines up to "END".
func parseMemcachedStats(b []byte) map[string]string {
	out := map[string]string{}
	for i := 0; i < memcachedStatsN && len(b) > 0; i++ {
		var line []byte
		if j := bytes.IndexByte(b, '\n'); j >= 0 {
			line, b = b[:j], b[j+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimRight(line, "\r")
		if string(line) == "END" {
			break
		}
		rest, ok := bytes.CutPrefix(line, []byte("STAT "))
		if !ok {
			continue
		}
		k, v, ok := bytes.Cut(rest, []byte(" "))
		if !ok || len(k) == 0 || len(k) > 64 || len(v) > 256 {
			continue
		}
		out[string(k)] = string(v)
	}
	return out
}

func memcachedStats(r *Result, st map[string]string) {
	for _, k := range []string{"libevent", "pointer_size", "threads"} {
		if v := st[k]; redisPrintable(v) {
			r.Set("memcached."+k, v)
		}
	}
}
