package grab

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// mqttFakeRead reads one control packet as a broker does (MQTT 3.1.1,
// 2.2): fixed header, remaining length of at most four bytes, body.
func mqttFakeRead(r *bufio.Reader) (typ, flags byte, body []byte, err error) {
	h, err := r.ReadByte()
	if err != nil {
		return 0, 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return 0, 0, nil, errors.New("malformed remaining length")
		}
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, nil, err
		}
		n += int(c&0x7f) * mul
		mul <<= 7
		if c&0x80 == 0 {
			break
		}
	}
	if n > 1<<16 {
		return 0, 0, nil, errors.New("packet too large for this broker")
	}
	body = make([]byte, n)
	_, err = io.ReadFull(r, body)
	return h >> 4, h & 0x0f, body, err
}

// mqttFakeBroker plays a broker: it checks that the CONNECT is a 3.1.1
// one with no user name or password, answers with connack, and, when
// that accepts, answers SUBSCRIBE with suback and then sends publish
// (both raw). It reports protocol violations on errs.
type mqttFakeBroker struct {
	connack  []byte
	suback   func(id uint16) []byte
	publish  []byte
	errs     chan error
	sawDisco chan bool
}

func (b *mqttFakeBroker) handle(c net.Conn) {
	r := bufio.NewReader(c)
	// other probes' bytes can read as a packet longer than they are: a
	// broker waits for the rest, this one not for long
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	typ, flags, body, err := mqttFakeRead(r)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if err != nil || typ != mqttCONNECT || flags != 0 {
		return // not MQTT: a broker drops the connection
	}
	if err := mqttFakeCheckConnect(body); err != nil {
		b.errs <- err
		return
	}
	c.Write(b.connack)
	if len(b.connack) < 4 || b.connack[3] != 0 {
		return // refused: the broker closes
	}
	for range 8 {
		typ, flags, body, err := mqttFakeRead(r)
		if err != nil {
			return
		}
		switch typ {
		case mqttSUBSCRIBE:
			if flags != 2 || len(body) < 5 {
				b.errs <- fmt.Errorf("SUBSCRIBE flags %d, %d bytes", flags, len(body))
				return
			}
			id := binary.BigEndian.Uint16(body)
			tl := int(binary.BigEndian.Uint16(body[2:]))
			if 4+tl+1 != len(body) || string(body[4:4+tl]) != mqttSysTopic || body[4+tl] != 0 {
				b.errs <- fmt.Errorf("SUBSCRIBE %q", body)
				return
			}
			if b.suback != nil {
				c.Write(b.suback(id))
			}
			if b.publish != nil {
				c.Write(b.publish)
			}
		case mqttDISCONNECT:
			if b.sawDisco != nil {
				b.sawDisco <- true
			}
			return
		case mqttPUBLISH:
			b.errs <- errors.New("the client published")
			return
		}
	}
}

// mqttFakeCheckConnect checks a CONNECT body against 3.1.4: protocol
// name, level 4, clean session without user name, password or will,
// and a client id.
func mqttFakeCheckConnect(b []byte) error {
	if len(b) < 12 || !bytes.Equal(b[:6], []byte("\x00\x04MQTT")) || b[6] != 4 {
		return fmt.Errorf("CONNECT header %q", b)
	}
	if b[7] != 0x02 {
		return fmt.Errorf("CONNECT flags %#x: want clean session only", b[7])
	}
	if ka := binary.BigEndian.Uint16(b[8:]); ka != 10 {
		return fmt.Errorf("keep alive %d", ka)
	}
	il := int(binary.BigEndian.Uint16(b[10:]))
	if 12+il != len(b) {
		return fmt.Errorf("CONNECT payload %q: more than a client id", b[10:])
	}
	if id := string(b[12:]); !strings.HasPrefix(id, "vantage-") || len(id) > 23 {
		return fmt.Errorf("client id %q", id)
	}
	return nil
}

func mqttFakeSuback(code byte) func(uint16) []byte {
	return func(id uint16) []byte {
		return []byte{mqttSUBACK << 4, 3, byte(id >> 8), byte(id), code}
	}
}

// mqttFakePublish is a retained PUBLISH at QoS 0.
func mqttFakePublish(topic, payload string) []byte {
	body := mqttAppendString(nil, topic)
	body = append(body, payload...)
	return mqttAppendPacket(nil, mqttPUBLISH<<4|1, body)
}

func TestMQTT(t *testing.T) {
	t.Parallel()
	accepted := []byte{0x20, 2, 0, 0}
	tests := []struct {
		name     string
		broker   mqttFakeBroker
		port     uint16
		proto    string
		want     string
		connack  string
		sys      string
		banner   string
		data     map[string]string
		maxTook  time.Duration
		wantDisc bool
	}{
		{
			name: "mosquitto anonymous",
			broker: mqttFakeBroker{connack: accepted, suback: mqttFakeSuback(0),
				publish: append(mqttFakePublish("$SYS/broker/uptime", "12 seconds"), mqttFakePublish(mqttSysTopic, "mosquitto version 2.0.11")...)},
			port: 1883, want: "mqtt", connack: "accepted",
			sys: "mosquitto version 2.0.11", banner: "mosquitto version 2.0.11", wantDisc: true,
		},
		{
			name: "blind on another port",
			broker: mqttFakeBroker{connack: accepted, suback: mqttFakeSuback(0),
				publish: mqttFakePublish(mqttSysTopic, "mosquitto version 1.6.9")},
			want: "mqtt", connack: "accepted", sys: "mosquitto version 1.6.9", wantDisc: true,
		},
		{
			name:   "not authorized",
			broker: mqttFakeBroker{connack: []byte{0x20, 2, 0, 5}},
			port:   1883, want: "mqtt", connack: "not authorized", banner: "\x20\x02\x00\x05",
		},
		{
			name:   "bad credentials demanded",
			broker: mqttFakeBroker{connack: []byte{0x20, 2, 0, 4}},
			proto:  "mqtt", want: "mqtt", connack: "bad user name or password",
		},
		{
			name:   "$SYS refused",
			broker: mqttFakeBroker{connack: accepted, suback: mqttFakeSuback(0x80)},
			port:   1883, want: "mqtt", connack: "accepted",
			data: map[string]string{"mqtt.sys": "subscription refused"}, banner: "\x20\x02\x00\x00", wantDisc: true,
		},
		{
			name:   "no $SYS topic",
			broker: mqttFakeBroker{connack: accepted, suback: mqttFakeSuback(0)},
			port:   1883, want: "mqtt", connack: "accepted", banner: "\x20\x02\x00\x00",
			maxTook: 2500 * time.Millisecond, wantDisc: true,
		},
		{
			name:   "remaining length of five bytes",
			broker: mqttFakeBroker{connack: []byte{0x20, 0xff, 0xff, 0xff, 0xff, 0x7f}},
			proto:  "mqtt", want: "unknown",
		},
		{
			name:   "a 256 MB CONNACK",
			broker: mqttFakeBroker{connack: []byte{0x20, 0xff, 0xff, 0xff, 0x7f}},
			proto:  "mqtt", want: "unknown",
		},
		{
			name:   "http answer",
			broker: mqttFakeBroker{connack: []byte("HTTP/1.1 400 Bad Request\r\n\r\n")},
			proto:  "mqtt", want: "unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.broker
			b.errs = make(chan error, 8)
			b.sawDisco = make(chan bool, 8)
			addr := fakeServer(t, b.handle)
			port := tt.port
			if port == 0 {
				port = addr.Port()
			}
			out := dbtGrab(t, addr, dbtTarget(port, tt.proto), 4*time.Second)
			select {
			case err := <-b.errs:
				t.Fatal(err)
			default:
			}
			if out.err != nil {
				t.Fatal(out.err)
			}
			svc := out.svc
			if svc.Protocol != tt.want || svc.Data["mqtt.connack"] != tt.connack {
				t.Fatalf("got %q %v, want %q %q", svc.Protocol, svc.Data, tt.want, tt.connack)
			}
			if tt.want != "mqtt" {
				return
			}
			if got := out.res.Match["sys_version"]; got != tt.sys {
				t.Errorf("sys_version %q, want %q", got, tt.sys)
			}
			if tt.banner != "" && string(svc.Banner) != tt.banner {
				t.Errorf("banner %q, want %q", svc.Banner, tt.banner)
			}
			for k, v := range tt.data {
				if svc.Data[k] != v {
					t.Errorf("Data[%q] = %q, want %q", k, svc.Data[k], v)
				}
			}
			if tt.maxTook > 0 && out.took > tt.maxTook {
				t.Errorf("took %v", out.took)
			}
			if tt.wantDisc {
				select {
				case <-b.sawDisco:
				case <-time.After(time.Second):
					t.Errorf("no DISCONNECT")
				}
			}
		})
	}
}

func TestMQTTHostile(t *testing.T) {
	t.Parallel()
	flood := func(c net.Conn) {
		r := bufio.NewReader(c)
		if _, _, _, err := mqttFakeRead(r); err != nil {
			return
		}
		c.Write([]byte{0x20, 2, 0, 0})
		p := mqttFakePublish("$SYS/broker/load", strings.Repeat("x", 100))
		for range 100000 {
			if _, err := c.Write(p); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name   string
		handle func(c net.Conn)
	}{
		{"endless bytes", dbtEndless([]byte{0x20})},
		{"slow drip", dbtDrip([]byte{0x20, 2, 0, 0})},
		{"silent", dbtHold},
		{"publish flood after CONNACK", flood},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, tt.handle)
			out := dbtGrab(t, addr, dbtTarget(1883, "mqtt"), 1500*time.Millisecond)
			if out.took > 3*time.Second {
				t.Fatalf("took %v", out.took)
			}
		})
	}
}

func TestMQTTPacket(t *testing.T) {
	tests := []struct {
		in   []byte
		typ  byte
		n    int
		want error
	}{
		{[]byte{0x20, 2, 0, 0}, mqttCONNACK, 4, nil},
		{[]byte{0x20, 2, 0}, 0, 0, errMQTTShort},
		{[]byte{0x30, 0x80}, 0, 0, errMQTTShort},
		{[]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, 0, 0, errors.New("")},
		{[]byte{0x30, 0xff, 0xff, 0xff, 0x7f}, 0, 0, ErrTooLarge},
		{append([]byte{0x90, 0x83, 0x01}, make([]byte, 131)...), mqttSUBACK, 134, nil},
	}
	for _, tt := range tests {
		p, n, err := parseMQTTPacket(tt.in)
		switch {
		case tt.want == nil && (err != nil || p.typ != tt.typ || n != tt.n):
			t.Errorf("% x: type %d, %d bytes, %v", tt.in, p.typ, n, err)
		case tt.want != nil && err == nil:
			t.Errorf("% x: no error", tt.in)
		case tt.want == errMQTTShort || tt.want == ErrTooLarge:
			if !errors.Is(err, tt.want) {
				t.Errorf("% x: %v, want %v", tt.in, err, tt.want)
			}
		}
	}
	// a QoS 1 PUBLISH carries a packet id between topic and payload
	body := mqttAppendString(nil, mqttSysTopic)
	body = append(body, 0, 7)
	body = append(body, "2.0.18"...)
	p, _, err := parseMQTTPacket(mqttAppendPacket(nil, mqttPUBLISH<<4|2, body))
	if err != nil {
		t.Fatal(err)
	}
	topic, payload, err := mqttPublishMsg(p)
	if err != nil || topic != mqttSysTopic || string(payload) != "2.0.18" {
		t.Fatalf("%q %q %v", topic, payload, err)
	}
}

func FuzzMQTTPacket(f *testing.F) {
	f.Add([]byte{0x20, 2, 0, 0})
	f.Add([]byte{0x90, 3, 0, 1, 0})
	f.Add(mqttFakePublish(mqttSysTopic, "mosquitto version 2.0.11"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for range 64 {
			p, n, err := parseMQTTPacket(b)
			if err != nil {
				return
			}
			if n < 2 || n > len(b) || n > mqttMaxPacket+5 {
				t.Fatalf("packet of %d bytes from %d", n, len(b))
			}
			b = b[n:]
			mqttConnack(p)
			mqttSuback(p, 1)
			if topic, payload, err := mqttPublishMsg(p); err == nil && len(topic)+len(payload) > len(p.body) {
				t.Fatalf("publish larger than its packet")
			}
		}
	})
}
