package grab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

// Helpers shared by the database modules' tests (redis, memcached, mqtt,
// mysql, postgres, mongodb): a fake server on 127.0.0.1 and a Grabber
// whose connections all go to it, whatever port the target names.

// dbtExpect reads from c until what came starts with one of wants
// (returning its index) or cannot be the start of any of them (-1).
func dbtExpect(c net.Conn, wants ...[]byte) (int, []byte) {
	var got []byte
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	for len(got) < 1<<16 {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		possible := false
		for i, w := range wants {
			if bytes.HasPrefix(got, w) {
				return i, got
			}
			if bytes.HasPrefix(w, got) {
				possible = true
			}
		}
		if !possible || err != nil {
			return -1, got
		}
	}
	return -1, got
}

// dbtOut is what one grab gave: the record, the module's Result (with
// the Match fields the record leaves out), the error, the time taken.
type dbtOut struct {
	svc  record.Service
	res  *Result
	err  error
	took time.Duration
}

// dbtGrab grabs target through a Grabber that dials real instead.
func dbtGrab(t *testing.T, real netip.AddrPort, target Target, timeout time.Duration) dbtOut {
	t.Helper()
	var out dbtOut
	g := New(Config{
		Timeout:       timeout,
		GreetingWait:  300 * time.Millisecond,
		MaxHandshakes: 20,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, real.String())
		},
		Identify: func(r *Result) { out.res = r },
	})
	start := time.Now()
	out.svc, out.err = g.Grab(context.Background(), target)
	out.took = time.Since(start)
	return out
}

func dbtTarget(port uint16, protocol string) Target {
	return Target{Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Protocol: protocol}
}

// dbtHostile are servers that must not hang or crash a module: endless
// bytes, a slow drip, silence.
func dbtEndless(first []byte) func(c net.Conn) {
	return func(c net.Conn) {
		buf := make([]byte, 512)
		c.SetReadDeadline(time.Now().Add(time.Second))
		c.Read(buf)
		c.Write(first)
		chunk := bytes.Repeat([]byte("A"), 4096)
		for i := 0; i < 4096; i++ {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}
}

// dbtHold keeps c open, reading and ignoring, until the client closes it.
func dbtHold(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

func dbtDrip(msg []byte) func(c net.Conn) {
	return func(c net.Conn) {
		buf := make([]byte, 512)
		c.SetReadDeadline(time.Now().Add(time.Second))
		c.Read(buf)
		for i := 0; i < 200; i++ {
			if _, err := c.Write(msg[i%len(msg) : i%len(msg)+1]); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// redisInfoServer is INFO server as redis-server 7.0.15 on Debian 12
// formats it: a "# Server" section of key:value lines.
const redisInfoServer = "# Server\r\n" +
	"redis_version:7.0.15\r\n" +
	"redis_git_sha1:00000000\r\n" +
	"redis_git_dirty:0\r\n" +
	"redis_build_id:a0f3d4b4a8a1b2c3\r\n" +
	"redis_mode:standalone\r\n" +
	"os:Linux 6.1.0-18-amd64 x86_64\r\n" +
	"arch_bits:64\r\n" +
	"monotonic_clock:POSIX clock_gettime\r\n" +
	"multiplexing_api:epoll\r\n" +
	"atomicvar_api:c11-builtin\r\n" +
	"gcc_version:12.2.0\r\n" +
	"process_id:812\r\n" +
	"process_supervised:systemd\r\n" +
	"run_id:7f0c0e5b7a4e3c1d2b9a8f7e6d5c4b3a2f1e0d9c\r\n" +
	"tcp_port:6379\r\n" +
	"server_time_usec:1732712345123456\r\n" +
	"uptime_in_seconds:3600\r\n" +
	"uptime_in_days:0\r\n" +
	"hz:10\r\n" +
	"configured_hz:10\r\n" +
	"lru_clock:1234567\r\n" +
	"executable:/usr/bin/redis-server\r\n" +
	"config_file:/etc/redis/redis.conf\r\n" +
	"io_threads_active:0\r\n"

const valkeyInfoServer = "# Server\r\n" +
	"redis_version:7.2.4\r\n" +
	"server_name:valkey\r\n" +
	"valkey_version:8.0.1\r\n" +
	"redis_git_sha1:00000000\r\n" +
	"server_mode:standalone\r\n" +
	"redis_mode:standalone\r\n" +
	"os:Linux 6.8.0-45-generic aarch64\r\n" +
	"arch_bits:64\r\n"

const redis24Info = "redis_version:2.4.17\r\n" +
	"redis_git_sha1:00000000\r\n" +
	"redis_git_dirty:0\r\n" +
	"arch_bits:32\r\n" +
	"multiplexing_api:epoll\r\n" +
	"process_id:1\r\n" +
	"uptime_in_seconds:10\r\n"

func redisBulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

// redisFake answers INFO server (RESP) and INFO (inline) the way reply
// says; anything else gets the connection closed, as redis-server does
// to what looks like HTTP.
func redisFake(reply func(cmd int) string) func(c net.Conn) {
	return func(c net.Conn) {
		for range 3 {
			i, _ := dbtExpect(c, redisInfoCmd, []byte("INFO\r\n"))
			if i < 0 {
				return
			}
			out := reply(i)
			if out == "" {
				return
			}
			c.Write([]byte(out))
			if strings.HasPrefix(out, "-DENIED") {
				return // protected mode closes the connection
			}
		}
	}
}

func TestRedis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		reply   func(cmd int) string
		port    uint16 // 0: the fake's own (unexpected) port
		proto   string
		want    string // protocol
		product string
		version string
		data    map[string]string
		banner  string // prefix
	}{
		{
			name:    "info server",
			reply:   func(int) string { return redisBulk(redisInfoServer) },
			port:    6379,
			want:    "redis",
			product: "Redis", version: "7.0.15",
			data:   map[string]string{"redis.mode": "standalone", "redis.os": "Linux 6.1.0-18-amd64 x86_64", "redis.arch_bits": "64"},
			banner: "$", // the bulk header and first lines
		},
		{
			name:    "named protocol",
			reply:   func(int) string { return redisBulk(redisInfoServer) },
			proto:   "redis",
			want:    "redis",
			product: "Redis", version: "7.0.15",
		},
		{
			name:    "blind on another port",
			reply:   func(int) string { return redisBulk(redisInfoServer) },
			want:    "redis",
			product: "Redis", version: "7.0.15",
		},
		{
			name:    "noauth",
			reply:   func(int) string { return "-NOAUTH Authentication required.\r\n" },
			port:    6379,
			want:    "redis",
			product: "Redis",
			data:    map[string]string{"redis.auth": "required"},
			banner:  "-NOAUTH Authentication required.\r\n",
		},
		{
			name: "protected mode",
			reply: func(int) string {
				return "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface.\r\n"
			},
			want:    "redis",
			product: "Redis",
			data:    map[string]string{"redis.auth": "protected mode"},
			banner:  "-DENIED Redis is running in protected mode",
		},
		{
			name: "redis 2.4 without INFO sections",
			reply: func(cmd int) string {
				if cmd == 0 {
					return "-ERR wrong number of arguments for 'info' command\r\n"
				}
				return redisBulk(redis24Info)
			},
			port:    6379,
			want:    "redis",
			product: "Redis", version: "2.4.17",
			data: map[string]string{"redis.arch_bits": "32"},
		},
		{
			name:    "valkey",
			reply:   func(int) string { return redisBulk(valkeyInfoServer) },
			port:    6380,
			want:    "redis",
			product: "Valkey", version: "8.0.1",
			data: map[string]string{"redis.version": "7.2.4", "redis.server_name": "valkey"},
		},
		{
			name:  "http server is not redis",
			reply: func(int) string { return "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" },
			proto: "redis",
			want:  "unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, redisFake(tt.reply))
			port := tt.port
			if port == 0 {
				port = addr.Port()
			}
			out := dbtGrab(t, addr, dbtTarget(port, tt.proto), 3*time.Second)
			svc := out.svc
			if out.err != nil {
				t.Fatal(out.err)
			}
			if svc.Protocol != tt.want || svc.Product != tt.product || svc.Version != tt.version {
				t.Fatalf("got %q %q %q, want %q %q %q (data %v)", svc.Protocol, svc.Product, svc.Version, tt.want, tt.product, tt.version, svc.Data)
			}
			for k, v := range tt.data {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q", k, svc.Data[k], v)
				}
			}
			if !bytes.HasPrefix(svc.Banner, []byte(tt.banner)) || len(svc.Banner) > redisBannerMax {
				t.Errorf("banner %q", svc.Banner)
			}
		})
	}
}

func TestRedisBannerBounded(t *testing.T) {
	r, err := redisDescribe([]byte(redisBulk(redisInfoServer)), true)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(r.Banner, []byte("\n")); n == 0 || n > 16 || len(r.Banner) > redisBannerMax {
		t.Fatalf("banner of %d lines, %d bytes", n, len(r.Banner))
	}
	if !strings.Contains(r.Match["redis.info"], "multiplexing_api:epoll") {
		t.Fatalf("match %v", r.Match)
	}
}

func TestRedisHostile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"endless line", dbtEndless([]byte("+"))},
		{"endless garbage", dbtEndless(nil)},
		{"4 GB bulk", func(c net.Conn) {
			dbtExpect(c, redisInfoCmd)
			c.Write([]byte("$4294967296\r\n"))
			dbtHold(c)
		}},
		{"slow drip", dbtDrip([]byte(redisBulk(redisInfoServer)))},
		{"silent", dbtHold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, tt.handle)
			out := dbtGrab(t, addr, dbtTarget(6379, "redis"), 1500*time.Millisecond)
			svc := out.svc
			if out.took > 3*time.Second {
				t.Fatalf("took %v", out.took)
			}
			if svc.Protocol == "redis" && svc.Version != "" {
				t.Fatalf("identified %+v", svc)
			}
		})
	}
}

func TestRedisReplyParse(t *testing.T) {
	tests := []struct {
		in      string
		kind    byte
		n       int
		wantErr error
	}{
		{"+OK\r\n", '+', 5, nil},
		{":42\r\n", ':', 5, nil},
		{"$3\r\nfoo\r\n", '$', 9, nil},
		{"$-1\r\n", '$', 5, nil},
		{"*2\r\n$1\r\na\r\n", '*', 4, nil},
		{"$10\r\nfoo", 0, 0, errRedisShort},
		{"$3\r\nfooXX", 0, 0, ErrNotMine},
		{"SSH-2.0-OpenSSH\r\n", 0, 0, ErrNotMine},
		{"$99999999999\r\n", 0, 0, ErrTooLarge},
		{":12a\r\n", 0, 0, ErrNotMine},
	}
	for _, tt := range tests {
		rep, n, err := parseRedisReply([]byte(tt.in))
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%q: err %v, want %v", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || rep.kind != tt.kind || n != tt.n {
			t.Errorf("%q: %c %d %v", tt.in, rep.kind, n, err)
		}
	}
}

func FuzzRedisReply(f *testing.F) {
	f.Add([]byte(redisBulk(redisInfoServer)))
	f.Add([]byte("-NOAUTH Authentication required.\r\n"))
	f.Add([]byte("$5\r\na:b\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, n, err := parseRedisReply(b)
		if err == nil && (n <= 0 || n > len(b) || !redisTypeByte(rep.kind)) {
			t.Fatalf("parsed %d of %d bytes, kind %q", n, len(b), rep.kind)
		}
		for _, own := range []bool{false, true} {
			r, err := redisDescribe(b, own)
			if err != nil {
				continue
			}
			if r == nil || r.Protocol != "redis" || len(r.Banner) > redisBannerMax || len(r.Version) > 64 {
				t.Fatalf("result %+v", r)
			}
		}
		if info := parseRedisInfo(b); len(info) > redisInfoLines {
			t.Fatalf("%d INFO fields", len(info))
		}
	})
}
