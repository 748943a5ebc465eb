package fingerprint

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// The golden tables: testdata/samples/<rules file>.toml lists sample
// service texts with the identification expected from the built-in rules.

type sampleFile struct {
	Samples []sample `toml:"sample"`
}

type sample struct {
	Rule     string            `toml:"rule"` // "" expects no match
	Protocol string            `toml:"protocol"`
	Fields   map[string]string `toml:"fields"`
	Hex      map[string]string `toml:"hex"` // binary fields, hex encoded
	Product  *string           `toml:"product"`
	Vendor   *string           `toml:"vendor"`
	Version  *string           `toml:"version"`
	Info     *string           `toml:"info"`
	OS       *string           `toml:"os"`
	Device   *string           `toml:"device"`
	CPE      *[]string         `toml:"cpe"`
	Extra    map[string]string `toml:"extra"`
}

func (s sample) fields(t *testing.T) map[string]string {
	f := map[string]string{}
	for k, v := range s.Fields {
		f[k] = v
	}
	for k, v := range s.Hex {
		b, err := hex.DecodeString(strings.Join(strings.Fields(v), ""))
		if err != nil {
			t.Fatalf("hex field %s: %v", k, err)
		}
		f[k] = string(b)
	}
	return f
}

func loadSamples(t *testing.T) map[string][]sample {
	t.Helper()
	names, err := filepath.Glob("testdata/samples/*.toml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no sample files: %v", err)
	}
	out := map[string][]sample{}
	for _, n := range names {
		var f sampleFile
		md, err := toml.DecodeFile(n, &f)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if u := md.Undecoded(); len(u) > 0 {
			t.Fatalf("%s: unknown keys %v", n, u)
		}
		out[filepath.Base(n)] = f.Samples
	}
	return out
}

func checkMatch(t *testing.T, s sample, m Match, ok bool) {
	t.Helper()
	if s.Rule == "" {
		if ok {
			t.Fatalf("want no match, got %s (%s %s)", m.RuleID, m.Product, m.Version)
		}
		return
	}
	if !ok {
		t.Fatalf("want %s, got no match", s.Rule)
	}
	if m.RuleID != s.Rule {
		t.Fatalf("want rule %s, got %s (%s %s)", s.Rule, m.RuleID, m.Product, m.Version)
	}
	str := func(name string, want *string, got string) {
		if want != nil && *want != got {
			t.Errorf("%s = %q, want %q", name, got, *want)
		}
	}
	str("product", s.Product, m.Product)
	str("vendor", s.Vendor, m.Vendor)
	str("version", s.Version, m.Version)
	str("info", s.Info, m.Info)
	str("os", s.OS, m.OS)
	str("device", s.Device, m.Device)
	if s.CPE != nil && !slices.Equal(*s.CPE, m.CPE) {
		t.Errorf("cpe = %q, want %q", m.CPE, *s.CPE)
	}
	for k, v := range s.Extra {
		if m.Extra[k] != v {
			t.Errorf("extra[%s] = %q, want %q", k, m.Extra[k], v)
		}
	}
	for _, c := range m.CPE {
		if n := len(splitCPEOrDie(t, c)); n != cpeParts {
			t.Errorf("cpe %q has %d parts", c, n)
		}
	}
}

func splitCPEOrDie(t *testing.T, c string) []string {
	p, err := splitCPE(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSamples runs every golden sample through the built-in rules, and
// checks that the prefilter changes nothing: the same sample through every
// rule of its protocol, and through every rule of the DB, gives the same
// answer.
func TestSamples(t *testing.T) {
	db := Default()
	for file, samples := range loadSamples(t) {
		for i, s := range samples {
			name := fmt.Sprintf("%s#%d:%s", file, i, s.Rule)
			t.Run(name, func(t *testing.T) {
				fields := s.fields(t)
				m, ok := db.Identify(s.Protocol, fields)
				checkMatch(t, s, m, ok)
				for _, mode := range []scanMode{modeIndexOnly, modeAllRules} {
					m2, ok2, _ := db.identifySlow(s.Protocol, fields, mode)
					if ok2 != ok || !reflect.DeepEqual(m, m2) {
						t.Errorf("mode %d disagrees: %+v %v, prefilter gave %+v %v", mode, m2, ok2, m, ok)
					}
				}
			})
		}
	}
}

// TestNoDeadRules: every built-in rule is the answer for at least one
// sample, and every rules file has its sample table.
func TestNoDeadRules(t *testing.T) {
	db := Default()
	matched := map[string]bool{}
	for _, samples := range loadSamples(t) {
		for _, s := range samples {
			if m, ok := db.Identify(s.Protocol, s.fields(t)); ok {
				matched[m.RuleID] = true
			}
		}
	}
	for _, r := range db.Rules() {
		if !matched[r.ID] {
			t.Errorf("%s: rule %s matches no sample", r.Source, r.ID)
		}
	}
	rules, _ := filepath.Glob("rules/*.toml")
	for _, r := range rules {
		if _, err := os.Stat(filepath.Join("testdata/samples", filepath.Base(r))); err != nil {
			t.Errorf("%s has no sample table: %v", r, err)
		}
	}
}
