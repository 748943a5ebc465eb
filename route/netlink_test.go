package route

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// Builders for hand-made netlink messages, as the kernel would send them.

func buildAttrs(attrs ...attr) []byte {
	var b []byte
	for _, a := range attrs {
		h := make([]byte, unix.SizeofRtAttr, rtaAlign(unix.SizeofRtAttr+len(a.data)))
		native.PutUint16(h[0:2], uint16(unix.SizeofRtAttr+len(a.data)))
		native.PutUint16(h[2:4], a.typ)
		h = append(h, a.data...)
		b = append(b, h[:cap(h)]...) // zero padding up to RTA_ALIGN
	}
	return b
}

func buildMsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	l := unix.NLMSG_HDRLEN + len(payload)
	b := make([]byte, nlmAlign(l))
	native.PutUint32(b[0:4], uint32(l))
	native.PutUint16(b[4:6], typ)
	native.PutUint16(b[6:8], flags)
	native.PutUint32(b[8:12], seq)
	copy(b[unix.NLMSG_HDRLEN:], payload)
	return b
}

func rtmsg(family, typ uint8, attrs ...attr) []byte {
	b := make([]byte, unix.SizeofRtMsg)
	b[0], b[1], b[4], b[7] = family, 32, unix.RT_TABLE_MAIN, typ
	return append(b, buildAttrs(attrs...)...)
}

func ndmsg(family uint8, ifindex int32, state uint16, attrs ...attr) []byte {
	b := make([]byte, unix.SizeofNdMsg)
	b[0] = family
	native.PutUint32(b[4:8], uint32(ifindex))
	native.PutUint16(b[8:10], state)
	return append(b, buildAttrs(attrs...)...)
}

// errCode is the negated errno that starts NLMSG_ERROR and NLMSG_DONE.
func errCode(e unix.Errno) []byte { return u32(uint32(-int32(e))) }

func errMsg(seq uint32, errno unix.Errno) []byte {
	b := make([]byte, unix.SizeofNlMsgerr) // struct nlmsgerr: error, then the request's header
	copy(b, errCode(errno))
	return buildMsg(unix.NLMSG_ERROR, 0, seq, b)
}

func u32(v uint32) []byte { b := make([]byte, 4); native.PutUint32(b, v); return b }

func ip4(s string) []byte { a := netip.MustParseAddr(s).As4(); return a[:] }

// gatewayRoute is what `ip route get 198.18.0.1` returns in the lab, with
// its attributes shuffled and some the parser does not know.
var gatewayRoute = rtmsg(unix.AF_INET, unix.RTN_UNICAST,
	attr{unix.RTA_TABLE, u32(unix.RT_TABLE_MAIN)},
	attr{unix.RTA_PREFSRC, ip4("192.0.2.10")},
	attr{unix.RTA_GATEWAY, ip4("192.0.2.1")},
	attr{unix.RTA_UID, u32(0)},
	attr{unix.RTA_OIF, u32(2)},
	attr{unix.RTA_DST, ip4("198.18.0.1")},
	attr{unix.RTA_CACHEINFO, make([]byte, 32)},
)

func TestParseAttrs(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []attr
		wantErr bool
	}{
		{name: "empty", in: nil},
		{name: "one", in: buildAttrs(attr{1, ip4("10.0.0.1")}), want: []attr{{1, ip4("10.0.0.1")}}},
		{name: "padded payload", in: buildAttrs(attr{3, []byte("abcde")}, attr{4, []byte{9}}),
			want: []attr{{3, []byte("abcde")}, {4, []byte{9}}}},
		{name: "last not padded", in: []byte{5, 0, 7, 0, 0xaa}, want: []attr{{7, []byte{0xaa}}}},
		{name: "empty payload", in: []byte{4, 0, 2, 0}, want: []attr{{2, []byte{}}}},
		{name: "flags masked", in: []byte{4, 0, 2, 0x80}, want: []attr{{2, []byte{}}}},
		{name: "short trailing padding", in: []byte{4, 0, 2, 0, 0, 0}, want: []attr{{2, []byte{}}}},
		{name: "length below header", in: []byte{3, 0, 2, 0}, wantErr: true},
		{name: "zero length", in: []byte{0, 0, 2, 0, 0, 0, 0, 0}, wantErr: true},
		{name: "overrun", in: []byte{9, 0, 2, 0, 1, 2, 3, 4}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAttrs(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseAttrs(%x) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if !slices.EqualFunc(got, tt.want, func(a, b attr) bool { return a.typ == b.typ && bytes.Equal(a.data, b.data) }) {
				t.Errorf("parseAttrs(%x) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRouteMessage(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    routeReply
		wantErr bool
	}{
		{name: "via gateway, any order", in: gatewayRoute, want: routeReply{
			family: unix.AF_INET, typ: unix.RTN_UNICAST, oif: 2,
			dst:     netip.MustParseAddr("198.18.0.1"),
			gateway: netip.MustParseAddr("192.0.2.1"),
			prefsrc: netip.MustParseAddr("192.0.2.10"),
		}},
		{name: "local", in: rtmsg(unix.AF_INET, unix.RTN_LOCAL,
			attr{unix.RTA_DST, ip4("127.0.0.1")}, attr{unix.RTA_OIF, u32(1)}, attr{unix.RTA_PREFSRC, ip4("127.0.0.1")}),
			want: routeReply{family: unix.AF_INET, typ: unix.RTN_LOCAL, oif: 1,
				dst: netip.MustParseAddr("127.0.0.1"), prefsrc: netip.MustParseAddr("127.0.0.1")}},
		{name: "ipv6 via", in: rtmsg(unix.AF_INET, unix.RTN_UNICAST, attr{unix.RTA_VIA, make([]byte, 18)}),
			want: routeReply{family: unix.AF_INET, typ: unix.RTN_UNICAST, via: true}},
		{name: "no attributes", in: rtmsg(unix.AF_INET, unix.RTN_UNICAST), want: routeReply{family: unix.AF_INET, typ: unix.RTN_UNICAST}},
		{name: "short header", in: make([]byte, unix.SizeofRtMsg-1), wantErr: true},
		{name: "bad oif", in: rtmsg(unix.AF_INET, 1, attr{unix.RTA_OIF, []byte{1, 2}}), wantErr: true},
		{name: "bad gateway", in: rtmsg(unix.AF_INET, 1, attr{unix.RTA_GATEWAY, []byte{1, 2, 3}}), wantErr: true},
		{name: "broken attribute", in: append(rtmsg(unix.AF_INET, 1), 8, 0, 1, 0), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRouteMessage(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseNeighMessage(t *testing.T) {
	mac := []byte{2, 0x6e, 0x6c, 0, 2, 1}
	got, err := parseNeighMessage(ndmsg(unix.AF_INET, 2, unix.NUD_STALE,
		attr{unix.NDA_CACHEINFO, make([]byte, 16)},
		attr{unix.NDA_LLADDR, mac},
		attr{unix.NDA_PROBES, u32(0)},
		attr{unix.NDA_DST, ip4("192.0.2.1")}))
	if err != nil {
		t.Fatal(err)
	}
	want := neighReply{family: unix.AF_INET, ifindex: 2, state: unix.NUD_STALE, dst: netip.MustParseAddr("192.0.2.1"), lladdr: mac}
	if got.family != want.family || got.ifindex != want.ifindex || got.state != want.state ||
		got.dst != want.dst || !bytes.Equal(got.lladdr, want.lladdr) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	// An INCOMPLETE entry has no NDA_LLADDR at all.
	got, err = parseNeighMessage(ndmsg(unix.AF_INET, 2, unix.NUD_INCOMPLETE, attr{unix.NDA_DST, ip4("192.0.2.99")}))
	if err != nil || got.lladdr != nil || got.state != unix.NUD_INCOMPLETE {
		t.Errorf("incomplete entry: got %+v, %v", got, err)
	}
	if _, err := parseNeighMessage(make([]byte, 8)); err == nil {
		t.Error("short ndmsg: no error")
	}
	if _, err := parseNeighMessage(ndmsg(unix.AF_INET, 2, 0, attr{unix.NDA_DST, []byte{1}})); err == nil {
		t.Error("1-byte NDA_DST: no error")
	}
}

func TestDecodeReply(t *testing.T) {
	const seq = 7
	neigh := ndmsg(unix.AF_INET, 2, unix.NUD_REACHABLE, attr{unix.NDA_DST, ip4("192.0.2.1")})
	tests := []struct {
		name     string
		in       []byte
		wantMsgs int
		wantDone bool
		wantErr  error // matched with errors.Is; errAny for any error
	}{
		{name: "route", in: buildMsg(unix.RTM_NEWROUTE, 0, seq, gatewayRoute), wantMsgs: 1, wantDone: true},
		{name: "unreachable", in: errMsg(seq, unix.ENETUNREACH), wantDone: true, wantErr: unix.ENETUNREACH},
		{name: "ack", in: errMsg(seq, 0), wantDone: true},
		{name: "dump part", in: slices.Concat(
			buildMsg(unix.RTM_NEWNEIGH, unix.NLM_F_MULTI, seq, neigh),
			buildMsg(unix.RTM_NEWNEIGH, unix.NLM_F_MULTI, seq, neigh)), wantMsgs: 2},
		{name: "dump end", in: slices.Concat(
			buildMsg(unix.RTM_NEWNEIGH, unix.NLM_F_MULTI, seq, neigh),
			buildMsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, seq, u32(0))), wantMsgs: 1, wantDone: true},
		{name: "dump failed", in: buildMsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, seq, errCode(unix.EINTR)),
			wantDone: true, wantErr: unix.EINTR},
		{name: "other sequence skipped", in: slices.Concat(
			errMsg(seq+1, unix.EPERM),
			buildMsg(unix.RTM_NEWROUTE, 0, seq, gatewayRoute)), wantMsgs: 1, wantDone: true},
		{name: "short header", in: make([]byte, 10), wantDone: true, wantErr: errAny},
		{name: "length overrun", in: buildMsg(unix.RTM_NEWROUTE, 0, seq, gatewayRoute)[:20], wantDone: true, wantErr: errAny},
		{name: "length below header", in: []byte{8, 0, 0, 0, 24, 0, 0, 0, seq, 0, 0, 0, 0, 0, 0, 0}, wantDone: true, wantErr: errAny},
		{name: "truncated error", in: buildMsg(unix.NLMSG_ERROR, 0, seq, []byte{1}), wantDone: true, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, done, err := decodeReply(tt.in, seq)
			switch {
			case tt.wantErr == nil && err != nil, tt.wantErr != nil && err == nil,
				tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if len(msgs) != tt.wantMsgs || done != tt.wantDone {
				t.Errorf("got %d messages, done %v; want %d, %v", len(msgs), done, tt.wantMsgs, tt.wantDone)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestNlmAlign(t *testing.T) {
	for in, want := range map[int]int{0: 0, 1: 4, 4: 4, 5: 8, 12: 12, 13: 16} {
		if got := nlmAlign(in); got != want {
			t.Errorf("nlmAlign(%d) = %d, want %d", in, got, want)
		}
		if got := rtaAlign(in); got != want {
			t.Errorf("rtaAlign(%d) = %d, want %d", in, got, want)
		}
	}
}

// FuzzParseRouteMessage feeds arbitrary datagrams through the reply decoder
// and the route and neighbour parsers: none may panic, and attributes that
// parse must survive re-encoding.
func FuzzParseRouteMessage(f *testing.F) {
	f.Add(buildMsg(unix.RTM_NEWROUTE, 0, 1, gatewayRoute))
	f.Add(errMsg(1, unix.ENETUNREACH))
	f.Add(slices.Concat(
		buildMsg(unix.RTM_NEWNEIGH, unix.NLM_F_MULTI, 1, ndmsg(unix.AF_INET, 2, unix.NUD_STALE,
			attr{unix.NDA_DST, ip4("192.0.2.1")}, attr{unix.NDA_LLADDR, []byte{2, 0x6e, 0x6c, 0, 2, 1}})),
		buildMsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 1, u32(0))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, _, err := decodeReply(b, 1)
		if err != nil {
			return
		}
		for _, m := range msgs {
			if int(m.hdr.Len) != unix.NLMSG_HDRLEN+len(m.data) {
				t.Fatalf("message length %d but %d payload bytes", m.hdr.Len, len(m.data))
			}
			if r, err := parseRouteMessage(m.data); err == nil && r.gateway.IsValid() && !r.gateway.Is4() && !r.gateway.Is6() {
				t.Fatalf("odd gateway address %v", r.gateway)
			}
			if n, err := parseNeighMessage(m.data); err == nil && n.dst.IsValid() && !n.dst.Is4() && !n.dst.Is6() {
				t.Fatalf("odd neighbour address %v", n.dst)
			}
			if len(m.data) < unix.SizeofRtMsg {
				continue
			}
			attrs, err := parseAttrs(m.data[unix.SizeofRtMsg:])
			if err != nil {
				continue
			}
			again, err := parseAttrs(buildAttrs(attrs...))
			if err != nil || !slices.EqualFunc(attrs, again, func(a, b attr) bool { return a.typ == b.typ && bytes.Equal(a.data, b.data) }) {
				t.Fatalf("attributes %v re-parse as %v, %v", attrs, again, err)
			}
		}
	})
}
