package netlab_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/lab"
)

// grabbed is one JSON line of vantage grab output.
type grabbed struct {
	IP        netip.Addr        `json:"ip"`
	Port      uint16            `json:"port"`
	State     string            `json:"state"`
	Protocol  string            `json:"protocol"`
	Product   string            `json:"product"`
	Version   string            `json:"version"`
	CPE       []string          `json:"cpe"`
	Banner    string            `json:"banner"`
	Data      map[string]string `json:"data"`
	Error     string            `json:"error"`
	ErrorKind string            `json:"error_kind"`
	HTTP      *struct {
		Status int    `json:"status"`
		Server string `json:"server"`
		Title  string `json:"title"`
	} `json:"http"`
	TLS *struct {
		Version string `json:"version"`
		Subject string `json:"subject"`
		SHA256  string `json:"sha256"`
	} `json:"tls"`
	SSH *struct {
		Banner string `json:"banner"`
		HASSH  string `json:"hassh"`
	} `json:"ssh"`
}

// grabRun runs vantage grab in the scanner namespace with targets on stdin.
func grabRun(t *testing.T, targets []string, args ...string) ([]grabbed, string) {
	t.Helper()
	full := append([]string{"netns", "exec", lab.NSScan, binary, "grab", "--status-interval", "5s",
		"--allow-reserved", "203.0.113.0/24", "--allow-reserved", "198.18.0.0/15"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.Stdin = strings.NewReader(strings.Join(targets, "\n") + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("vantage grab: %v\n%s", err, stderr.String())
	}
	var out []grabbed
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var g grabbed
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatalf("bad output line %q: %v", sc.Text(), err)
		}
		out = append(out, g)
	}
	return out, stderr.String()
}

func TestGrabLabServices(t *testing.T) {
	needLab(t)
	ctx := context.Background()
	if err := theLab.ServicesUp(ctx); err != nil {
		t.Fatal(err)
	}
	truth, err := theLab.ServicesTruth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, s := range truth {
		targets = append(targets, s.Addr.String())
	}
	got, stderr := grabRun(t, targets)
	t.Log(strings.TrimSpace(stderr))
	by := map[netip.AddrPort]grabbed{}
	for _, g := range got {
		by[netip.AddrPortFrom(g.IP, g.Port)] = g
	}
	exact, revealed := 0, 0
	for _, s := range truth {
		g, ok := by[s.Addr]
		if !ok {
			t.Errorf("%s (%s): no result", s.Addr, s.Name)
			continue
		}
		t.Logf("%-18s %-10s -> protocol %-9s product %-22q version %-10q cpe %v", s.Addr, s.Name, g.Protocol, g.Product, g.Version, g.CPE)
		if want := s.Protocol(); g.Protocol != want {
			t.Errorf("%s: protocol %q, want %q (error %q)", s.Addr, g.Protocol, want, g.Error)
		}
		if !s.SameProduct(g.Product) {
			t.Errorf("%s: product %q, want %s", s.Addr, g.Product, s.Product)
		}
		if s.Name == "https" && (g.TLS == nil || g.TLS.SHA256 == "") {
			t.Errorf("%s: no certificate recorded", s.Addr)
		}
		// the version counts where the service says it on the wire
		said := strings.Contains(g.Banner, s.Version) || strings.Contains(fmt.Sprint(g.Data), s.Version) ||
			(g.HTTP != nil && strings.Contains(g.HTTP.Server, s.Version))
		switch {
		case g.Version != "" && !strings.HasPrefix(g.Version, s.Version):
			t.Errorf("%s: version %q, want %s", s.Addr, g.Version, s.Version)
		case g.Version == s.Version:
			exact++
		case said:
			t.Errorf("%s: the service says version %s but the grab did not extract it", s.Addr, s.Version)
		}
		if said {
			revealed++
		}
	}
	t.Logf("product right for all, exact version for %d of %d services (%d reveal it without credentials)", exact, len(truth), revealed)
}

func TestGrabUnexpectedPorts(t *testing.T) {
	needLab(t)
	ctx := context.Background()
	if err := theLab.ServicesUp(ctx); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "vantage-grab-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// extra instances of the lab's daemons, on ports their protocols do
	// not own, started here and stopped at the end
	start := func(name string, args ...string) {
		t.Helper()
		if _, err := exec.LookPath(args[0]); err != nil {
			t.Skipf("skipping: %s is not installed (netlab deps installs it): %v", args[0], err)
		}
		cmd := exec.Command("ip", append([]string{"netns", "exec", lab.NSServices}, args...)...)
		log, _ := os.Create(filepath.Join(dir, name+".log"))
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			log.Close()
		})
	}
	hostKey := filepath.Join(dir, "host_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	sshdConfig := filepath.Join(dir, "sshd_config")
	os.WriteFile(sshdConfig, []byte(fmt.Sprintf("ListenAddress 203.0.113.10:2222\nHostKey %s\nPidFile %s/sshd.pid\nUsePAM no\nAllowUsers vantage-nobody\n", hostKey, dir)), 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	start("sshd", "/usr/sbin/sshd", "-D", "-e", "-f", sshdConfig)

	cert, key := selfSigned(t, dir)
	nginxConfig := filepath.Join(dir, "nginx.conf")
	os.MkdirAll(filepath.Join(dir, "html"), 0o755)
	os.WriteFile(filepath.Join(dir, "html", "index.html"), []byte("<html><head><title>moved</title></head></html>\n"), 0o644)
	os.WriteFile(nginxConfig, []byte(fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx.err;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fcgi;
  uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  server { listen 203.0.113.12:9000 ssl; ssl_certificate %[2]s; ssl_certificate_key %[3]s; root %[1]s/html; }
}
`, dir, cert, key)), 0o644)
	start("nginx", "/usr/sbin/nginx", "-c", nginxConfig, "-g", "daemon off;")
	start("redis", "/usr/bin/redis-server", "--bind", "203.0.113.13", "--port", "8443", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--dir", dir)
	start("memcached", "/usr/bin/memcached", "-u", "nobody", "-l", "203.0.113.16", "-p", "8080", "-U", "0")

	want := map[string]string{
		"203.0.113.10:2222": "ssh",
		"203.0.113.12:9000": "http", // inside TLS
		"203.0.113.13:8443": "redis",
		"203.0.113.16:8080": "memcached",
	}
	var targets []string
	for a := range want {
		targets = append(targets, a)
	}
	sort.Strings(targets)
	// the daemons take a moment to listen
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, stderr := grabRun(t, targets)
		bad := 0
		for _, g := range got {
			key := netip.AddrPortFrom(g.IP, g.Port).String()
			if g.Protocol != want[key] {
				bad++
			}
		}
		if bad == 0 && len(got) == len(want) || time.Now().After(deadline) {
			t.Log(strings.TrimSpace(stderr))
			for _, g := range got {
				key := netip.AddrPortFrom(g.IP, g.Port).String()
				t.Logf("%-18s -> protocol %-9s product %-10q version %-8q tls %v error %q", key, g.Protocol, g.Product, g.Version, g.TLS != nil, g.Error)
				if g.Protocol != want[key] {
					t.Errorf("%s: protocol %q, want %q", key, g.Protocol, want[key])
				}
				if key == "203.0.113.12:9000" && g.TLS == nil {
					t.Errorf("%s: TLS not recorded", key)
				}
				if g.Product == "" {
					t.Errorf("%s: no product", key)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d results for %d targets", len(got), len(want))
			}
			return
		}
		time.Sleep(time.Second)
	}
}

// selfSigned writes a throwaway certificate and key for the extra nginx.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "moved.netlab.test"},
		DNSNames: []string{"moved.netlab.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestGrabFarm(t *testing.T) {
	needLab(t)
	ctx := context.Background()
	var targets []string
	banners := map[string]string{}
	for _, port := range []int{22, 80, 443} {
		out, err := exec.CommandContext(ctx, theLab.Script, "truth", fmt.Sprint(port), "--banner").Output()
		if err != nil {
			t.Fatalf("netlab truth %d --banner: %v", port, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			addr, banner, _ := strings.Cut(line, "\t")
			key := fmt.Sprintf("%s:%d", addr, port)
			targets = append(targets, key)
			banners[key] = banner
		}
	}
	got, stderr := grabRun(t, targets, "--concurrency", "512", "--per-host", "3")
	t.Log(strings.TrimSpace(stderr))
	seen := map[string]bool{}
	var wrong []string
	for _, g := range got {
		key := netip.AddrPortFrom(g.IP, g.Port).String()
		seen[key] = true
		want := banners[key]
		var have string
		switch g.Port {
		case 22:
			have = strings.TrimRight(g.Banner, "\r\n")
			if g.Protocol != "ssh" {
				wrong = append(wrong, fmt.Sprintf("%s: protocol %q (%s)", key, g.Protocol, g.Error))
				continue
			}
		case 80, 443:
			if g.HTTP == nil {
				wrong = append(wrong, fmt.Sprintf("%s: no HTTP (%s %s)", key, g.Protocol, g.Error))
				continue
			}
			have = g.HTTP.Server
			if g.Port == 443 && g.TLS == nil {
				wrong = append(wrong, key+": no TLS")
				continue
			}
		}
		if have != want || g.Error != "" {
			wrong = append(wrong, fmt.Sprintf("%s: banner %q, want %q (error %q)", key, have, want, g.Error))
		}
	}
	for _, k := range targets {
		if !seen[k] {
			wrong = append(wrong, k+": no result")
		}
	}
	t.Logf("farm: %d services, %d results, %d wrong or missing", len(targets), len(got), len(wrong))
	if len(wrong) > 0 {
		t.Errorf("%d services wrong or missing, e.g. %v", len(wrong), head(wrong))
	}
}
