package duckdb

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
	"github.com/vantagehq/vantage/store"
)

// TestPurge: the services (and their history) of the purged prefixes go,
// IPv4 and IPv6, up to their last address and not one beyond; sensor
// events stay.
func TestPurge(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	now := time.Now().UTC()
	var svcs []record.Service
	for _, ip := range []string{"198.51.100.0", "198.51.100.255", "198.51.101.0", "198.51.99.255", "2001:db8:1::", "2001:db8:1:ffff:ffff:ffff:ffff:ffff", "2001:db8:2::1"} {
		a := netip.MustParseAddr(ip)
		svcs = append(svcs, record.Service{ID: record.ServiceID("s", a, 80, "tcp"), Time: now, ScanID: "s", IP: a, Port: 80, Transport: "tcp", State: "open"})
	}
	ev := record.Event{ID: record.NewID(), Time: now, Sensor: "x", Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("192.0.2.1"), Transport: "tcp"}
	if _, err := s.Ingest(ctx, []*record.Batch{{ID: record.NewID(), Services: svcs}, {ID: record.NewID(), Events: []record.Event{ev}}}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Purge(ctx, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/48")})
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 { // 4 services, each in services and service_history
		t.Errorf("purged %d rows, want 8", n)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := s.SearchServices(ctx, store.Search{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, sv := range res.Services {
		left = append(left, sv.IP.String())
	}
	slices.Sort(left)
	if !slices.Equal(left, []string{"198.51.101.0", "198.51.99.255", "2001:db8:2::1"}) {
		t.Errorf("left after the purge: %v", left)
	}
	if evs, err := s.SearchEvents(ctx, store.Search{Limit: 10}); err != nil || evs.Total != 1 {
		t.Errorf("the sensor event went too: %v %v", evs, err)
	}
}
