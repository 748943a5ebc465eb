package grab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
	"unicode/utf8"
)

// MQTT: the client speaks first. An MQTT 3.1.1 CONNECT with a clean
// session, a random client id and no username or password; the CONNACK's
// return code says whether anonymous clients are let in. When they are,
// we subscribe (QoS 0) to the read-only $SYS/broker/version topic, which
// brokers such as Mosquitto publish as a retained message, wait briefly
// for it, and disconnect. We never publish.
func init() {
	Register(Module{
		Name:  "mqtt",
		Ports: []uint16{1883},
		Rank:  60,
		Grab:  grabMQTT,
	})
}

const (
	mqttMaxPacket  = 64 << 10 // largest packet we accept from a broker
	mqttSysTopic   = "$SYS/broker/version"
	mqttSysWait    = 2 * time.Second
	mqttMaxPackets = 16 // packets read while waiting for $SYS
)

// MQTT control packet types (MQTT 3.1.1, 2.2.1).
const (
	mqttCONNECT    = 1
	mqttCONNACK    = 2
	mqttPUBLISH    = 3
	mqttSUBSCRIBE  = 8
	mqttSUBACK     = 9
	mqttDISCONNECT = 14
)

// mqttConnackCodes are the CONNACK return codes of MQTT 3.1.1 (3.2.2.3).
var mqttConnackCodes = [...]string{
	0: "accepted",
	1: "unacceptable protocol version",
	2: "identifier rejected",
	3: "server unavailable",
	4: "bad user name or password",
	5: "not authorized",
}

func mqttConnackMeaning(rc byte) string {
	if int(rc) < len(mqttConnackCodes) {
		return mqttConnackCodes[rc]
	}
	return fmt.Sprintf("code %d", rc)
}

// mqttConnect builds a CONNECT packet: protocol "MQTT" level 4, clean
// session, keep alive 10 s, the client id as the only payload.
func mqttConnect(clientID string) []byte {
	var vh []byte
	vh = mqttAppendString(vh, "MQTT")
	vh = append(vh, 4, 0x02, 0, 10) // level 4; flags: clean session; keep alive 10
	vh = mqttAppendString(vh, clientID)
	return mqttAppendPacket(nil, mqttCONNECT<<4, vh)
}

// mqttSubscribe builds a SUBSCRIBE for one topic filter at QoS 0.
func mqttSubscribe(id uint16, topic string) []byte {
	body := binary.BigEndian.AppendUint16(nil, id)
	body = mqttAppendString(body, topic)
	body = append(body, 0) // requested QoS 0
	return mqttAppendPacket(nil, mqttSUBSCRIBE<<4|0x2, body)
}

func mqttAppendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func mqttAppendPacket(b []byte, first byte, body []byte) []byte {
	b = append(b, first)
	n := len(body)
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			break
		}
	}
	return append(b, body...)
}

// mqttPacket is one control packet from the broker.
type mqttPacket struct {
	typ   byte
	flags byte
	body  []byte
	raw   []byte
}

var errMQTTShort = errors.New("mqtt: packet incomplete")

// parseMQTTPacket splits the first control packet off b. The remaining
// length is a variable byte integer of at most four bytes (2.2.3).
func parseMQTTPacket(b []byte) (mqttPacket, int, error) {
	var p mqttPacket
	if len(b) < 2 {
		return p, 0, errMQTTShort
	}
	p.typ, p.flags = b[0]>>4, b[0]&0x0f
	n, mul, i := 0, 1, 1
	for {
		if i > 4 {
			return p, 0, errors.New("mqtt: remaining length longer than four bytes")
		}
		if i >= len(b) {
			return p, 0, errMQTTShort
		}
		c := b[i]
		n += int(c&0x7f) * mul
		mul <<= 7
		i++
		if c&0x80 == 0 {
			break
		}
	}
	if n > mqttMaxPacket {
		return p, 0, fmt.Errorf("%w: mqtt packet of %d bytes", ErrTooLarge, n)
	}
	if len(b)-i < n {
		return p, 0, errMQTTShort
	}
	p.body = b[i : i+n]
	p.raw = b[:i+n]
	return p, i + n, nil
}

// mqttConnack reads a CONNACK (3.2): flags (bit 0: session present) and
// the return code.
func mqttConnack(p mqttPacket) (sessionPresent bool, rc byte, err error) {
	if p.typ != mqttCONNACK || p.flags != 0 || len(p.body) != 2 || p.body[0]&^1 != 0 {
		return false, 0, NotMine("not a CONNACK: type %d flags %#x length %d", p.typ, p.flags, len(p.body))
	}
	return p.body[0] == 1, p.body[1], nil
}

// mqttPublishMsg reads a PUBLISH (3.3): topic, packet id when QoS > 0,
// payload.
func mqttPublishMsg(p mqttPacket) (topic string, payload []byte, err error) {
	if p.typ != mqttPUBLISH {
		return "", nil, errors.New("mqtt: not a PUBLISH")
	}
	qos := (p.flags >> 1) & 3
	if qos == 3 {
		return "", nil, errors.New("mqtt: PUBLISH with QoS 3")
	}
	b := p.body
	if len(b) < 2 {
		return "", nil, errors.New("mqtt: PUBLISH too short")
	}
	tl := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+tl {
		return "", nil, errors.New("mqtt: PUBLISH topic past the end")
	}
	topic, b = string(b[2:2+tl]), b[2+tl:]
	if qos > 0 {
		if len(b) < 2 {
			return "", nil, errors.New("mqtt: PUBLISH without packet id")
		}
		b = b[2:]
	}
	return topic, b, nil
}

// mqttSuback reads the SUBACK (3.9) for packet id: the granted QoS or
// 0x80 for failure.
func mqttSuback(p mqttPacket, id uint16) (byte, bool) {
	if p.typ != mqttSUBACK || len(p.body) < 3 || binary.BigEndian.Uint16(p.body) != id {
		return 0, false
	}
	return p.body[2], true
}

// mqttReader reads packets from a session with a time limit per packet.
type mqttReader struct {
	s   *Session
	buf []byte
}

var errMQTTWait = fmt.Errorf("mqtt: nothing within the wait: %w", os.ErrDeadlineExceeded)

func (m *mqttReader) next(until time.Time) (mqttPacket, error) {
	for range 4096 {
		p, n, err := parseMQTTPacket(m.buf)
		if err == nil {
			m.buf = m.buf[n:]
			return p, nil
		}
		if !errors.Is(err, errMQTTShort) {
			return p, err
		}
		wait := time.Until(until)
		if wait <= 0 {
			return p, errMQTTWait
		}
		b, err := m.s.ReadFor(wait, 1)
		m.buf = append(m.buf, b...)
		if len(b) == 0 {
			if err == nil || isTimeout(err) {
				err = errMQTTWait
			}
			return p, err
		}
	}
	return mqttPacket{}, errors.New("mqtt: too many reads for one packet")
}

func grabMQTT(ctx context.Context, s *Session) (*Result, error) {
	id := fmt.Sprintf("vantage-%08x", rand.Uint32())
	if err := s.Write(mqttConnect(id)); err != nil {
		return nil, err
	}
	rd := &mqttReader{s: s}
	p, err := rd.next(s.Deadline())
	if err != nil {
		if errors.Is(err, ErrTooLarge) || len(rd.buf) > 0 {
			return nil, NotMine("reply %q: %v", clip(rd.buf, 40), err)
		}
		return nil, err
	}
	_, rc, err := mqttConnack(p)
	if err != nil {
		return nil, err
	}
	r := &Result{Protocol: "mqtt", Banner: append([]byte(nil), p.raw...)}
	r.Set("mqtt.connack", mqttConnackMeaning(rc))
	if rc != 0 {
		return r, nil
	}
	const subID = 1
	if err := s.Write(mqttSubscribe(subID, mqttSysTopic)); err != nil {
		return r, nil
	}
	until := time.Now().Add(mqttSysWait)
	if d := s.Deadline(); d.Before(until) {
		until = d
	}
	for range mqttMaxPackets {
		p, err := rd.next(until)
		if err != nil {
			break
		}
		if qos, ok := mqttSuback(p, subID); ok {
			if qos == 0x80 {
				r.Set("mqtt.sys", "subscription refused")
				break
			}
			continue
		}
		topic, payload, err := mqttPublishMsg(p)
		if err != nil || topic != mqttSysTopic {
			continue
		}
		v := string(clip(payload, 256))
		if utf8.ValidString(v) && redisPrintable(v) && v != "" {
			r.Banner = []byte(v)
			r.Match = map[string]string{"sys_version": v}
		}
		break
	}
	s.Write([]byte{mqttDISCONNECT << 4, 0})
	return r, nil
}
