package scan

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Validator computes the keyed MAC that makes the scanner stateless: each
// probe carries bits of MAC(source, destination, destination port) in its
// sequence number, source port (or ICMP identifier and payload), and a reply
// is accepted only if those bits come back. Without the key, which never
// leaves the process, nobody off the path can forge a reply.
//
// The MAC is SipHash-2-4 over a fixed 16-byte message.
type Validator struct{ k0, k1 uint64 }

// NewValidator returns a validator with a fresh random key.
func NewValidator() (*Validator, error) {
	var k [16]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, fmt.Errorf("validation key: %w", err)
	}
	return &Validator{binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:])}, nil
}

// Sum is the MAC of one probe's addressing.
func (v *Validator) Sum(src, dst uint32, port uint16) uint64 {
	return siphash(v.k0, v.k1, uint64(src)<<32|uint64(dst), uint64(port))
}

// siphash is SipHash-2-4 of the 16-byte message m0||m1 (little-endian words).
func siphash(k0, k1, m0, m1 uint64) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	for _, m := range [3]uint64{m0, m1, 16 << 56} { // last block: the length, no tail bytes
		v3 ^= m
		round()
		round()
		v0 ^= m
	}
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}
