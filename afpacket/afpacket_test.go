package afpacket

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vantagehq/vantage/frame"
	"github.com/vantagehq/vantage/internal/netns"
	"golang.org/x/sys/unix"
)

func needRaw(t *testing.T) {
	t.Helper()
	fd, err := socket(0)
	if errors.Is(err, ErrPermission) {
		t.Skipf("skipping: %v (run the tests as root)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
}

func loIndex(t *testing.T) int {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("skipping: no loopback interface: %v", err)
	}
	return lo.Index
}

// udpFrame builds an Ethernet+IPv4+UDP frame as loopback expects it.
func udpFrame(buf []byte, src, dst netip.Addr, sport, dport uint16, payload []byte) int {
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	n := frame.PutEthernet(buf, zero, zero, frame.EtherTypeIPv4)
	s, d := ip4(src), ip4(dst)
	n += frame.PutIPv4(buf[n:], s, d, frame.ProtoUDP, 64, 1, frame.UDPLen+len(payload))
	u := buf[n:]
	u[0], u[1] = byte(sport>>8), byte(sport)
	u[2], u[3] = byte(dport>>8), byte(dport)
	l := frame.UDPLen + len(payload)
	u[4], u[5] = byte(l>>8), byte(l)
	u[6], u[7] = 0, 0 // no UDP checksum: allowed over IPv4
	copy(u[8:], payload)
	return n + l
}

func ip4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// TestTXRingDeliversBatches sends frames through the TX ring on loopback to a
// real UDP socket and counts what arrives.
func TestTXRingDeliversBatches(t *testing.T) {
	needRaw(t)
	privateNetns(t)
	ifindex := loIndex(t)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadBuffer(4 << 20)
	port := uint16(conn.LocalAddr().(*net.UDPAddr).Port)

	for _, bypass := range []bool{false, true} {
		tx, err := NewTX(TXConfig{Ifindex: ifindex, MaxFrame: 200, Frames: 64, QdiscBypass: bypass})
		if err != nil {
			t.Fatal(err)
		}
		const total = 1000 // more than the ring holds: slots are reused
		lo := netip.MustParseAddr("127.0.0.1")
		// a source that is not local, or the kernel drops the frame as martian
		src := netip.MustParseAddr("192.0.2.1")
		for i := 0; i < total; i++ {
			buf, err := tx.Next()
			if err != nil {
				t.Fatal(err)
			}
			n := udpFrame(buf, src, lo, 40000, port, []byte{byte(i >> 8), byte(i)})
			tx.Commit(n)
			if i%50 == 49 {
				if err := tx.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := tx.Close(); err != nil {
			t.Fatal(err)
		}
		seen := make([]bool, total)
		got := 0
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 64)
		for got < total {
			n, err := conn.Read(b)
			if err != nil {
				break
			}
			if n == 2 {
				i := int(b[0])<<8 | int(b[1])
				if i < total && !seen[i] {
					seen[i] = true
					got++
				}
			}
		}
		if got != total {
			t.Fatalf("bypass=%v: %d of %d frames arrived", bypass, got, total)
		}
		if tx.Sent() != total || tx.Failures() != 0 {
			t.Fatalf("bypass=%v: sent %d failures %d", bypass, tx.Sent(), tx.Failures())
		}
	}
}

// TestRXRingFilter receives through the RX ring on loopback with a BPF
// filter: packets to the filtered address and protocol arrive, others not.
func TestRXRingFilter(t *testing.T) {
	needRaw(t)
	ifindex := loIndex(t)
	want := netip.MustParseAddr("127.0.0.1")
	rx, err := NewRX(RXConfig{
		Ifindex: ifindex, BlockSize: 1 << 16, Blocks: 4, Timeout: 5 * time.Millisecond,
		Filter: IPv4Filter(ip4(want), []uint8{frame.ProtoUDP}, 256),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()

	send := func(dst string, payload string) {
		c, err := net.Dial("udp4", dst)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(payload))
		c.Close()
	}
	send("127.0.0.1:9", "match-1")
	send("127.0.0.2:9", "other-address") // filtered: wrong destination
	send("127.0.0.1:9", "match-2")
	big := make([]byte, 1000)
	for i := range big {
		big[i] = 'x'
	}
	send("127.0.0.1:9", string(big)) // longer than the snap length

	var got []string
	deadline := time.Now().Add(2 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		_, err := rx.Read(50*time.Millisecond, func(p *Packet) {
			var pk frame.Packet
			if err := frame.ParseEthernet(p.Data, &pk); err != nil {
				// snapped packets are shorter than their IP length
				if len(p.Data) == 256 && p.Len > 256 {
					got = append(got, "snapped")
				}
				return
			}
			if pk.Proto != frame.ProtoUDP || pk.DstPort != 9 {
				t.Errorf("filter let through proto %d port %d", pk.Proto, pk.DstPort)
			}
			got = append(got, string(pk.Payload))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 3 || got[0] != "match-1" || got[1] != "match-2" || got[2] != "snapped" {
		t.Fatalf("received %q", got)
	}
	pk, drops, err := rx.Stats()
	if err != nil || pk < 3 || drops != 0 {
		t.Fatalf("stats: packets %d drops %d err %v", pk, drops, err)
	}
}

// privateNetns moves the calling goroutine's thread into a new, empty
// network namespace with loopback up, for tests that inject frames: the
// kernel treats 127.0.0.0/8 arriving from a packet socket as martian unless
// route_localnet is on, and that is not to be changed on the host. The thread
// stays locked, so it dies with the test's goroutine instead of returning to
// the pool in the wrong namespace.
func privateNetns(t *testing.T) {
	t.Helper()
	if err := netns.Private(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatalf("bring lo up: %v", err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/lo/route_localnet", []byte("1"), 0); err != nil {
		t.Fatalf("route_localnet in the private namespace: %v", err)
	}
}
