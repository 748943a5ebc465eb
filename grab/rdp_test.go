package grab

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantagehq/vantage/record"
)

// rdpFake is an RDP listener that answers X.224 Connection Requests as
// MS-RDPBCGR 2.2.1.2 describes, with the negotiation policy given.
type rdpFake struct {
	requests atomic.Int32 // well-formed Connection Requests seen
	// answer returns the whole TPKT to send for a request (requested
	// protocols, and whether an RDP_NEG_REQ was present); nil closes.
	answer func(req uint32, hasNeg bool) []byte
	// raw, when set, replaces the protocol: it gets the connection.
	raw func(c net.Conn)
}

func newRDPFake(t *testing.T, f *rdpFake) netip.AddrPort {
	t.Helper()
	return fakeServer(t, f.serve)
}

func (f *rdpFake) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if f.raw != nil {
		f.raw(c)
		return
	}
	h := make([]byte, 4)
	if _, err := io.ReadFull(c, h); err != nil || h[0] != 3 || h[1] != 0 {
		return // not TPKT: a real server drops the connection
	}
	n := int(binary.BigEndian.Uint16(h[2:]))
	if n < 11 || n > 1024 {
		return
	}
	tpdu := make([]byte, n-4)
	if _, err := io.ReadFull(c, tpdu); err != nil {
		return
	}
	// X.224 CR: LI covers the rest of the TPKT; CR CDT; DST-REF must be 0
	if int(tpdu[0]) != len(tpdu)-1 || tpdu[1]&0xf0 != 0xe0 || tpdu[2] != 0 || tpdu[3] != 0 {
		return
	}
	var req uint32
	hasNeg := false
	if v := tpdu[7:]; len(v) >= 8 {
		if v[0] != 1 || binary.LittleEndian.Uint16(v[2:]) != 8 {
			return
		}
		hasNeg, req = true, binary.LittleEndian.Uint32(v[4:])
	}
	f.requests.Add(1)
	resp := f.answer(req, hasNeg)
	if resp == nil {
		return
	}
	c.Write(resp)
	io.Copy(io.Discard, c) // wait for the client to hang up
}

// rdpCC builds a Connection Confirm TPKT with optional negotiation data.
func rdpCC(neg []byte) []byte {
	b := []byte{3, 0, 0, 0, byte(6 + len(neg)), 0xd0, 0, 0, 0x12, 0x34, 0}
	b = append(b, neg...)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

func rdpNegRsp(flags byte, sel uint32) []byte {
	return binary.LittleEndian.AppendUint32([]byte{2, flags, 8, 0}, sel)
}

func rdpNegFail(code uint32) []byte {
	return binary.LittleEndian.AppendUint32([]byte{3, 0, 8, 0}, code)
}

// server policies, after what the specification lets each kind answer
var (
	// Windows with "require NLA": CredSSP or nothing
	rdpWindowsNLA = func(req uint32, _ bool) []byte {
		switch {
		case req&rdpProtoHybridEx != 0:
			return rdpCC(rdpNegRsp(0x1f, rdpProtoHybridEx))
		case req&rdpProtoHybrid != 0:
			return rdpCC(rdpNegRsp(0x1f, rdpProtoHybrid))
		}
		return rdpCC(rdpNegFail(5))
	}
	// Windows with NLA allowed but not required, RDP security allowed
	rdpWindowsOpen = func(req uint32, _ bool) []byte {
		switch {
		case req&rdpProtoHybridEx != 0:
			return rdpCC(rdpNegRsp(0x1f, rdpProtoHybridEx))
		case req&rdpProtoHybrid != 0:
			return rdpCC(rdpNegRsp(0x1f, rdpProtoHybrid))
		case req&rdpProtoSSL != 0:
			return rdpCC(rdpNegRsp(0x1f, rdpProtoSSL))
		}
		return rdpCC(rdpNegRsp(0x1f, rdpProtoRDP))
	}
	// an xrdp-like server: TLS or RDP security, no CredSSP
	rdpXrdp = func(req uint32, _ bool) []byte {
		if req&rdpProtoSSL != 0 {
			return rdpCC(rdpNegRsp(0x01, rdpProtoSSL))
		}
		return rdpCC(rdpNegRsp(0x01, rdpProtoRDP))
	}
	// RDP security only: refuses TLS
	rdpOnly = func(req uint32, _ bool) []byte {
		if req != rdpProtoRDP {
			return rdpCC(rdpNegFail(2))
		}
		return rdpCC(rdpNegRsp(0, rdpProtoRDP))
	}
	// a server from before negotiation existed: a bare CC
	rdpLegacy = func(uint32, bool) []byte { return rdpCC(nil) }
)

// grabC2 runs the grabber on one target and returns the record, the
// Result the module produced (nil when none) and the error.
func grabC2(t *testing.T, target Target, cfg Config) (record.Service, *Result, error) {
	t.Helper()
	var got *Result
	cfg.Identify = func(r *Result) { got = r }
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.GreetingWait == 0 {
		cfg.GreetingWait = 100 * time.Millisecond
	}
	if cfg.MaxHandshakes == 0 {
		cfg.MaxHandshakes = 20
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := New(cfg).Grab(ctx, target)
	return svc, got, err
}

func TestRDP(t *testing.T) {
	tests := []struct {
		name     string
		answer   func(uint32, bool) []byte
		blind    bool // no Protocol, on a port nobody owns
		want     map[string]string
		wantNeg  string
		requests int32
	}{
		{
			name: "windows requiring NLA", answer: rdpWindowsNLA,
			want: map[string]string{
				"rdp.selected": "hybrid_ex", "rdp.protocols": "hybrid_ex",
				"rdp.flags":  "extended_client_data,dynvc_gfx,reserved,restricted_admin,redirected_auth",
				"rdp.probes": "ssl+hybrid+hybrid_ex=hybrid_ex; ssl=HYBRID_REQUIRED_BY_SERVER",
			},
			wantNeg: "021f080008000000", requests: 2,
		},
		{
			name: "windows without NLA requirement", answer: rdpWindowsOpen,
			want: map[string]string{
				"rdp.selected": "hybrid_ex", "rdp.protocols": "rdp,ssl,hybrid_ex",
				"rdp.probes": "ssl+hybrid+hybrid_ex=hybrid_ex; ssl=ssl; rdp=rdp",
			},
			requests: 3,
		},
		{
			name: "xrdp-like", answer: rdpXrdp,
			want: map[string]string{
				"rdp.selected": "ssl", "rdp.protocols": "rdp,ssl", "rdp.flags": "extended_client_data",
				"rdp.probes": "ssl+hybrid+hybrid_ex=ssl; rdp=rdp",
			},
			wantNeg: "0201080001000000", requests: 2,
		},
		{
			name: "xrdp-like found blind", answer: rdpXrdp, blind: true,
			want:     map[string]string{"rdp.selected": "ssl", "rdp.protocols": "rdp,ssl"},
			requests: 2,
		},
		{
			name: "standard security only", answer: rdpOnly,
			want: map[string]string{
				"rdp.failure": "SSL_NOT_ALLOWED_BY_SERVER", "rdp.protocols": "rdp",
				"rdp.probes": "ssl+hybrid+hybrid_ex=SSL_NOT_ALLOWED_BY_SERVER; rdp=rdp",
			},
			wantNeg: "0300080002000000", requests: 2,
		},
		{
			name: "legacy server without negotiation", answer: rdpLegacy,
			want:     map[string]string{"rdp.selected": "rdp", "rdp.negotiation": "none", "rdp.protocols": "rdp"},
			requests: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &rdpFake{answer: tt.answer}
			addr := newRDPFake(t, f)
			target := Target{Addr: addr, Protocol: "rdp"}
			if tt.blind {
				target.Protocol = ""
			}
			svc, res, err := grabC2(t, target, Config{})
			if err != nil {
				t.Fatalf("grab: %v", err)
			}
			if svc.Protocol != "rdp" || res == nil {
				t.Fatalf("protocol %q, want rdp (data %v)", svc.Protocol, svc.Data)
			}
			for k, v := range tt.want {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q", k, svc.Data[k], v)
				}
			}
			if tt.wantNeg != "" && res.Match["rdp.neg"] != tt.wantNeg {
				t.Errorf("Match[rdp.neg] = %q, want %q", res.Match["rdp.neg"], tt.wantNeg)
			}
			if len(svc.Banner) < 11 || svc.Banner[0] != 3 || svc.Banner[5] != 0xd0 {
				t.Errorf("banner % x is not the Connection Confirm", svc.Banner)
			}
			if n := f.requests.Load(); n != tt.requests {
				t.Errorf("%d connection requests, want %d", n, tt.requests)
			}
		})
	}
}

func TestRDPNotMine(t *testing.T) {
	tests := []struct {
		name string
		f    *rdpFake
	}{
		// an ISO transport service that is not RDP confirms without
		// negotiation data: on a port that is not RDP's, that is no RDP
		{"bare CC on another port", &rdpFake{answer: rdpLegacy}},
		{"http", &rdpFake{raw: func(c net.Conn) {
			c.Read(make([]byte, 64))
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := newRDPFake(t, tt.f)
			mod, _ := Lookup("tcp", "rdp")
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			s := newSession(Target{Addr: addr}, c, 1<<16, time.Now().Add(2*time.Second))
			defer c.Close()
			_, err = mod.Grab(context.Background(), s)
			if !errors.Is(err, ErrNotMine) {
				t.Fatalf("err = %v, want ErrNotMine", err)
			}
		})
	}
}

func TestRDPHostile(t *testing.T) {
	tests := []struct {
		name string
		raw  func(c net.Conn)
	}{
		{"huge TPKT length then endless bytes", func(c net.Conn) {
			c.Read(make([]byte, 64))
			c.Write([]byte{3, 0, 0xff, 0xff})
			junk := bytes.Repeat([]byte{0x41}, 4096)
			for {
				if _, err := c.Write(junk); err != nil {
					return
				}
			}
		}},
		{"slow drip", func(c net.Conn) {
			c.Read(make([]byte, 64))
			for _, b := range rdpCC(rdpNegRsp(0, rdpProtoSSL)) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(300 * time.Millisecond)
			}
		}},
		{"silent", func(c net.Conn) { io.Copy(io.Discard, c) }},
		{"truncated confirm", func(c net.Conn) {
			c.Read(make([]byte, 64))
			c.Write(rdpCC(rdpNegRsp(0, rdpProtoSSL))[:9])
		}},
		{"length indicator beyond packet", func(c net.Conn) {
			c.Read(make([]byte, 64))
			c.Write([]byte{3, 0, 0, 11, 200, 0xd0, 0, 0, 0, 0, 0})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := newRDPFake(t, &rdpFake{raw: tt.raw})
			start := time.Now()
			svc, _, _ := grabC2(t, Target{Addr: addr, Protocol: "rdp"}, Config{Timeout: time.Second})
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			if svc.Protocol == "rdp" {
				t.Errorf("recognised rdp from a hostile server: %v", svc.Data)
			}
		})
	}
}

func TestParseRDPConfirm(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    rdpConfirm
		notMine bool
		err     bool
	}{
		{"response", rdpCC(rdpNegRsp(0x0f, rdpProtoHybrid)), rdpConfirm{Code: x224CC, HasNeg: true, NegType: 2, Flags: 0x0f, Selected: rdpProtoHybrid}, false, false},
		{"failure", rdpCC(rdpNegFail(5)), rdpConfirm{Code: x224CC, HasNeg: true, NegType: 3, Failure: 5}, false, false},
		{"bare", rdpCC(nil), rdpConfirm{Code: x224CC}, false, false},
		{"disconnect", []byte{3, 0, 0, 11, 6, 0x80, 0, 0, 0, 0, 1}, rdpConfirm{Code: x224DR}, false, false},
		{"not tpkt", []byte("SSH-2.0-OpenSSH_9.2\r\n"), rdpConfirm{}, true, false},
		{"data TPDU", []byte{3, 0, 0, 7, 2, 0xf0, 0x80}, rdpConfirm{}, true, false},
		{"truncated", rdpCC(rdpNegRsp(0, 1))[:12], rdpConfirm{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRDPConfirm(tt.in)
			switch {
			case tt.notMine:
				if !errors.Is(err, ErrNotMine) {
					t.Fatalf("err = %v, want ErrNotMine", err)
				}
				return
			case tt.err:
				if err == nil || errors.Is(err, ErrNotMine) {
					t.Fatalf("err = %v, want a parse error", err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			got.Neg, tt.want.Neg = nil, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if got := hex.EncodeToString(rdpRequest(rdpProtoSSL | rdpProtoHybrid | rdpProtoHybridEx)); got != "03000013"+"0ee00000000000"+"01000800"+"0b000000" {
		t.Errorf("request %s", got)
	}
}

func FuzzRDPConfirm(f *testing.F) {
	f.Add(rdpCC(rdpNegRsp(0x1f, rdpProtoHybridEx)))
	f.Add(rdpCC(rdpNegFail(2)))
	f.Add(rdpCC(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseRDPConfirm(b)
		if err != nil {
			return
		}
		if c.HasNeg && len(c.Neg) != 8 {
			t.Fatalf("negotiation data of %d bytes", len(c.Neg))
		}
		rdpProtoName(c.Selected)
		rdpFailureName(c.Failure)
		rdpFlags(c.Flags)
	})
}
