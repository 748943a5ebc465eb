package route

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantagehq/vantage/internal/lab"
	"github.com/vantagehq/vantage/internal/netns"
)

// Facts of the netlab scanner namespace.
const (
	labNetns   = "nl-scan"
	labIface   = "scan0"
	labSrcIP   = "192.0.2.10"
	labSrcMAC  = "02:6e:6c:00:02:0a"
	labGateway = "192.0.2.1"
	labGwMAC   = "02:6e:6c:00:02:01"
	labNobody  = "192.0.2.99"
)

// The lab is brought up (and its lock taken) by the first lab test, and
// released after the last test of the package.
var (
	labOnce sync.Once
	theLab  *lab.Lab
	labErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theLab != nil {
		if err := theLab.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// inLab runs fn on the test goroutine's thread switched into the nl-scan
// namespace, or skips the test naming the missing prerequisite. fn must not
// start subtests or goroutines: they would run in the original namespace.
func inLab(t *testing.T, fn func()) {
	t.Helper()
	if why := lab.Unavailable(); why != "" {
		t.Skip("skipping lab test: " + why)
	}
	labOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		theLab, labErr = lab.Up(ctx)
	})
	if labErr != nil {
		t.Fatal(labErr)
	}
	if err := netns.Do(labNetns, func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestLabLookup(t *testing.T) {
	inLab(t, func() {
		tests := []struct {
			dst, gateway string // gateway "" means on-link
		}{
			{"198.18.0.1", labGateway},
			{"100.64.0.1", labGateway}, // default route
			{labGateway, ""},
		}
		for _, tt := range tests {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			dst := netip.MustParseAddr(tt.dst)
			p, err := Lookup(ctx, dst)
			if err != nil {
				cancel()
				t.Errorf("Lookup(%s): %v", tt.dst, err)
				continue
			}
			if p.Interface != labIface || p.MTU <= 0 || p.SrcIP.String() != labSrcIP || p.SrcMAC.String() != labSrcMAC {
				t.Errorf("Lookup(%s) = %+v, want %s src %s MAC %s", tt.dst, p, labIface, labSrcIP, labSrcMAC)
			}
			if (tt.gateway == "" && p.Gateway.IsValid()) || (tt.gateway != "" && p.Gateway.String() != tt.gateway) {
				t.Errorf("Lookup(%s) gateway = %v, want %q", tt.dst, p.Gateway, tt.gateway)
			}
			if p.NextHop(dst).String() != labGateway {
				t.Errorf("Lookup(%s) next hop = %v, want %s", tt.dst, p.NextHop(dst), labGateway)
			}
			mac := p.NextHopMAC
			if mac == nil {
				t.Logf("Lookup(%s): gateway not in the neighbour table, resolving by ARP", tt.dst)
				if mac, err = ResolveMAC(ctx, p, p.NextHop(dst)); err != nil {
					t.Errorf("ResolveMAC(%s): %v", p.NextHop(dst), err)
				}
			}
			if mac.String() != labGwMAC {
				t.Errorf("Lookup(%s) next-hop MAC = %v, want %s", tt.dst, mac, labGwMAC)
			}
			cancel()
		}

		p, err := Interface(labIface)
		if err != nil {
			t.Fatal(err)
		}
		if p.Interface != labIface || p.SrcIP.String() != labSrcIP || p.SrcMAC.String() != labSrcMAC || p.MTU <= 0 ||
			p.Gateway.IsValid() || p.NextHopMAC != nil {
			t.Errorf("Interface(%s) = %+v", labIface, p)
		}
	})
}

func TestLabResolveMACByARP(t *testing.T) {
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs the ip command to flush the neighbour table")
	}
	inLab(t, func() {
		// Drop the kernel's entry so that ResolveMAC has to ARP itself.
		// (ip -n enters the namespace by itself.)
		if out, err := exec.Command(ip, "-n", labNetns, "neigh", "flush", "dev", labIface).CombinedOutput(); err != nil {
			t.Fatalf("ip neigh flush: %v: %s", err, out)
		}
		p, err := Interface(labIface)
		if err != nil {
			t.Fatal(err)
		}
		gw := netip.MustParseAddr(labGateway)
		if mac, err := Neighbour(p.Index, gw); err != nil || mac != nil {
			t.Logf("after flush: Neighbour(%s) = %v, %v (re-learned meanwhile?)", gw, mac, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		mac, err := ResolveMAC(ctx, p, gw)
		if err != nil || mac.String() != labGwMAC {
			t.Errorf("ResolveMAC(%s) = %v, %v; want %s", gw, mac, err, labGwMAC)
		}
		t.Logf("ResolveMAC(%s) = %v in %v", gw, mac, time.Since(start).Round(time.Millisecond))
		// And the ARP path alone, whatever the neighbour table holds now.
		if mac, err := arpResolve(ctx, p, gw); err != nil || mac.String() != labGwMAC {
			t.Errorf("arpResolve(%s) = %v, %v; want %s", gw, mac, err, labGwMAC)
		}
	})
}

func TestLabResolveMACTimeout(t *testing.T) {
	inLab(t, func() {
		p, err := Interface(labIface)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		mac, err := ResolveMAC(ctx, p, netip.MustParseAddr(labNobody))
		elapsed := time.Since(start)
		if err == nil {
			t.Fatalf("ResolveMAC(%s) = %v, want a timeout", labNobody, mac)
		}
		t.Logf("error after %v: %v", elapsed.Round(time.Millisecond), err)
		for _, want := range []string{labNobody, labIface, "--gateway-mac", "no ARP reply"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
		}
		if elapsed < 900*time.Millisecond || elapsed > 2*time.Second {
			t.Errorf("gave up after %v, want about 1s", elapsed)
		}
	})
}
