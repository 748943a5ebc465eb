package monitor

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func svc(port uint16, product, version string) ServiceState {
	return ServiceState{Port: port, Transport: "tcp", Protocol: "ssh", Product: product, Version: version}
}

func host(ip string, ss ...ServiceState) *HostState {
	return &HostState{IP: netip.MustParseAddr(ip), Services: ss}
}

func hosts(hs ...*HostState) map[netip.Addr]*HostState {
	m := map[netip.Addr]*HostState{}
	for _, h := range hs {
		m[h.IP] = h
	}
	return m
}

// changes renders Diff's changes as "kind ip:port" lines.
func changes(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s %s:%d", c.Kind, c.IP, port(c)))
	}
	return out
}

func TestDiff(t *testing.T) {
	a, b := "192.0.2.1", "192.0.2.2"
	tests := []struct {
		name      string
		prev, cur map[netip.Addr]*HostState
		goneAfter int
		want      []string
		missed    map[string]int // "ip:port" -> Missed in the next state; absent = not kept
	}{
		{name: "nothing changed", prev: hosts(host(a, svc(22, "OpenSSH", "9.6p1"))), cur: hosts(host(a, svc(22, "OpenSSH", "9.6p1"))),
			goneAfter: 2, missed: map[string]int{a + ":22": 0}},
		{name: "new port on a known host", prev: hosts(host(a, svc(22, "OpenSSH", "9.6p1"))),
			cur: hosts(host(a, svc(22, "OpenSSH", "9.6p1"), svc(8080, "nginx", "1.26.0"))), goneAfter: 2,
			want: []string{"new_service " + a + ":8080"}, missed: map[string]int{a + ":22": 0, a + ":8080": 0}},
		{name: "new host", prev: hosts(), cur: hosts(host(b, svc(443, "nginx", ""))), goneAfter: 2,
			want: []string{"new_service " + b + ":443"}, missed: map[string]int{b + ":443": 0}},
		{name: "version changed", prev: hosts(host(a, svc(22, "OpenSSH", "8.9p1"))), cur: hosts(host(a, svc(22, "OpenSSH", "9.6p1"))),
			goneAfter: 2, want: []string{"version_changed " + a + ":22"}, missed: map[string]int{a + ":22": 0}},
		{name: "product changed", prev: hosts(host(a, svc(22, "OpenSSH", "8.9p1"))), cur: hosts(host(a, svc(22, "Dropbear", "2022.83"))),
			goneAfter: 2, want: []string{"service_changed " + a + ":22"}, missed: map[string]int{a + ":22": 0}},
		{name: "a grab that learnt nothing is no change", prev: hosts(host(a, svc(22, "OpenSSH", "8.9p1"))),
			cur: hosts(host(a, ServiceState{Port: 22, Transport: "tcp"})), goneAfter: 2, missed: map[string]int{a + ":22": 0}},
		{name: "missing once: kept, counted", prev: hosts(host(a, svc(22, "OpenSSH", "9.6p1"), svc(80, "nginx", "1.26.0"))),
			cur: hosts(host(a, svc(22, "OpenSSH", "9.6p1"))), goneAfter: 2, missed: map[string]int{a + ":22": 0, a + ":80": 1}},
		{name: "missing the second time: gone", prev: hosts(host(a, svc(22, "OpenSSH", "9.6p1"), ServiceState{Port: 80, Transport: "tcp", Missed: 1})),
			cur: hosts(host(a, svc(22, "OpenSSH", "9.6p1"))), goneAfter: 2, want: []string{"service_gone " + a + ":80"},
			missed: map[string]int{a + ":22": 0}},
		{name: "gone at once with gone_after 1", prev: hosts(host(a, svc(22, "OpenSSH", "9.6p1"))), cur: hosts(host(a)), goneAfter: 1,
			want: []string{"service_gone " + a + ":22"}},
		{name: "back before it was gone: no alert, count reset", prev: hosts(host(a, ServiceState{Port: 22, Transport: "tcp", Product: "OpenSSH", Version: "9.6p1", Missed: 1})),
			cur: hosts(host(a, svc(22, "OpenSSH", "9.6p1"))), goneAfter: 2, missed: map[string]int{a + ":22": 0}},
		{name: "udp and tcp on one port are two services", prev: hosts(host(a, ServiceState{Port: 53, Transport: "udp", Protocol: "dns"})),
			cur:       hosts(host(a, ServiceState{Port: 53, Transport: "udp", Protocol: "dns"}, ServiceState{Port: 53, Transport: "tcp", Protocol: "dns"})),
			goneAfter: 2, want: []string{"new_service " + a + ":53"}, missed: map[string]int{a + ":53": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, next := Diff(tt.prev, tt.cur, tt.goneAfter)
			if got := changes(cs); !slices.Equal(got, tt.want) {
				t.Errorf("changes %q, want %q", got, tt.want)
			}
			got := map[string]int{}
			for _, h := range next {
				for _, s := range h.Services {
					got[fmt.Sprintf("%s:%d", h.IP, s.Port)] = s.Missed
				}
			}
			if tt.missed == nil {
				tt.missed = map[string]int{}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.missed) {
				t.Errorf("next state %v, want %v", got, tt.missed)
			}
		})
	}
}

// A rescan whose grab learnt nothing keeps the identification from
// before, so a later real change is still seen as one.
func TestDiffKeepsWhatAGrabMissed(t *testing.T) {
	a := "192.0.2.1"
	_, next := Diff(hosts(host(a, svc(22, "OpenSSH", "8.9p1"))), hosts(host(a, ServiceState{Port: 22, Transport: "tcp"})), 2)
	cs, _ := Diff(next, hosts(host(a, svc(22, "OpenSSH", "9.6p1"))), 2)
	if got := changes(cs); !slices.Equal(got, []string{"version_changed " + a + ":22"}) {
		t.Errorf("after a blind rescan, the upgrade gave %q", got)
	}
	if cs[0].Before.Version != "8.9p1" {
		t.Errorf("before = %q, want 8.9p1", cs[0].Before.Version)
	}
}

func TestCertChange(t *testing.T) {
	a := "192.0.2.1"
	old := ServiceState{Port: 443, Transport: "tcp", Protocol: "http", CertSHA256: "aa"}
	now := old
	now.CertSHA256 = "bb"
	cs, _ := Diff(hosts(host(a, old)), hosts(host(a, now)), 2)
	if got := changes(cs); !slices.Equal(got, []string{"cert_changed " + a + ":443"}) {
		t.Errorf("got %q", got)
	}
}

func TestWatchlistNormalize(t *testing.T) {
	tests := []struct {
		name string
		w    Watchlist
		err  string // part of the error; "" = valid
	}{
		{name: "cidr", w: Watchlist{Name: "corp", CIDRs: []string{"198.51.100.7/24", "198.51.100.0/24", "2001:db8::1"}}},
		{name: "domain", w: Watchlist{Name: "corp", Domains: []string{"*.Example.COM."}}},
		{name: "bad name", w: Watchlist{Name: "Corp!", CIDRs: []string{"192.0.2.0/24"}}, err: "name"},
		{name: "empty", w: Watchlist{Name: "corp"}, err: "at least one"},
		{name: "bad cidr", w: Watchlist{Name: "corp", CIDRs: []string{"192.0.2.0/33"}}, err: "cidr"},
		{name: "too big", w: Watchlist{Name: "corp", CIDRs: []string{"10.0.0.0/7"}}, err: "at most"},
		{name: "bad ports", w: Watchlist{Name: "corp", CIDRs: []string{"192.0.2.0/24"}, Ports: "22,99999"}, err: "ports"},
		{name: "too often", w: Watchlist{Name: "corp", CIDRs: []string{"192.0.2.0/24"}, Every: Duration(time.Second)}, err: "every"},
		{name: "bad webhook", w: Watchlist{Name: "corp", CIDRs: []string{"192.0.2.0/24"}, Webhooks: []Webhook{{URL: "ftp://x"}}}, err: "webhook"},
		{name: "bad email", w: Watchlist{Name: "corp", CIDRs: []string{"192.0.2.0/24"}, Emails: []string{"Bob <b@x.org>"}}, err: "e-mail"},
		{name: "quote in org", w: Watchlist{Name: "corp", Orgs: []string{`Evil" OR port:22`}}, err: "quotes"},
		{name: "bad domain", w: Watchlist{Name: "corp", Domains: []string{"exa mple.com"}}, err: "domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.w.Normalize()
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one about %q", err, tt.err)
			}
		})
	}
	w := Watchlist{Name: "corp", CIDRs: []string{"198.51.100.7/24", "198.51.100.0/24"}, Domains: []string{"*.Example.COM."}}
	if err := w.Normalize(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.CIDRs, []string{"198.51.100.0/24"}) || !slices.Equal(w.Domains, []string{"example.com"}) ||
		w.Ports != DefaultPorts || time.Duration(w.Every) != DefaultEvery || w.Rate != DefaultRate {
		t.Errorf("normalized %+v", w)
	}
	if q := selectQuery(w); q != `tls.san:"example.com" OR tls.san:"*.example.com"` {
		t.Errorf("select query %s", q)
	}
}
