package grab

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// memcachedStatsReply is "stats" as memcached 1.6.18 answers it (trimmed).
const memcachedStatsReply = "STAT pid 711\r\n" +
	"STAT uptime 3605\r\n" +
	"STAT time 1732712345\r\n" +
	"STAT version 1.6.18\r\n" +
	"STAT libevent 2.1.12-stable\r\n" +
	"STAT pointer_size 64\r\n" +
	"STAT rusage_user 0.102030\r\n" +
	"STAT rusage_system 0.203040\r\n" +
	"STAT max_connections 1024\r\n" +
	"STAT curr_connections 2\r\n" +
	"STAT total_connections 11\r\n" +
	"STAT cmd_get 0\r\n" +
	"STAT threads 4\r\n" +
	"STAT conn_yields 0\r\n" +
	"END\r\n"

// memcachedFake speaks memcached's text protocol: "version" and
// "stats" are answered as version says; an unknown command gets
// "ERROR" and, to keep other probes short, the connection closed.
func memcachedFake(version, stats string) func(c net.Conn) {
	return func(c net.Conn) {
		for range 4 {
			i, _ := dbtExpect(c, []byte("version\r\n"), []byte("stats\r\n"))
			switch i {
			case 0:
				c.Write([]byte(version))
			case 1:
				c.Write([]byte(stats))
			default:
				c.Write([]byte("ERROR\r\n"))
				return
			}
		}
	}
}

func TestMemcached(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		version, stats   string
		port             uint16
		proto            string
		want             string
		product, wantVer string
		data             map[string]string
	}{
		{
			name:    "own port",
			version: "VERSION 1.6.18\r\n", stats: memcachedStatsReply,
			port: 11211,
			want: "memcached", product: "memcached", wantVer: "1.6.18",
			data: map[string]string{"memcached.libevent": "2.1.12-stable", "memcached.pointer_size": "64", "memcached.threads": "4"},
		},
		{
			name:    "blind on another port",
			version: "VERSION 1.4.25 Ubuntu\r\n", stats: memcachedStatsReply,
			want: "memcached", product: "memcached", wantVer: "1.4.25",
		},
		{
			name:    "stats never end",
			version: "VERSION 1.6.18\r\n", stats: string(bytes.Repeat([]byte("STAT x 1\r\n"), 4000)),
			proto: "memcached",
			want:  "memcached", product: "memcached", wantVer: "1.6.18",
		},
		{
			name:    "text protocol refused on own port",
			version: "CLIENT_ERROR unauthenticated\r\n",
			port:    11211,
			want:    "memcached",
			data:    map[string]string{"memcached.error": "CLIENT_ERROR unauthenticated"},
		},
		{
			name:    "ERROR elsewhere is not memcached",
			version: "ERROR\r\n",
			want:    "unknown",
		},
		{
			name:    "another service's line",
			version: "220 mail.example.com ESMTP\r\n",
			proto:   "memcached",
			want:    "unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, memcachedFake(tt.version, tt.stats))
			port := tt.port
			if port == 0 {
				port = addr.Port()
			}
			out := dbtGrab(t, addr, dbtTarget(port, tt.proto), 3*time.Second)
			svc := out.svc
			if out.err != nil {
				t.Fatal(out.err)
			}
			if svc.Protocol != tt.want || svc.Product != tt.product || svc.Version != tt.wantVer {
				t.Fatalf("got %q %q %q, want %q %q %q", svc.Protocol, svc.Product, svc.Version, tt.want, tt.product, tt.wantVer)
			}
			for k, v := range tt.data {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q", k, svc.Data[k], v)
				}
			}
		})
	}
}

func TestMemcachedHostile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"endless line", dbtEndless([]byte("VERSION "))},
		{"slow drip", dbtDrip([]byte("VERSION 1.6.18\r\n"))},
		{"silent", dbtHold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, tt.handle)
			out := dbtGrab(t, addr, dbtTarget(11211, "memcached"), 1500*time.Millisecond)
			svc := out.svc
			if out.took > 3*time.Second {
				t.Fatalf("took %v", out.took)
			}
			if svc.Product != "" {
				t.Fatalf("identified %+v", svc)
			}
		})
	}
}

func TestMemcachedVersion(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"VERSION 1.6.21", "1.6.21", true},
		{"VERSION 1.4.5-ubuntu extra", "1.4.5-ubuntu", true},
		{"VERSION ", "", false},
		{"VERSION 1.6<script>", "", false},
		{"version 1.6.21", "", false},
		{"ERROR", "", false},
	}
	for _, tt := range tests {
		v, ok := parseMemcachedVersion(tt.in)
		if v != tt.want || ok != tt.ok {
			t.Errorf("%q: %q %v", tt.in, v, ok)
		}
	}
}

func FuzzMemcachedReply(f *testing.F) {
	f.Add([]byte("VERSION 1.6.18\r\n"))
	f.Add([]byte(memcachedStatsReply))
	f.Add([]byte("CLIENT_ERROR bad command line format\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		line, _, _ := bytes.Cut(b, []byte("\n"))
		for _, own := range []bool{false, true} {
			r, err := memcachedDescribe(string(bytes.TrimRight(line, "\r")), own)
			if err == nil && (r == nil || r.Protocol != "memcached" || len(r.Version) > 64) {
				t.Fatalf("result %+v", r)
			}
		}
		if st := parseMemcachedStats(b); len(st) > memcachedStatsN {
			t.Fatalf("%d stats", len(st))
		}
	})
}
