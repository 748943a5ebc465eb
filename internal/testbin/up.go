package testbin

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Ready is the --ready-file of `vantage up`.
type Ready struct {
	URL             string  `json:"url"`     // the UI, http://127.0.0.1:PORT/
	API             string  `json:"api"`     // the API base, http://127.0.0.1:PORT
	LabURL          string  `json:"lab_url"` // --demo: the API as the lab's hosts reach it
	KeyFile         string  `json:"key_file"`
	Services        int64   `json:"services"`
	Events          int64   `json:"events"`
	SourceCountries int     `json:"source_countries"`
	Seconds         float64 `json:"seconds"`
}

// Up is a `vantage up` process started by a test.
type Up struct {
	Ready Ready
	Key   string // the admin key
	Data  string
	cmd   *exec.Cmd
	log   string
	done  chan error
}

// UpOptions start `vantage up`.
type UpOptions struct {
	Demo   bool          // --demo (root; brings up the lab unless it is up)
	Data   string        // data directory (default: a new temporary one)
	Listen string        // default 127.0.0.1:0, a free port
	For    time.Duration // --for: it stops by itself after this long (default 10 minutes)
	Args   []string      // more flags
	// LockHeld tells up that this process holds the lab lock (a test
	// package whose TestMain called lab.Up); otherwise up takes it.
	LockHeld bool
	// Timeout is how long to wait for the ready file (default 5 minutes).
	Timeout time.Duration
}

// StartUp starts `vantage up` and waits until its ready file is written:
// the first scan searchable and, with Demo, the first lab traffic stored.
// The test's cleanup stops it (SIGINT, as Ctrl-C).
func StartUp(t testing.TB, o UpOptions) *Up {
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
	if o.For == 0 {
		o.For = 10 * time.Minute
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	dir := t.TempDir()
	u := &Up{Data: o.Data, log: filepath.Join(dir, "up.log"), done: make(chan error, 1)}
	ready := filepath.Join(dir, "ready.json")
	args := []string{"up", "--data", o.Data, "--listen", o.Listen, "--for", o.For.String(), "--ready-file", ready}
	if o.Demo {
		args = append(args, "--demo")
	}
	logf, err := os.Create(u.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	u.cmd = exec.Command(bin, append(args, o.Args...)...)
	u.cmd.Stdout, u.cmd.Stderr = logf, logf
	u.cmd.Env = os.Environ()
	if o.LockHeld {
		u.cmd.Env = append(u.cmd.Env, "VANTAGE_LAB_LOCK_HELD=1")
	}
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.done <- u.cmd.Wait() }()
	t.Cleanup(func() {
		if err := u.Stop(); err != nil {
			t.Error(err)
		}
	})
	deadline := time.After(o.Timeout)
	for {
		if b, err := os.ReadFile(ready); err == nil {
			if err := json.Unmarshal(b, &u.Ready); err != nil {
				t.Fatalf("vantage up: ready file: %v: %s", err, b)
			}
			break
		}
		select {
		case err := <-u.done:
			u.done <- err
			t.Fatalf("vantage up ended before it was ready: %v\n%s", err, u.Log())
		case <-deadline:
			t.Fatalf("vantage up not ready after %s:\n%s", o.Timeout, u.Log())
		case <-time.After(200 * time.Millisecond):
		}
	}
	b, err := os.ReadFile(u.Ready.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	u.Key = strings.TrimSpace(string(b))
	return u
}

// Log is what up wrote so far.
func (u *Up) Log() string {
	b, _ := os.ReadFile(u.log)
	return string(b)
}

// Stop ends up with SIGINT and waits (at most 90 s) for a clean stop:
// exit status 130, or 0 if --for ended it first.
func (u *Up) Stop() error {
	select {
	case err := <-u.done:
		u.done <- err
		return exitErr(err, u)
	default:
	}
	u.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-u.done:
		u.done <- err
		return exitErr(err, u)
	case <-time.After(90 * time.Second):
		u.cmd.Process.Kill()
		return fmt.Errorf("vantage up did not stop within 90 s of SIGINT:\n%s", u.Log())
	}
}

func exitErr(err error, u *Up) error {
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 130 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vantage up: %v\n%s", err, u.Log())
	}
	return nil
}
