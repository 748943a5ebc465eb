package grab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Redis: the client speaks first. We send "INFO server" as a RESP array
// (read-only, and answered before authentication only when none is
// configured); the reply is a bulk string of "key:value" lines. A server
// that wants a password answers -NOAUTH, one in protected mode -DENIED:
// both are still Redis. Anything whose first byte is not a RESP type
// (+ - : $ *) is not Redis.
func init() {
	Register(Module{
		Name:  "redis",
		Ports: []uint16{6379, 6380},
		Rank:  40,
		Grab:  grabRedis,
	})
}

const (
	redisLineMax   = 4096     // a status, error or length line
	redisBulkMax   = 64 << 10 // INFO server is about 1.5 KiB
	redisBannerMax = 1024
	redisInfoLines = 256
)

// redisInfoCmd is INFO server as a RESP array of bulk strings.
var redisInfoCmd = []byte("*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")

func grabRedis(ctx context.Context, s *Session) (*Result, error) {
	own := s.Target.Protocol == "redis" || s.Target.Addr.Port() == 6379 || s.Target.Addr.Port() == 6380
	if err := s.Write(redisInfoCmd); err != nil {
		return nil, err
	}
	raw, err := redisReadReply(s)
	if err != nil {
		return nil, err
	}
	r, err := redisDescribe(raw, own)
	if err != nil {
		return nil, err
	}
	// Redis before 2.6 takes no section argument: ask again, inline.
	if r.Data["redis.error"] != "" && strings.HasPrefix(r.Data["redis.error"], "ERR wrong number of arguments") {
		if err := s.Write([]byte("INFO\r\n")); err == nil {
			if raw2, err := redisReadReply(s); err == nil {
				if r2, err := redisDescribe(raw2, true); err == nil && r2.Version != "" {
					return r2, nil
				}
			}
		}
	}
	return r, nil
}

// redisReadReply reads one RESP reply's bytes: a line, and for a bulk
// string its payload. Arrays are not followed (INFO never returns one);
// their header line alone identifies the protocol.
func redisReadReply(s *Session) ([]byte, error) {
	line, err := s.ReadUntil([]byte("\n"), redisLineMax)
	if err != nil {
		// an endless line or a close: what came decides whose it was
		if b, _ := s.Peek(); len(b) > 0 && !redisTypeByte(b[0]) {
			return nil, NotMine("reply %q", clip(b, 40))
		}
		return nil, err
	}
	if len(line) == 0 || !redisTypeByte(line[0]) {
		return nil, NotMine("reply %q", clip(line, 40))
	}
	if line[0] != '$' {
		return line, nil
	}
	n, err := redisInt(bytes.TrimRight(line[1:], "\r\n"))
	if err != nil {
		return nil, NotMine("bulk length %q", clip(line, 40))
	}
	if n < 0 {
		return line, nil // the null bulk string
	}
	if n > redisBulkMax {
		return nil, fmt.Errorf("%w: redis bulk string of %d bytes", ErrTooLarge, n)
	}
	body, err := s.ReadFull(int(n) + 2)
	if err != nil {
		return nil, err
	}
	return append(append([]byte(nil), line...), body...), nil
}

func redisTypeByte(b byte) bool {
	switch b {
	case '+', '-', ':', '$', '*':
		return true
	}
	return false
}

// redisInt parses a RESP integer: an optional minus and decimal digits.
func redisInt(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, errors.New("bad integer")
	}
	return strconv.ParseInt(string(b), 10, 64)
}

// redisReply is one RESP2 reply as the grabber sees it.
type redisReply struct {
	kind byte   // + - : $ *
	line string // the first line's text after the type byte
	bulk []byte // the payload of a bulk string
	null bool   // $-1 or *-1
}

var errRedisShort = errors.New("redis: reply incomplete")

// parseRedisReply parses the first RESP2 reply in b and returns it with
// the number of bytes it took. For arrays only the header is read.
func parseRedisReply(b []byte) (redisReply, int, error) {
	var r redisReply
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(b) > redisLineMax {
			return r, 0, fmt.Errorf("%w: redis line", ErrTooLarge)
		}
		return r, 0, errRedisShort
	}
	line := bytes.TrimRight(b[:i], "\r")
	n := i + 1
	if len(line) == 0 || !redisTypeByte(line[0]) {
		return r, 0, NotMine("reply %q", clip(line, 40))
	}
	r.kind, r.line = line[0], string(line[1:])
	switch r.kind {
	case ':', '*':
		v, err := redisInt(line[1:])
		if err != nil || v < -1 {
			return r, 0, NotMine("resp %c%q", r.kind, clip(line[1:], 20))
		}
		r.null = r.kind == '*' && v == -1
	case '$':
		v, err := redisInt(line[1:])
		if err != nil || v < -1 {
			return r, 0, NotMine("bulk length %q", clip(line[1:], 20))
		}
		if v == -1 {
			r.null = true
			break
		}
		if v > redisBulkMax {
			return r, 0, fmt.Errorf("%w: redis bulk string of %d bytes", ErrTooLarge, v)
		}
		if len(b)-n < int(v)+2 {
			return r, 0, errRedisShort
		}
		r.bulk = b[n : n+int(v)]
		if b[n+int(v)] != '\r' || b[n+int(v)+1] != '\n' {
			return r, 0, NotMine("bulk string not ended by CR LF")
		}
		n += int(v) + 2
	case '+', '-':
		if !redisPrintable(r.line) {
			return r, 0, NotMine("resp %c%q", r.kind, clip(line[1:], 20))
		}
	}
	return r, n, nil
}

func redisPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// redisErrorCode is the first word of an error reply when it is an
// upper-case code, as Redis writes them ("ERR", "NOAUTH", "WRONGTYPE").
func redisErrorCode(msg string) string {
	code, _, _ := strings.Cut(msg, " ")
	if code == "" || len(code) > 32 {
		return ""
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; (c < 'A' || c > 'Z') && c != '_' {
			return ""
		}
	}
	return code
}

// parseRedisInfo reads INFO's "key:value" lines; "# Section" lines and
// anything else are skipped.
func parseRedisInfo(b []byte) map[string]string {
	out := map[string]string{}
	for i := 0; i < redisInfoLines && len(b) > 0; i++ {
		var line []byte
		if j := bytes.IndexByte(b, '\n'); j >= 0 {
			line, b = b[:j], b[j+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(k) == 0 || len(k) > 64 || len(v) > 512 {
			continue
		}
		if _, dup := out[string(k)]; !dup {
			out[string(k)] = string(v)
		}
	}
	return out
}

// redisDescribe turns one reply to INFO into a Result. own is true on
// Redis's own ports, where any well-formed RESP reply counts; elsewhere
// an error reply must look like Redis's ("-CODE message").
func redisDescribe(raw []byte, own bool) (*Result, error) {
	rep, _, err := parseRedisReply(raw)
	if err != nil {
		if errors.Is(err, errRedisShort) {
			return nil, NotMine("truncated reply")
		}
		return nil, err
	}
	r := &Result{Protocol: "redis"}
	switch rep.kind {
	case '-':
		code := redisErrorCode(rep.line)
		if code == "" && !own {
			return nil, NotMine("error %q", clip([]byte(rep.line), 40))
		}
		r.Banner = redisBanner(raw)
		r.Set("redis.error", redisClip(rep.line, 256))
		switch code {
		case "NOAUTH":
			r.Product = "Redis"
			r.Set("redis.auth", "required")
		case "DENIED":
			r.Product = "Redis"
			r.Set("redis.auth", "protected mode")
		case "NOPERM":
			r.Product = "Redis"
			r.Set("redis.auth", "no permission")
		}
		return r, nil
	case '$':
		if rep.null {
			r.Banner = redisBanner(raw)
			return r, nil
		}
		info := parseRedisInfo(rep.bulk)
		r.Banner = redisBanner(raw)
		if len(info) == 0 {
			if !own {
				return nil, NotMine("bulk reply with no INFO fields")
			}
			return r, nil
		}
		redisIdentify(r, info)
		r.Match = map[string]string{"redis.info": string(clip(rep.bulk, 8<<10))}
		return r, nil
	default:
		// a status, integer or array where INFO returns a bulk string:
		// a RESP speaker, but not one we know more about
		if !own && rep.kind != '+' {
			return nil, NotMine("resp %c reply to INFO", rep.kind)
		}
		r.Banner = redisBanner(raw)
		return r, nil
	}
}

// redisIdentify fills product, version and details from INFO fields.
// Valkey and Dragonfly also report a redis_version for compatibility;
// their own field wins.
func redisIdentify(r *Result, info map[string]string) {
	ver := func(v string) string {
		v = strings.TrimSpace(v)
		if len(v) > 64 || !redisPrintable(v) {
			return ""
		}
		return v
	}
	switch {
	case ver(info["valkey_version"]) != "":
		r.Product, r.Version = "Valkey", ver(info["valkey_version"])
	case ver(info["dragonfly_version"]) != "":
		r.Product = "Dragonfly"
		r.Version = strings.TrimPrefix(strings.TrimPrefix(ver(info["dragonfly_version"]), "df-"), "v")
	case ver(info["redis_version"]) != "":
		r.Product, r.Version = "Redis", ver(info["redis_version"])
	}
	r.Set("redis.version", ver(info["redis_version"]))
	r.Set("redis.mode", ver(info["redis_mode"]))
	r.Set("redis.os", ver(info["os"]))
	r.Set("redis.arch_bits", ver(info["arch_bits"]))
	r.Set("redis.server_name", ver(info["server_name"]))
}

// redisBanner is the reply's first lines, at most 16 lines and
// redisBannerMax bytes, cut at a line end when it is clipped.
func redisBanner(raw []byte) []byte {
	end, lines := 0, 0
	for end < len(raw) && end < redisBannerMax && lines < 16 {
		j := bytes.IndexByte(raw[end:], '\n')
		if j < 0 || end+j+1 > redisBannerMax {
			if end == 0 {
				end = min(len(raw), redisBannerMax)
			}
			break
		}
		end += j + 1
		lines++
	}
	return bytes.Clone(raw[:end])
}

func redisClip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
