package respond

import "github.com/vantagehq/vantage/record"

// MaxPacketPayload bounds the bytes of a datagram kept in Event.Payload.
const MaxPacketPayload = 4 << 10

// HandlePacket records a UDP datagram sent to dstPort into ev and returns
// the reply to send, or nil. SIP requests (port 5060/5061 or content) and
// DNS queries (port 53) are answered; replies are never larger than the
// datagram. Everything else is recorded silently.
func HandlePacket(payload []byte, dstPort uint16, ev *record.Event) (reply []byte) {
	if ev.Transport == "" {
		ev.Transport = "udp"
	}
	if ev.DstPort == 0 {
		ev.DstPort = dstPort
	}
	ev.Payload = append([]byte(nil), payload[:min(len(payload), MaxPacketPayload)]...)
	switch {
	case dstPort == 53:
		reply = handleDNS(payload, ev)
	case dstPort == 5060 || dstPort == 5061 || detectSIP(payload):
		reply = handleSIPPacket(payload, ev)
	}
	if len(reply) > len(payload) {
		return nil
	}
	return reply
}
