// Package chtest runs Debian's clickhouse-server for tests, by hand: its own
// configuration in a temporary directory (listening on 127.0.0.1 only, on
// a free native-protocol port, data, temporary files and logs in the
// directory, small caches, no HTTP port), never through systemd. One node,
// or several shards that each know the cluster, so a Distributed table
// spans them (no ZooKeeper: a cluster without replication needs none).
//
// A test that calls Start or StartCluster is skipped, with the reason,
// when clickhouse-server is not installed (scripts/test.sh installs it when
// run as root), and fails when it is installed but does not start.
package chtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Server is one clickhouse-server process.
type Server struct {
	Port int    // native protocol port on 127.0.0.1
	Dir  string // configuration, data and logs

	t    testing.TB
	bin  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Addr is host:port of the native protocol.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is the store URL of database db on this server (with ?cluster=NAME
// for a cluster's Distributed tables, when cluster is not empty).
func (s *Server) URL(db, cluster string) string {
	u := "clickhouse://" + s.Addr() + "/" + db
	if cluster != "" {
		u += "?cluster=" + cluster
	}
	return u
}

// Binary finds clickhouse-server ("" when it is not installed).
func Binary() string {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server", "/usr/bin/clickhouse"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

func binary(t testing.TB) string {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skip("clickhouse-server is not installed (apt-get install clickhouse-server; scripts/test.sh does it as root)")
	}
	return bin
}

// Start starts one server and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartCluster(t, "", 1)[0]
}

// StartCluster starts n servers; when name is not empty each one's
// configuration defines a cluster of that name with one shard per server
// (no replicas), so a Distributed table on any of them spans all.
func StartCluster(t testing.TB, name string, n int) []*Server {
	t.Helper()
	bin := binary(t)
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	var cluster string
	if name != "" {
		var b strings.Builder
		fmt.Fprintf(&b, "<remote_servers><%s>", name)
		for _, p := range ports {
			fmt.Fprintf(&b, "<shard><replica><host>127.0.0.1</host><port>%d</port></replica></shard>", p)
		}
		fmt.Fprintf(&b, "</%s></remote_servers>", name)
		cluster = b.String()
	}
	servers := make([]*Server, n)
	for i, p := range ports {
		dir := t.TempDir()
		s := &Server{Port: p, Dir: dir, t: t, bin: bin}
		if err := writeConfig(dir, p, cluster); err != nil {
			t.Fatal(err)
		}
		servers[i] = s
		t.Cleanup(func() { s.Stop() })
	}
	for _, s := range servers {
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
	}
	return servers
}

// freePort finds a free TCP port on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeConfig(dir string, port int, cluster string) error {
	for _, d := range []string{"data", "tmp", "log", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return err
		}
	}
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/log/server.log</log><errorlog>%[1]s/log/error.log</errorlog><console>0</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%[2]d</tcp_port>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>64</max_concurrent_queries>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  %[3]s
</yandex>
`, dir, port, cluster)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o640); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o640)
}

// Start starts the server (again, after Stop, on the same port and data)
// and waits until it answers.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	out, err := os.OpenFile(filepath.Join(s.Dir, "log", "stdout.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "--config-file="+filepath.Join(s.Dir, "config.xml"))
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start clickhouse-server: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := s.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.stopLocked(syscall.SIGKILL)
			return fmt.Errorf("clickhouse-server on %s did not answer in 60s: %v (%s)", s.Addr(), err, s.logTail())
		}
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("clickhouse-server on %s exited at start: %s", s.Addr(), s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) ping() error {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.Addr()}, DialTimeout: time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return conn.Ping(ctx)
}

func (s *Server) logTail() string {
	var parts []string
	for _, f := range []string{"log/stdout.log", "log/error.log"} {
		b, _ := os.ReadFile(filepath.Join(s.Dir, f))
		if len(b) > 2000 {
			b = b[len(b)-2000:]
		}
		if len(b) > 0 {
			parts = append(parts, strings.TrimSpace(string(b)))
		}
	}
	return strings.Join(parts, " | ")
}

// Stop stops the server (SIGTERM, SIGKILL after 30 seconds); its data stays
// for Start.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGTERM)
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGKILL)
}

func (s *Server) stopLocked(sig syscall.Signal) error {
	if s.cmd == nil {
		return nil
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	return nil
}
