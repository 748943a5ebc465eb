package grab

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// mysqlPacket frames a payload: 3-byte little-endian length, sequence id.
func mysqlPacket(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// mysqlV10 lays out Protocol::HandshakeV10 as the MySQL documentation
// gives it. reserved is the 10 bytes after the auth data length
// (MariaDB puts its extended capabilities in the last four).
func mysqlV10(version string, caps uint32, charset byte, reserved [10]byte, plugin string) []byte {
	p := []byte{10}
	p = append(append(p, version...), 0)
	p = binary.LittleEndian.AppendUint32(p, 4242) // thread id
	p = append(p, "abcdefgh"...)                  // auth-plugin-data-part-1
	p = append(p, 0)                              // filler
	p = binary.LittleEndian.AppendUint16(p, uint16(caps))
	p = append(p, charset)
	p = binary.LittleEndian.AppendUint16(p, 0x0002) // SERVER_STATUS_AUTOCOMMIT
	p = binary.LittleEndian.AppendUint16(p, uint16(caps>>16))
	p = append(p, 21) // auth_plugin_data_len: 8 + 12 + NUL
	p = append(p, reserved[:]...)
	p = append(p, "ijklmnopqrst\x00"...) // auth-plugin-data-part-2, 13 bytes
	p = append(append(p, plugin...), 0)
	return mysqlPacket(0, p)
}

// mysqlErr is an ERR_Packet sent instead of the handshake.
func mysqlErr(code uint16, state, msg string) []byte {
	p := []byte{0xff}
	p = binary.LittleEndian.AppendUint16(p, code)
	if state != "" {
		p = append(append(p, '#'), state...)
	}
	return mysqlPacket(0, append(p, msg...))
}

var (
	mysql8Greeting  = mysqlV10("8.0.36", 0xdfffffff, 255, [10]byte{}, "caching_sha2_password")
	mariadbGreeting = mysqlV10("5.5.5-10.11.6-MariaDB-0+deb12u1", 0xa0fff7fe&^mysqlClientLongPassword|mysqlClientPluginAuth|mysqlClientSecureConn|mysqlClientSSL, 45,
		[10]byte{0, 0, 0, 0, 0, 0, 0x1d, 0, 0, 0}, "mysql_native_password")
	mysqlHostDenied = mysqlErr(1130, "", "Host '192.0.2.10' is not allowed to connect to this MariaDB server")
)

// mysqlFake sends greeting on connect and keeps the connection open,
// as mysqld does while it waits for the handshake response (reporting
// how many bytes the client sent on got).
func mysqlFake(greeting []byte, got chan<- int) func(c net.Conn) {
	return func(c net.Conn) {
		c.Write(greeting)
		n := 0
		buf := make([]byte, 1024)
		for {
			k, err := c.Read(buf)
			n += k
			if err != nil {
				break
			}
		}
		got <- n
	}
}

func TestMySQL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		greeting         []byte
		port             uint16
		proto            string
		want             string
		product, version string
		data             map[string]string
	}{
		{
			name: "mysql 8", greeting: mysql8Greeting, port: 3306,
			want: "mysql", product: "MySQL", version: "8.0.36",
			data: map[string]string{
				"mysql.server_version": "8.0.36", "mysql.auth_plugin": "caching_sha2_password",
				"mysql.capabilities": "dfffffff", "mysql.charset": "255", "mysql.ssl": "yes", "mysql.protocol": "10",
			},
		},
		{
			name: "mariadb on another port", greeting: mariadbGreeting,
			want: "mysql", product: "MariaDB", version: "10.11.6",
			data: map[string]string{
				"mysql.server_version": "5.5.5-10.11.6-MariaDB-0+deb12u1", "mysql.auth_plugin": "mysql_native_password",
				"mysql.mariadb_capabilities": "0000001d", "mysql.charset": "45",
			},
		},
		{
			name: "host not allowed", greeting: mysqlHostDenied, proto: "mysql",
			want: "mysql",
			data: map[string]string{"mysql.error_code": "1130", "mysql.error": "Host '192.0.2.10' is not allowed to connect to this MariaDB server"},
		},
		{
			name: "too many connections", greeting: mysqlErr(1040, "08004", "Too many connections"), port: 3306,
			want: "mysql",
			data: map[string]string{"mysql.error_code": "1040", "mysql.error_state": "08004", "mysql.error": "Too many connections"},
		},
		{
			name:     "protocol 9",
			greeting: mysqlPacket(0, append([]byte("\x093.20.32a\x00"), 1, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 0)),
			port:     3306, want: "mysql", product: "MySQL", version: "3.20.32",
			data: map[string]string{"mysql.protocol": "9"},
		},
		{
			name: "tidb", greeting: mysqlV10("8.0.11-TiDB-v7.5.0", 0x00ffffff|mysqlClientPluginAuth, 46, [10]byte{}, "mysql_native_password"),
			port: 3306, want: "mysql", product: "TiDB", version: "7.5.0",
		},
		{
			name: "ssh is not mysql", greeting: []byte("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"), proto: "mysql",
			want: "unknown",
		},
		{
			name: "16 MB length, nothing after", greeting: []byte{0xff, 0xff, 0xff, 0x00, 0x0a}, port: 3306,
			want: "unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan int, 16)
			addr := fakeServer(t, mysqlFake(tt.greeting, got))
			port := tt.port
			if port == 0 {
				port = addr.Port()
			}
			out := dbtGrab(t, addr, dbtTarget(port, tt.proto), time.Second)
			if out.err != nil {
				t.Fatal(out.err)
			}
			svc := out.svc
			if svc.Protocol != tt.want || svc.Product != tt.product || svc.Version != tt.version {
				t.Fatalf("got %q %q %q, want %q %q %q (%v)", svc.Protocol, svc.Product, svc.Version, tt.want, tt.product, tt.version, svc.Data)
			}
			for k, v := range tt.data {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q", k, svc.Data[k], v)
				}
			}
			if tt.want == "mysql" {
				if !bytes.Equal(svc.Banner, tt.greeting) {
					t.Errorf("banner % x", svc.Banner)
				}
				select {
				case n := <-got:
					if n != 0 {
						t.Errorf("the client sent %d bytes", n)
					}
				case <-time.After(2 * time.Second):
					t.Errorf("the connection was not closed")
				}
			}
		})
	}
}

func TestMySQLHostile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"endless bytes", func(c net.Conn) {
			for range 1000 {
				if _, err := c.Write(bytes.Repeat([]byte{0x0a}, 4096)); err != nil {
					return
				}
			}
		}},
		{"slow drip", func(c net.Conn) {
			for _, b := range mysql8Greeting {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}},
		{"silent", dbtHold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, tt.handle)
			out := dbtGrab(t, addr, dbtTarget(3306, "mysql"), time.Second)
			if out.took > 2*time.Second {
				t.Fatalf("took %v", out.took)
			}
			if out.svc.Version != "" {
				t.Fatalf("identified %+v", out.svc)
			}
		})
	}
}

func TestMySQLGreetingParse(t *testing.T) {
	// a 3.23-era handshake ends after the lower capability flags
	short := []byte{10}
	short = append(short, "3.23.58\x00"...)
	short = append(short, 1, 0, 0, 0)
	short = append(short, "abcdefgh\x00"...)
	short = append(short, 0x2c, 0x00)
	g, n, err := parseMySQLGreeting(mysqlPacket(0, short))
	if err != nil || g.version != "3.23.58" || g.caps != 0x2c || n != 4+len(short) {
		t.Fatalf("%+v %d %v", g, n, err)
	}
	// MySQL 5.5.8 left the NUL off the plugin name
	p := mysqlV10("5.5.8", 0x000ff7ff|mysqlClientPluginAuth|mysqlClientSecureConn, 8, [10]byte{}, "mysql_native_password")
	p = p[:len(p)-1]
	p[0]--
	if g, _, err := parseMySQLGreeting(p); err != nil || g.authPlugin != "mysql_native_password" {
		t.Fatalf("%+v %v", g, err)
	}
	for _, bad := range [][]byte{
		mysqlPacket(1, mysql8Greeting[4:]),            // not sequence 0
		mysql8Greeting[:20],                           // cut short
		mysqlPacket(0, []byte("\x0a8.0.36")),          // version not terminated
		mysqlPacket(0, []byte("\x0a\x01\x02\x00abc")), // unprintable version
		mysqlPacket(0, []byte{0xff, 0x10, 0x00}),      // error without a message
		[]byte("220 ftp.example.com FTP server ready\r\n"),
	} {
		if mysqlClaims(bad) {
			t.Errorf("claimed % x", bad)
		}
	}
}

func TestMySQLProduct(t *testing.T) {
	tests := []struct{ in, product, version string }{
		{"5.5.5-10.11.6-MariaDB-0+deb12u1", "MariaDB", "10.11.6"},
		{"11.4.2-MariaDB-ubu2404", "MariaDB", "11.4.2"},
		{"8.0.36", "MySQL", "8.0.36"},
		{"5.7.44-log", "MySQL", "5.7.44"},
		{"8.0.35-0ubuntu0.22.04.1", "MySQL", "8.0.35"},
		{"5.7.25-TiDB-v7.5.0", "TiDB", "7.5.0"},
		{"Manticore 6.2.12", "", ""},
		{"10", "", ""},
	}
	for _, tt := range tests {
		p, v := mysqlProduct(tt.in)
		if p != tt.product || v != tt.version {
			t.Errorf("%q: %q %q", tt.in, p, v)
		}
	}
}

func FuzzMySQLHandshake(f *testing.F) {
	f.Add(mysql8Greeting)
	f.Add(mariadbGreeting)
	f.Add(mysqlHostDenied)
	f.Fuzz(func(t *testing.T, b []byte) {
		g, n, err := parseMySQLGreeting(b)
		if err != nil {
			return
		}
		if n < 5 || n > len(b) {
			t.Fatalf("packet of %d bytes from %d", n, len(b))
		}
		r := mysqlDescribe(g, b[:n])
		if r.Protocol != "mysql" || len(r.Version) > 32 {
			t.Fatalf("result %+v", r)
		}
	})
}
