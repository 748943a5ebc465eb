package route

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Netlink data is in host byte order; addresses inside attributes are in
// network order and are copied as bytes.
var native = binary.NativeEndian

// nlmAlign rounds n up to NLMSG_ALIGNTO (4): messages in one datagram start on
// 4-byte boundaries, while nlmsg_len counts only the unpadded message.
func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// rtaAlign rounds n up to RTA_ALIGNTO (4): attributes are padded the same way,
// and rta_len likewise excludes the padding.
func rtaAlign(n int) int { return (n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }

// message is one netlink message: its header and the payload after it.
type message struct {
	hdr  unix.NlMsghdr
	data []byte
}

// parseMessages splits one received datagram into its netlink messages.
func parseMessages(b []byte) ([]message, error) {
	var msgs []message
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return nil, fmt.Errorf("netlink: %d trailing bytes, short of a message header", len(b))
		}
		h := unix.NlMsghdr{
			Len:   native.Uint32(b[0:4]),
			Type:  native.Uint16(b[4:6]),
			Flags: native.Uint16(b[6:8]),
			Seq:   native.Uint32(b[8:12]),
			Pid:   native.Uint32(b[12:16]),
		}
		if h.Len < unix.NLMSG_HDRLEN || uint64(h.Len) > uint64(len(b)) {
			return nil, fmt.Errorf("netlink: message length %d out of range (%d bytes left)", h.Len, len(b))
		}
		msgs = append(msgs, message{hdr: h, data: b[unix.NLMSG_HDRLEN:h.Len]})
		b = b[min(nlmAlign(int(h.Len)), len(b)):]
	}
	return msgs, nil
}

// attr is one route attribute (struct rtattr and its payload).
type attr struct {
	typ  uint16
	data []byte
}

// parseAttrs splits a run of route attributes. Order is not significant and
// callers skip types they do not know. Fewer than 4 trailing bytes are taken
// as padding; an attribute whose length is too short or overruns is an error.
func parseAttrs(b []byte) ([]attr, error) {
	var attrs []attr
	for len(b) >= unix.SizeofRtAttr {
		l := int(native.Uint16(b[0:2]))
		if l < unix.SizeofRtAttr || l > len(b) {
			return nil, fmt.Errorf("netlink: attribute length %d out of range (%d bytes left)", l, len(b))
		}
		// The top two bits are the NLA_F_NESTED / NLA_F_NET_BYTEORDER flags.
		typ := native.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		attrs = append(attrs, attr{typ: typ, data: b[unix.SizeofRtAttr:l]})
		b = b[min(rtaAlign(l), len(b)):]
	}
	return attrs, nil
}

// addrAttr decodes an IPv4 or IPv6 address attribute.
func addrAttr(a attr) (netip.Addr, error) {
	ip, ok := netip.AddrFromSlice(a.data)
	if !ok {
		return netip.Addr{}, fmt.Errorf("netlink: attribute %d: address of %d bytes", a.typ, len(a.data))
	}
	return ip, nil
}

// routeReply is the part of an RTM_NEWROUTE message that Lookup uses.
type routeReply struct {
	family  uint8
	typ     uint8 // RTN_UNICAST, RTN_LOCAL, ...
	oif     int
	dst     netip.Addr
	gateway netip.Addr
	prefsrc netip.Addr
	via     bool // RTA_VIA: a next hop of another family (IPv4 over IPv6)
}

// parseRouteMessage decodes the payload of an RTM_NEWROUTE message: a struct
// rtmsg followed by attributes.
func parseRouteMessage(b []byte) (routeReply, error) {
	var r routeReply
	if len(b) < unix.SizeofRtMsg {
		return r, fmt.Errorf("netlink: route message of %d bytes, want at least %d", len(b), unix.SizeofRtMsg)
	}
	r.family = b[0] // rtm_family
	r.typ = b[7]    // rtm_type
	attrs, err := parseAttrs(b[nlmAlign(unix.SizeofRtMsg):])
	if err != nil {
		return r, err
	}
	for _, a := range attrs {
		switch a.typ {
		case unix.RTA_OIF:
			if len(a.data) != 4 {
				return r, fmt.Errorf("netlink: RTA_OIF of %d bytes", len(a.data))
			}
			r.oif = int(native.Uint32(a.data))
		case unix.RTA_DST:
			r.dst, err = addrAttr(a)
		case unix.RTA_GATEWAY:
			r.gateway, err = addrAttr(a)
		case unix.RTA_PREFSRC:
			r.prefsrc, err = addrAttr(a)
		case unix.RTA_VIA:
			r.via = true
		}
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// neighReply is the part of an RTM_NEWNEIGH message that Neighbour uses.
type neighReply struct {
	family  uint8
	ifindex int
	state   uint16 // NUD_* bits
	dst     netip.Addr
	lladdr  []byte
}

// parseNeighMessage decodes the payload of an RTM_NEWNEIGH message: a struct
// ndmsg followed by attributes.
func parseNeighMessage(b []byte) (neighReply, error) {
	var n neighReply
	if len(b) < unix.SizeofNdMsg {
		return n, fmt.Errorf("netlink: neighbour message of %d bytes, want at least %d", len(b), unix.SizeofNdMsg)
	}
	n.family = b[0]
	n.ifindex = int(int32(native.Uint32(b[4:8])))
	n.state = native.Uint16(b[8:10])
	attrs, err := parseAttrs(b[nlmAlign(unix.SizeofNdMsg):])
	if err != nil {
		return n, err
	}
	for _, a := range attrs {
		switch a.typ {
		case unix.NDA_DST:
			if n.dst, err = addrAttr(a); err != nil {
				return n, err
			}
		case unix.NDA_LLADDR:
			n.lladdr = a.data
		}
	}
	return n, nil
}

// decodeReply interprets one datagram received for request seq. It returns
// the data messages, and done when the reply is complete: after NLMSG_DONE
// for a dump, after the one message of a plain request, or on an error.
// A negative error code in NLMSG_ERROR (or NLMSG_DONE) comes back as its errno.
func decodeReply(b []byte, seq uint32) (msgs []message, done bool, err error) {
	all, err := parseMessages(b)
	if err != nil {
		return nil, true, err
	}
	for _, m := range all {
		if m.hdr.Seq != seq {
			continue // not ours (a late answer to an earlier request)
		}
		switch m.hdr.Type {
		case unix.NLMSG_NOOP:
			continue
		case unix.NLMSG_ERROR, unix.NLMSG_DONE:
			// NLMSG_ERROR carries struct nlmsgerr, NLMSG_DONE of a dump an int;
			// both start with the negated errno (0 is an ACK).
			if len(m.data) < 4 {
				if m.hdr.Type == unix.NLMSG_DONE {
					return msgs, true, nil
				}
				return nil, true, errors.New("netlink: truncated error message")
			}
			if code := int32(native.Uint32(m.data)); code < 0 {
				return nil, true, unix.Errno(-code)
			}
			return msgs, true, nil
		}
		msgs = append(msgs, m)
		if m.hdr.Flags&unix.NLM_F_MULTI == 0 {
			done = true
		}
	}
	return msgs, done, nil
}

// request sends one NETLINK_ROUTE request and collects its reply. It opens a
// socket per call: a netlink socket belongs to the network namespace of the
// thread that creates it, so callers that switch namespaces (tests, tools
// with a locked OS thread) get the namespace they are in. ctx is checked
// before sending, and its deadline, if any, bounds the wait for the reply.
func request(ctx context.Context, typ, flags uint16, body []byte) ([]message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		tv := unix.NsecToTimeval(max(time.Until(dl), time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return nil, fmt.Errorf("netlink timeout: %w", err)
		}
	}

	const seq = 1 // fresh socket, so any constant will do
	req := make([]byte, unix.NLMSG_HDRLEN+len(body))
	native.PutUint32(req[0:4], uint32(len(req)))
	native.PutUint16(req[4:6], typ)
	native.PutUint16(req[6:8], flags|unix.NLM_F_REQUEST)
	native.PutUint32(req[8:12], seq)
	copy(req[unix.NLMSG_HDRLEN:], body)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}

	// The kernel sizes dump datagrams to at most 32 KiB; twice that is ample,
	// and MSG_TRUNC tells us if it ever was not.
	buf := make([]byte, 64<<10)
	var msgs []message
	for {
		n, _, rflags, _, err := unix.Recvmsg(fd, buf, nil, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		if rflags&unix.MSG_TRUNC != 0 {
			return nil, errors.New("netlink receive: datagram truncated")
		}
		got, done, err := decodeReply(buf[:n], seq)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, got...)
		if done {
			return msgs, nil
		}
	}
}

// getRoute asks the kernel for the route it would use to send to dst, like
// `ip route get`. Without RTM_F_FIB_MATCH the answer describes the resolved
// next hop (one path of a multipath route), not the FIB entry.
func getRoute(ctx context.Context, dst netip.Addr) (routeReply, error) {
	body := make([]byte, unix.SizeofRtMsg+rtaAlign(unix.SizeofRtAttr+4))
	body[0] = unix.AF_INET // rtm_family
	body[1] = 32           // rtm_dst_len: a host lookup
	a := body[unix.SizeofRtMsg:]
	native.PutUint16(a[0:2], unix.SizeofRtAttr+4)
	native.PutUint16(a[2:4], unix.RTA_DST)
	ip4 := dst.As4()
	copy(a[4:], ip4[:])

	msgs, err := request(ctx, unix.RTM_GETROUTE, 0, body)
	if err != nil {
		return routeReply{}, err
	}
	for _, m := range msgs {
		if m.hdr.Type == unix.RTM_NEWROUTE {
			return parseRouteMessage(m.data)
		}
	}
	return routeReply{}, errors.New("netlink: no route message in the reply")
}

// neighbours dumps the kernel's IPv4 neighbour table. Without
// NETLINK_GET_STRICT_CHK older kernels ignore the ifindex filter in the
// request, so callers filter the result themselves.
func neighbours(ctx context.Context, ifindex int) ([]neighReply, error) {
	body := make([]byte, unix.SizeofNdMsg)
	body[0] = unix.AF_INET
	native.PutUint32(body[4:8], uint32(ifindex))
	msgs, err := request(ctx, unix.RTM_GETNEIGH, unix.NLM_F_DUMP, body)
	if err != nil {
		return nil, err
	}
	var out []neighReply
	for _, m := range msgs {
		if m.hdr.Type != unix.RTM_NEWNEIGH {
			continue
		}
		n, err := parseNeighMessage(m.data)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}
