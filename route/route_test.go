package route

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vantagehq/vantage/internal/netns"
)

func TestLookupLoopback(t *testing.T) {
	tests := []struct {
		dst     string
		wantSrc string
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.53", "127.0.0.1"},
		{"::ffff:127.0.0.1", "127.0.0.1"}, // IPv4-mapped counts as IPv4
	}
	for _, tt := range tests {
		t.Run(tt.dst, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p, err := Lookup(ctx, netip.MustParseAddr(tt.dst))
			if err != nil {
				t.Fatal(err)
			}
			if p.Interface != "lo" || p.Index <= 0 || p.MTU <= 0 {
				t.Errorf("got interface %q index %d MTU %d, want lo", p.Interface, p.Index, p.MTU)
			}
			if p.SrcIP != netip.MustParseAddr(tt.wantSrc) {
				t.Errorf("SrcIP = %v, want %s", p.SrcIP, tt.wantSrc)
			}
			if p.Gateway.IsValid() || p.NextHopMAC != nil {
				t.Errorf("local route has gateway %v, next-hop MAC %v", p.Gateway, p.NextHopMAC)
			}
		})
	}
}

func TestLookupRejects(t *testing.T) {
	tests := []struct {
		dst     netip.Addr
		wantErr error
		wantMsg string
	}{
		{netip.MustParseAddr("2001:db8::1"), ErrIPv6, "route to 2001:db8::1: IPv6 is not supported"},
		{netip.Addr{}, nil, "invalid IP address"},
	}
	for _, tt := range tests {
		_, err := Lookup(context.Background(), tt.dst)
		if err == nil || !strings.Contains(err.Error(), tt.wantMsg) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
			t.Errorf("Lookup(%v) error = %v, want %q", tt.dst, err, tt.wantMsg)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Lookup(ctx, netip.MustParseAddr("127.0.0.1")); !errors.Is(err, context.Canceled) {
		t.Errorf("Lookup with a cancelled context: error = %v", err)
	}
}

func TestInterface(t *testing.T) {
	p, err := Interface("lo")
	if err != nil {
		t.Fatal(err)
	}
	if p.Interface != "lo" || p.Index <= 0 || p.MTU <= 0 || p.SrcIP != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("Interface(lo) = %+v", p)
	}
	if _, err := Interface("nosuchif0"); err == nil || !strings.Contains(err.Error(), "nosuchif0") {
		t.Errorf("Interface(nosuchif0) error = %v, want one naming it", err)
	}
}

func TestNeighbourLoopback(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo interface:", err)
	}
	// lo does no ARP: there is never a neighbour entry, and that is no error.
	mac, err := Neighbour(lo.Index, netip.MustParseAddr("127.0.0.1"))
	if err != nil || mac != nil {
		t.Errorf("Neighbour(lo, 127.0.0.1) = %v, %v; want nil, nil", mac, err)
	}
	if _, err := Neighbour(lo.Index, netip.MustParseAddr("::1")); !errors.Is(err, ErrIPv6) {
		t.Errorf("Neighbour(::1) error = %v, want ErrIPv6", err)
	}
}

func TestARPFrames(t *testing.T) {
	us := net.HardwareAddr{2, 0x6e, 0x6c, 0, 2, 0x0a}
	them := net.HardwareAddr{2, 0x6e, 0x6c, 0, 2, 0x01}
	src, gw := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.1")

	req := arpRequest(us, src, gw)
	if len(req) != minFrameLen {
		t.Fatalf("request is %d bytes, want %d", len(req), minFrameLen)
	}
	if _, ok := parseARPReply(req, src); ok {
		t.Error("a request was taken for a reply")
	}
	// Turn the request into the gateway's answer.
	reply := append([]byte(nil), req...)
	copy(reply[0:6], us)
	copy(reply[6:12], them)
	a := reply[ethHeaderLen:]
	a[7] = 2 // op: reply
	copy(a[8:14], them)
	copy(a[14:18], ip4("192.0.2.1"))
	copy(a[18:24], us)
	copy(a[24:28], ip4("192.0.2.10"))

	if mac, ok := parseARPReply(reply, gw); !ok || mac.String() != them.String() {
		t.Errorf("parseARPReply = %v, %v; want %v", mac, ok, them)
	}
	if _, ok := parseARPReply(reply, netip.MustParseAddr("192.0.2.99")); ok {
		t.Error("reply from 192.0.2.1 accepted for 192.0.2.99")
	}
	if _, ok := parseARPReply(reply[:41], gw); ok {
		t.Error("truncated reply accepted")
	}
}

// TestLookupUnreachable checks the error for a destination without a route,
// in a new, empty network namespace (root only; it touches no other one).
func TestLookupUnreachable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	// the test's goroutine stays in the new namespace: its thread is
	// discarded when the test returns
	if err := netns.Private(); err != nil {
		t.Skip("cannot create a network namespace:", err)
	}

	_, err := Lookup(context.Background(), netip.MustParseAddr("192.0.2.1"))
	if !errors.Is(err, unix.ENETUNREACH) || err.Error() != "route to 192.0.2.1: network is unreachable" {
		t.Errorf("Lookup in an empty namespace: error = %v, want ENETUNREACH naming 192.0.2.1", err)
	}
}
