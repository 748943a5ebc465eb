package testbin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a `vantage server` process started by a test.
type Server struct {
	URL     string // the API
	Key     string // the admin key it created at first start ("" on later starts)
	Data    string
	cmd     *exec.Cmd
	done    chan struct{}
	mu      sync.Mutex
	stderr  strings.Builder
	waitErr error
}

// ServerOptions start a server.
type ServerOptions struct {
	Data      string   // data directory (default: a new temporary one)
	Namespace string   // run inside this network namespace (ip netns exec)
	Args      []string // more flags
	Listen    string   // API address (default 127.0.0.1:0, a free port); fixed, for restarts at the same URL
}

var apiLine = regexp.MustCompile(`API on (http://\S+)`)

// StartServer starts a server on a free loopback port and waits until it
// is ready (at most a minute). The test's cleanup stops it.
func StartServer(t testing.TB, o ServerOptions) *Server {
	t.Helper()
	bin, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	if o.Data == "" {
		o.Data = t.TempDir()
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	args := append([]string{"server", "--data", o.Data, "--listen", o.Listen}, o.Args...)
	name := bin
	if o.Namespace != "" {
		args = append([]string{"netns", "exec", o.Namespace, bin}, args...)
		name = "ip"
	}
	s := &Server{Data: o.Data, cmd: exec.Command(name, args...), done: make(chan struct{})}
	pr, pw := io.Pipe()
	s.cmd.Stderr = pw
	s.cmd.Stdout = pw
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.stderr.WriteString(line + "\n")
			s.mu.Unlock()
			if m := apiLine.FindStringSubmatch(line); m != nil {
				select {
				case ready <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		s.waitErr = s.cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	select {
	case s.URL = <-ready:
	case <-s.done:
		t.Fatalf("server exited before it was ready: %v\n%s", s.waitErr, s.Log())
	case <-time.After(time.Minute):
		s.Kill()
		t.Fatalf("server not ready after a minute:\n%s", s.Log())
	}
	if b, err := os.ReadFile(filepath.Join(o.Data, "admin.key")); err == nil {
		s.Key = strings.TrimSpace(string(b))
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// Log is what the server wrote so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// Stop asks the server to stop (SIGTERM) and waits for it.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.Kill()
		return fmt.Errorf("server did not stop within 30 s")
	}
	return nil
}

// Kill ends the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// Wait polls cond until it holds or the timeout passes.
func Wait(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not after %v (last error: %v)", timeout, last)
}
