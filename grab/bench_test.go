package grab

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/fingerprint"
	"github.com/vantagehq/vantage/internal/cputime"
)

// The grab benchmarks run the servers in a child process (this test binary
// again, with benchServerEnv set), so that the CPU time this process spends
// is the grabber's alone: they report it as cpu-ms/op beside the wall time,
// and allocs/op are the client's too. The servers answer like the lab's
// host farm: HTTP/1.1 with a small page and Connection: close, and TLS 1.3
// with a self-signed RSA-2048 certificate, then the same HTTP inside.
//
//	go test -tags duckdb_arrow -run '^$' -bench Grab -benchmem ./grab/
//
// With VANTAGE_GRAB_BENCH_SERVER_ADDRS="HTTP-ADDR TLS-ADDR" the servers are
// ones started by hand (VANTAGE_GRAB_BENCH_SERVER=1 grab.test prints their
// addresses), so that strace -f or perf see the grabber alone.

const benchServerEnv = "VANTAGE_GRAB_BENCH_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(benchServerEnv) != "" {
		benchServers()
		return
	}
	os.Exit(m.Run())
}

// benchServers listens on two loopback ports (HTTP, TLS), prints them and
// serves until stdin closes.
func benchServers() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "netlab-farm"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	body := "<html><head><title>netlab 198.18.0.1</title></head><body>netlab farm host 198.18.0.1</body></html>\n"
	page := fmt.Sprintf("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	handle := func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		io.WriteString(c, page)
	}
	var addrs []string
	for _, tlsOn := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		addrs = append(addrs, ln.Addr().String())
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if tlsOn {
					c = tls.Server(c, cfg)
				}
				go handle(c)
			}
		}()
	}
	fmt.Println(strings.Join(addrs, " "))
	io.Copy(io.Discard, os.Stdin)
}

var benchServerStdin io.WriteCloser

var benchAddrs = sync.OnceValues(func() ([2]netip.AddrPort, error) {
	var out [2]netip.AddrPort
	parse := func(line string) error {
		for i, f := range strings.Fields(line) {
			var err error
			if out[i], err = netip.ParseAddrPort(f); err != nil {
				return err
			}
		}
		return nil
	}
	if a := os.Getenv(benchServerEnv + "_ADDRS"); a != "" {
		// servers started by hand, e.g. to strace this process alone
		return out, parse(a)
	}
	exe, err := os.Executable()
	if err != nil {
		return out, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), benchServerEnv+"=1")
	cmd.Stderr = os.Stderr
	// never closed: the child lives as long as this process
	if benchServerStdin, err = cmd.StdinPipe(); err != nil {
		return out, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return out, err
	}
	if err := cmd.Start(); err != nil {
		return out, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return out, fmt.Errorf("bench servers: %w", err)
	}
	return out, parse(line)
})

func benchGrab(b *testing.B, tlsOn bool, cfg Config, protocol string) {
	addrs, err := benchAddrs()
	if err != nil {
		b.Fatal(err)
	}
	addr := addrs[0]
	if tlsOn {
		addr = addrs[1]
		// HTTP inside at once, as on 443, with no wait for a greeting
		httpsPorts[addr.Port()] = true
	}
	cfg.Identify = Identifier(fingerprint.Default())
	g := New(cfg)
	ctx := context.Background()
	// a few grabs at once, as a scan runs them
	const par = 8
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Self()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	next := make(chan struct{})
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				svc, err := g.Grab(ctx, Target{Addr: addr, Protocol: protocol})
				if err != nil || svc.Protocol == "" {
					mu.Lock()
					failed = fmt.Errorf("%v (protocol %q)", err, svc.Protocol)
					mu.Unlock()
				}
			}
		}()
	}
	for b.Loop() {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	b.ReportMetric(float64(cputime.Self()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	if failed != nil {
		b.Fatal(failed)
	}
}

func BenchmarkGrabHTTP(b *testing.B) { benchGrab(b, false, Config{}, "http") }

func BenchmarkGrabTLSHandshake(b *testing.B) {
	benchGrab(b, true, Config{TLSHandshakeOnly: true}, "tls")
}

func BenchmarkGrabTLSThenHTTP(b *testing.B) { benchGrab(b, true, Config{}, "tls") }
