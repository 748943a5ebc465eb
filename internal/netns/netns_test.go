package netns_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/netns"
)

// the main goroutine stays on the main thread, as Join requires
func init() { runtime.LockOSThread() }

func TestListenMissingNamespace(t *testing.T) {
	_, err := netns.Listen("/nonexistent/vantage-netns", "tcp", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "network namespace") {
		t.Fatalf("want an error naming the namespace, got %v", err)
	}
}

// TestListenInNamespace opens a listener inside a namespace of its own:
// it is reachable from inside, not from the test's namespace, and Accept
// works from the goroutine that asked.
func TestListenInNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: making a network namespace needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: ip (iproute2) is not installed")
	}
	name := fmt.Sprintf("vantage-nstest-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v\n%s", err, out)
	}
	l, err := netns.Listen(name, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "inside\n")
			c.Close()
		}
	}()
	// from here (the host namespace) nothing listens on that port
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the listener is reachable outside its namespace at %s", addr)
	}
	// from inside it answers
	var got string
	err = netns.Do(name, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	})
	if err != nil || got != "inside\n" {
		t.Fatalf("dial inside the namespace: %q, %v", got, err)
	}
}
