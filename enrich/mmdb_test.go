package enrich

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
)

// writeMMDB writes a minimal MaxMind DB (IPv6 tree, IPv4 under ::/96,
// 24-bit records) mapping each prefix to {"country_code": code}, so the
// country code path is tested without the real file. The maxminddb module
// has no writer; this follows https://maxmind.github.io/MaxMind-DB/.
// Prefixes must not nest.
func writeMMDB(t testing.TB, path string, countries map[netip.Prefix]string) {
	t.Helper()
	if err := os.WriteFile(path, buildMMDB(t, countries, "country_code"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func buildMMDB(t testing.TB, countries map[netip.Prefix]string, key string) []byte {
	t.Helper()
	type node struct {
		child [2]*node
		data  [2]int // 1+index into records; 0: none
	}
	root := &node{}
	var records []string
	recIdx := map[string]int{}
	for p, cc := range countries {
		bits := p.Bits()
		a := p.Addr().As16()
		if p.Addr().Is4() { // IPv4 lives at ::a.b.c.d in an IPv6 tree
			a = [16]byte{}
			v4 := p.Addr().As4()
			copy(a[12:], v4[:])
			bits += 96
		}
		if bits == 0 {
			t.Fatal("writeMMDB: /0 not supported")
		}
		if _, ok := recIdx[cc]; !ok {
			recIdx[cc] = len(records)
			records = append(records, cc)
		}
		n := root
		for i := 0; i < bits; i++ {
			b := a[i/8] >> (7 - i%8) & 1
			if i == bits-1 {
				if n.child[b] != nil || n.data[b] != 0 {
					t.Fatalf("writeMMDB: %v overlaps another prefix", p)
				}
				n.data[b] = 1 + recIdx[cc]
				break
			}
			if n.data[b] != 0 {
				t.Fatalf("writeMMDB: %v overlaps another prefix", p)
			}
			if n.child[b] == nil {
				n.child[b] = &node{}
			}
			n = n.child[b]
		}
	}
	// Number the nodes breadth first.
	nodes := []*node{root}
	index := map[*node]int{root: 0}
	for i := 0; i < len(nodes); i++ {
		for _, c := range nodes[i].child {
			if c != nil {
				index[c] = len(nodes)
				nodes = append(nodes, c)
			}
		}
	}
	// Data section: one map per country.
	var data []byte
	offsets := make([]int, len(records))
	for i, cc := range records {
		offsets[i] = len(data)
		data = append(data, 0xe1) // map, 1 pair
		data = mmdbString(data, key)
		data = mmdbString(data, cc)
	}
	nodeCount := len(nodes)
	var out []byte
	for _, n := range nodes {
		for b := range 2 {
			v := nodeCount // empty
			switch {
			case n.child[b] != nil:
				v = index[n.child[b]]
			case n.data[b] != 0:
				v = nodeCount + 16 + offsets[n.data[b]-1]
			}
			out = append(out, byte(v>>16), byte(v>>8), byte(v))
		}
	}
	out = append(out, make([]byte, 16)...)
	out = append(out, data...)
	out = append(out, "\xab\xcd\xefMaxMind.com"...)
	out = append(out, 0xe0|9) // map, 9 pairs
	out = mmdbString(out, "binary_format_major_version")
	out = append(out, 0xa1, 2) // uint16
	out = mmdbString(out, "binary_format_minor_version")
	out = append(out, 0xa0)
	out = mmdbString(out, "build_epoch")
	out = append(out, 0x04, 0x02) // uint64 (extended type 9), 4 bytes
	out = binary.BigEndian.AppendUint32(out, 1781725900)
	out = mmdbString(out, "database_type")
	out = mmdbString(out, "test-country")
	out = mmdbString(out, "description")
	out = append(out, 0xe1)
	out = mmdbString(out, "en")
	out = mmdbString(out, "enrich test database")
	out = mmdbString(out, "ip_version")
	out = append(out, 0xa1, 6)
	out = mmdbString(out, "languages")
	out = append(out, 0x00, 0x04) // array (extended type 11), empty
	out = mmdbString(out, "node_count")
	out = append(out, 0xc4) // uint32, 4 bytes
	out = binary.BigEndian.AppendUint32(out, uint32(nodeCount))
	out = mmdbString(out, "record_size")
	out = append(out, 0xa1, 24)
	return out
}

func mmdbString(b []byte, s string) []byte {
	if len(s) >= 29 {
		panic("mmdbString: long strings not supported")
	}
	return append(append(b, 0x40|byte(len(s))), s...)
}
