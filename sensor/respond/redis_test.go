package respond

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestRedisCLI(t *testing.T) {
	need(t, "redis-cli")
	addr, ch := listen(t, 6379, Limits{})
	host, port, _ := strings.Cut(addr, ":")
	cli := func(args ...string) string {
		out, _ := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
		return string(out)
	}
	if out := cli("PING"); strings.TrimSpace(out) != "PONG" {
		t.Errorf("PING: %q", out)
	}
	s := wait(t, ch, 5*time.Second)
	if s.info.Protocol != "redis" || !strings.Contains(string(s.ev.Payload), "PING") {
		t.Errorf("%+v", s.ev)
	}
	if out := cli("INFO", "server"); !strings.Contains(out, "redis_version:") {
		t.Errorf("INFO: %q", out)
	}
	wait(t, ch, 5*time.Second)
	out := cli("--user", "default", "--pass", "hunter2", "--no-auth-warning", "CONFIG", "SET", "dir", "/var/spool/cron")
	t.Logf("auth: %q", out)
	s = wait(t, ch, 5*time.Second)
	if s.ev.Username != "default" || s.ev.Password != "hunter2" {
		t.Errorf("creds %q %q (%q)", s.ev.Username, s.ev.Password, s.ev.Payload)
	}
}

func TestRedisChain(t *testing.T) {
	addr, ch := listen(t, 6379, Limits{})
	c := dial(t, addr)
	c.Write([]byte("*3\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$3\r\ndir\r\n" + "config get dbfilename\r\n" +
		"*3\r\n$7\r\nSLAVEOF\r\n$8\r\n10.0.0.1\r\n$4\r\n6379\r\n*1\r\n$4\r\nQUIT\r\n"))
	got := readUntil(t, c, "+OK\r\n+OK\r\n")
	want := "+OK\r\n*2\r\n$10\r\ndbfilename\r\n$0\r\n\r\n+OK\r\n+OK\r\n"
	if got != want {
		t.Errorf("got %q", got)
	}
	s := wait(t, ch, 5*time.Second)
	if s.info.Facts["redis.commands"] != "CONFIG SET,CONFIG GET,SLAVEOF,QUIT" {
		t.Errorf("%v", s.info.Facts)
	}
}
