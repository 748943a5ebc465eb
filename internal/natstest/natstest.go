// Package natstest runs a NATS JetStream cluster for tests: three (or more)
// `vantage nats` processes with routes between them, each with its own
// store directory, optionally inside a network namespace. A node can be
// killed with SIGKILL, as a crash would, and started again on its store.
package natstest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/testbin"
)

// Options place the nodes.
type Options struct {
	// Clients are the nodes' client addresses (host:port), one per node;
	// Routes their cluster addresses, in the same order.
	Clients, Routes []string
	Namespace       string // run the nodes inside this network namespace (ip netns exec)
	Binary          string // the vantage binary (default: testbin.Build)
	Dir             string // parent of the store directories (default: t.TempDir)
	Args            []string
}

// Cluster is a running set of nodes.
type Cluster struct {
	Nodes []*Node
	opts  Options
	t     testing.TB
}

// Node is one `vantage nats` process.
type Node struct {
	Name, Client, Route, Store string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	log     strings.Builder
	running bool
}

// Start runs the nodes and waits until every one is ready (JetStream has a
// meta leader), at most two minutes. The test's cleanup stops them.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if len(o.Clients) == 0 || len(o.Clients) != len(o.Routes) {
		t.Fatalf("natstest: %d client and %d route addresses", len(o.Clients), len(o.Routes))
	}
	if o.Binary == "" {
		bin, err := testbin.Build()
		if err != nil {
			t.Fatal(err)
		}
		o.Binary = bin
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	c := &Cluster{opts: o, t: t}
	for i := range o.Clients {
		c.Nodes = append(c.Nodes, &Node{Name: fmt.Sprintf("n%d", i+1), Client: o.Clients[i], Route: o.Routes[i],
			Store: filepath.Join(o.Dir, fmt.Sprintf("n%d", i+1))})
	}
	t.Cleanup(c.Stop)
	errs := make(chan error, len(c.Nodes))
	for i := range c.Nodes {
		go func() { errs <- c.start(i) }()
	}
	for range c.Nodes {
		if err := <-errs; err != nil {
			t.Fatalf("natstest: %v", err)
		}
	}
	return c
}

// URL is the client URL list of every node, for --nats and bus.url.
func (c *Cluster) URL() string {
	var us []string
	for _, n := range c.Nodes {
		us = append(us, "nats://"+n.Client)
	}
	return strings.Join(us, ",")
}

func (c *Cluster) start(i int) error {
	n := c.Nodes[i]
	var routes []string
	for j, m := range c.Nodes {
		if j != i {
			routes = append(routes, "nats://"+m.Route)
		}
	}
	args := append([]string{"nats", "--name", n.Name, "--listen", n.Client, "--cluster", n.Route,
		"--routes", strings.Join(routes, ","), "--store", n.Store}, c.opts.Args...)
	name := c.opts.Binary
	if c.opts.Namespace != "" {
		args = append([]string{"netns", "exec", c.opts.Namespace, c.opts.Binary}, args...)
		name = "ip"
	}
	cmd := exec.Command(name, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	ready := make(chan struct{}, 1)
	n.mu.Lock()
	n.cmd, n.done, n.running = cmd, done, true
	n.log.WriteString(fmt.Sprintf("--- started %s\n", time.Now().Format(time.RFC3339Nano)))
	n.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			n.mu.Lock()
			n.log.WriteString(line + "\n")
			n.mu.Unlock()
			if strings.Contains(line, "vantage: nats "+n.Name+" ready") {
				select {
				case ready <- struct{}{}:
				default:
				}
			}
		}
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(done)
	}()
	select {
	case <-ready:
		return nil
	case <-done:
		return fmt.Errorf("node %s exited before it was ready:\n%s", n.Name, n.Log())
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("node %s not ready after two minutes:\n%s", n.Name, n.Log())
	}
}

// Kill ends node i with SIGKILL, as a crash or a power cut would.
func (c *Cluster) Kill(i int) {
	n := c.Nodes[i]
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.running = false
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
	n.mu.Lock()
	n.log.WriteString(fmt.Sprintf("--- killed %s\n", time.Now().Format(time.RFC3339Nano)))
	n.mu.Unlock()
}

// Restart starts node i again on its store and waits until it is ready.
func (c *Cluster) Restart(i int) error {
	c.Kill(i)
	return c.start(i)
}

// Stop ends every node (SIGTERM, then SIGKILL after ten seconds).
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.mu.Lock()
		cmd, done, running := n.cmd, n.done, n.running
		n.running = false
		n.mu.Unlock()
		if cmd == nil || !running {
			continue
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

// Log is what node i wrote so far, over all its starts.
func (c *Cluster) Log(i int) string { return c.Nodes[i].Log() }

// Log is what the node wrote so far.
func (n *Node) Log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

// FreeAddrs returns n loopback addresses with free ports (for tests that
// run the cluster outside a namespace).
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}
