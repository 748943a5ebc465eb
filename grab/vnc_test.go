package grab

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// A fake RFB server, written from RFC 6143 §7.1: it sends its
// ProtocolVersion, reads the client's, and sends its security types (or,
// with no types, a refusal with reason). It records the client's version
// and fails the handshake if the client picks a security type.
type fakeVNC struct {
	version string
	types   []byte // 3.7 and later: the list; 3.3: types[0] is the one
	reason  string
	hangUp  bool
	got     chan string
}

func (f *fakeVNC) serve(c net.Conn) {
	c.Write([]byte(f.version))
	if f.hangUp {
		return
	}
	v := make([]byte, 12)
	if _, err := io.ReadFull(c, v); err != nil {
		return
	}
	if f.got != nil {
		f.got <- string(v)
	}
	var msg []byte
	if string(v) == "RFB 003.003\n" {
		t := uint32(0)
		if len(f.types) > 0 {
			t = uint32(f.types[0])
		}
		msg = binary.BigEndian.AppendUint32(nil, t)
	} else {
		msg = append([]byte{byte(len(f.types))}, f.types...)
	}
	if len(f.types) == 0 {
		msg = binary.BigEndian.AppendUint32(msg, uint32(len(f.reason)))
		msg = append(msg, f.reason...)
	}
	c.Write(msg)
	// a client that chose a type would send one byte now; we wait for the
	// hang-up
	io.Copy(io.Discard, c)
}

func TestVNCGrab(t *testing.T) {
	tests := []struct {
		name  string
		srv   *fakeVNC
		proto string
		// expected
		banner, version, security, errText, reply string
	}{
		{
			name: "3.8 named", proto: "vnc",
			srv:    &fakeVNC{version: "RFB 003.008\n", types: []byte{2, 19}},
			banner: "RFB 003.008", version: "3.8", security: "VNC, VeNCrypt", reply: "RFB 003.008\n",
		},
		{
			name:   "3.8 on another port",
			srv:    &fakeVNC{version: "RFB 003.008\n", types: []byte{1, 2, 16}},
			banner: "RFB 003.008", version: "3.8", security: "None, VNC, Tight", reply: "RFB 003.008\n",
		},
		{
			name:   "3.7",
			srv:    &fakeVNC{version: "RFB 003.007\n", types: []byte{2}},
			banner: "RFB 003.007", version: "3.7", security: "VNC", reply: "RFB 003.007\n",
		},
		{
			name:   "3.3: the server picks",
			srv:    &fakeVNC{version: "RFB 003.003\n", types: []byte{2}},
			banner: "RFB 003.003", version: "3.3", security: "VNC", reply: "RFB 003.003\n",
		},
		{
			name:   "Apple",
			srv:    &fakeVNC{version: "RFB 003.889\n", types: []byte{30, 33, 36, 35}},
			banner: "RFB 003.889", version: "3.889", security: "Apple, 33, 36, 35", reply: "RFB 003.889\n",
		},
		{
			name:   "UltraVNC's 3.6 is 3.3",
			srv:    &fakeVNC{version: "RFB 003.006\n", types: []byte{2}},
			banner: "RFB 003.006", version: "3.6", security: "VNC", reply: "RFB 003.003\n",
		},
		{
			name:   "newer than 3.8",
			srv:    &fakeVNC{version: "RFB 005.000\n", types: []byte{5, 6, 2}},
			banner: "RFB 005.000", version: "5.0", security: "RA2, RA2ne, VNC", reply: "RFB 003.008\n",
		},
		{
			name:   "refused with a reason",
			srv:    &fakeVNC{version: "RFB 003.008\n", reason: "Too many security failures"},
			banner: "RFB 003.008", version: "3.8", errText: "Too many security failures", reply: "RFB 003.008\n",
		},
		{
			name:   "3.3 refused with a reason",
			srv:    &fakeVNC{version: "RFB 003.003\n", reason: "Connection rejected"},
			banner: "RFB 003.003", version: "3.3", errText: "Connection rejected", reply: "RFB 003.003\n",
		},
		{
			name:   "greets and hangs up",
			srv:    &fakeVNC{version: "RFB 003.008\n", hangUp: true},
			banner: "RFB 003.008", version: "3.8",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.srv.got = make(chan string, 1)
			addr := fakeServer(t, tt.srv.serve)
			svc, err, _ := greetGrab(t, addr, 0, tt.proto)
			if err != nil {
				t.Fatal(err)
			}
			if svc.Protocol != "vnc" || string(svc.Banner) != tt.banner {
				t.Fatalf("got %s %q", svc.Protocol, svc.Banner)
			}
			if svc.Data["vnc.version"] != tt.version || svc.Data["vnc.security"] != tt.security || svc.Data["vnc.error"] != tt.errText {
				t.Errorf("data %q", svc.Data)
			}
			if tt.reply != "" {
				select {
				case got := <-tt.srv.got:
					if got != tt.reply {
						t.Errorf("client version %q", got)
					}
				case <-time.After(time.Second):
					t.Error("no client version")
				}
			}
		})
	}
}

func TestVNCHostile(t *testing.T) {
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"4 GB reason", func(c net.Conn) {
			c.Write([]byte("RFB 003.008\n"))
			v := make([]byte, 12)
			io.ReadFull(c, v)
			c.Write([]byte{0, 0xff, 0xff, 0xff, 0xff})
			for i := 0; i < 1000; i++ {
				if _, err := c.Write(make([]byte, 4096)); err != nil {
					return
				}
			}
		}},
		{"more types announced than sent", func(c net.Conn) {
			c.Write([]byte("RFB 003.008\n"))
			v := make([]byte, 12)
			io.ReadFull(c, v)
			c.Write([]byte{200, 1, 2})
			io.Copy(io.Discard, c)
		}},
		{"slow drip", func(c net.Conn) {
			c.Write([]byte("RFB 003.008\n"))
			v := make([]byte, 12)
			io.ReadFull(c, v)
			for i := 0; i < 255; i++ {
				if _, err := c.Write([]byte{255}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.handle)
			svc, _, took := greetGrab(t, addr, 0, "vnc")
			if took > 4*time.Second {
				t.Errorf("took %v", took)
			}
			if svc.Protocol != "vnc" || string(svc.Banner) != "RFB 003.008" {
				t.Errorf("got %s %q", svc.Protocol, clip(svc.Banner, 60))
			}
			if len(svc.Data["vnc.error"]) > vncMaxReason || svc.Data["vnc.security"] != "" {
				t.Errorf("data %q", svc.Data)
			}
		})
	}
}

func TestVNCParse(t *testing.T) {
	for _, tt := range []struct {
		g    string
		want bool
	}{
		{"RFB 003.008\n", true},
		{"RFB 003.889\n", true},
		{"RFB 003.008\r\n", false},
		{"RFB 3.8\n", false},
		{"RFB 003.00x\n", false},
		{"SSH-2.0-x\r\n", false},
		{"RFB 003.008", false},
	} {
		if got := vncClaims([]byte(tt.g)); got != tt.want {
			t.Errorf("vncClaims(%q) = %v", tt.g, got)
		}
	}
	names, reason, err := vncParseSecurity([]byte{3, 1, 2, 99}, false)
	if err != nil || reason != "" || len(names) != 3 || names[2] != "99" {
		t.Errorf("%q %q %v", names, reason, err)
	}
	if _, _, err := vncParseSecurity([]byte{3, 1}, false); err == nil {
		t.Error("a short list parsed")
	}
	_, reason, err = vncParseSecurity([]byte{0, 0, 0, 0, 0, 0, 0, 3, 'b', '\x00', 'd'}, true)
	if err != nil || reason != "bd" {
		t.Errorf("%q %v", reason, err)
	}
}

// FuzzVNCSecurity drives the version and security message parsers.
func FuzzVNCSecurity(f *testing.F) {
	f.Add([]byte{2, 2, 19}, false)
	f.Fuzz(func(t *testing.T, data []byte, legacy bool) {
		vncClaims(data)
		if major, minor, ok := vncParseVersion(clip(data, 12)); ok {
			vncReply(major, minor)
		}
		names, reason, err := vncParseSecurity(data, legacy)
		if err != nil {
			return
		}
		if len(names) > 255 || len(reason) > 4*vncMaxReason {
			t.Fatalf("%d names, %d byte reason", len(names), len(reason))
		}
	})
}
