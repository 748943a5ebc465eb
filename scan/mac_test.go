package scan

import (
	"encoding/binary"
	"testing"
)

// refSipHash is SipHash-2-4 for any message length, written straight from
// the paper, to check the fixed-length version against.
func refSipHash(k0, k1 uint64, msg []byte) uint64 {
	v := [4]uint64{k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d, k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573}
	rotl := func(x uint64, b uint) uint64 { return x<<b | x>>(64-b) }
	round := func() {
		v[0] += v[1]
		v[1] = rotl(v[1], 13)
		v[1] ^= v[0]
		v[0] = rotl(v[0], 32)
		v[2] += v[3]
		v[3] = rotl(v[3], 16)
		v[3] ^= v[2]
		v[0] += v[3]
		v[3] = rotl(v[3], 21)
		v[3] ^= v[0]
		v[2] += v[1]
		v[1] = rotl(v[1], 17)
		v[1] ^= v[2]
		v[2] = rotl(v[2], 32)
	}
	var blocks []uint64
	for len(msg) >= 8 {
		blocks = append(blocks, binary.LittleEndian.Uint64(msg))
		msg = msg[8:]
	}
	last := uint64(len(msg)+8*len(blocks)) << 56
	for i, b := range msg {
		last |= uint64(b) << (8 * i)
	}
	for _, m := range append(blocks, last) {
		v[3] ^= m
		round()
		round()
		v[0] ^= m
	}
	v[2] ^= 0xff
	round()
	round()
	round()
	round()
	return v[0] ^ v[1] ^ v[2] ^ v[3]
}

func TestSipHash(t *testing.T) {
	var key [16]byte
	for i := range key {
		key[i] = byte(i)
	}
	k0, k1 := binary.LittleEndian.Uint64(key[:8]), binary.LittleEndian.Uint64(key[8:])
	// the paper's test vector (appendix A): message 00..0e
	msg := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	if got := refSipHash(k0, k1, msg); got != 0xa129ca6149be45e5 {
		t.Fatalf("reference siphash = %x, want a129ca6149be45e5", got)
	}
	for i := 0; i < 1000; i++ {
		var m [16]byte
		for j := range m {
			m[j] = byte(i*31 + j*7)
		}
		m0, m1 := binary.LittleEndian.Uint64(m[:8]), binary.LittleEndian.Uint64(m[8:])
		if got, want := siphash(k0+uint64(i), k1, m0, m1), refSipHash(k0+uint64(i), k1, m[:]); got != want {
			t.Fatalf("siphash(%x) = %x, reference %x", m, got, want)
		}
	}
}

func TestValidatorKeys(t *testing.T) {
	a, _ := NewValidator()
	b, _ := NewValidator()
	if a.Sum(1, 2, 3) == b.Sum(1, 2, 3) {
		t.Fatal("two validators share a key")
	}
	if a.Sum(1, 2, 3) != a.Sum(1, 2, 3) || a.Sum(1, 2, 3) == a.Sum(1, 2, 4) {
		t.Fatal("MAC not a function of its input")
	}
}

func BenchmarkValidator(b *testing.B) {
	v, _ := NewValidator()
	var s uint64
	for i := 0; i < b.N; i++ {
		s += v.Sum(0xc000020a, uint32(i), 80)
	}
	_ = s
}
