package fingerprint

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// sameAnswer checks that the prefilter never changes an identification:
// Identify agrees with running every regexp of the protocol.
func sameAnswer(t *testing.T, db *DB, protocol string, fields map[string]string) {
	t.Helper()
	m, ok := db.Identify(protocol, fields)
	m2, ok2, _ := db.identifySlow(protocol, fields, modeIndexOnly)
	if ok != ok2 || !reflect.DeepEqual(m, m2) {
		t.Fatalf("protocol %q fields %q:\nprefilter: %v %+v\nall rules: %v %+v", protocol, fields, ok, m, ok2, m2)
	}
}

func FuzzLoadRules(f *testing.F) {
	f.Add([]byte("protocol = \"ssh\"\n[[rule]]\nid = \"a\"\npattern = '^SSH-2\\.0-(\\w+)'\nproduct = \"$1\"\ncpe = \"cpe:2.3:a:x:y:$1:*:*:*:*:*:*:*\"\n"))
	f.Add([]byte("[[rule]]\nid = \"b\"\nprotocol = \"*\"\nfield = \"body\"\nbytes = true\npattern = '(?i)\\x{ff}k(.)'\nproduct = \"P\"\nversion = \"$SUBST(1,\\\"a\\\",\\\"b\\\")\"\nprefilter = [\"K\"]\n[rule.extra]\nx = \"$P(1)\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := Load("fuzz.toml", data)
		if err != nil {
			return
		}
		for _, r := range db.Rules() {
			if r.Prefilter != nil {
				continue // explicit literals are the author's promise, not derived
			}
			fields := map[string]string{r.Field: string(data), "banner": string(data)}
			sameAnswer(t, db, r.Protocol, fields)
		}
	})
}

// FuzzPrefilter: for any pattern and text, the derived literals never
// reject a text the pattern matches.
func FuzzPrefilter(f *testing.F) {
	for _, r := range Default().Rules() {
		f.Add(r.Pattern, r.Bytes, "SSH-2.0-OpenSSH_9.7 "+r.Product)
	}
	f.Add(`(?i)kelvin`, false, "\u212aelvin")
	f.Add(`(?i)(?:ab|cd)+xyz`, true, "ABCDXYZ\xff")
	f.Fuzz(func(t *testing.T, pattern string, bytesMode bool, text string) {
		db, err := New([]Rule{{ID: "f", Protocol: "p", Pattern: pattern, Product: "P", Bytes: bytesMode}})
		if err != nil {
			return
		}
		sameAnswer(t, db, "p", map[string]string{"banner": text})
	})
}

func FuzzImportNmap(f *testing.F) {
	f.Add([]byte("Probe TCP NULL q||\nmatch ssh m|^SSH-([\\d.]+)-Foo_([\\w.]+)|s p/Foo/ v/$2/ i/proto $1/ cpe:/a:foo:foo:$2/a\n"))
	f.Add([]byte("match x m=^\\xff(?:a|b)+= p/X/ v/$SUBST(1,\"_\",\".\")/ h/$P(1)/ o/O/ d/router/\nsoftmatch y m|^y|\n"))
	f.Add([]byte("match http m|^HTTP/1\\.[01] \\d\\d\\d (?:[^\\r\\n]*\\r\\n(?!\\r\\n))*?Server: X/([\\d.]+)|s p/X/ v/$1/\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		db, _, err := ImportNmap(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		for _, r := range db.Rules() {
			sameAnswer(t, db, r.Protocol, map[string]string{"banner": string(data)})
		}
	})
}

func FuzzImportRecog(f *testing.F) {
	f.Add([]byte(`<fingerprints matches="ssh.banner"><fingerprint pattern="^Foo_(\d+)$" flags="REG_ICASE"><param pos="0" name="service.product" value="Foo"/><param pos="1" name="service.version"/><param pos="0" name="service.cpe23" value="cpe:/a:foo:foo:{service.version}"/></fingerprint></fingerprints>`))
	f.Add([]byte(`<fingerprints matches="http_header.server"><fingerprint pattern="(?&lt;v&gt;\h+)"><param pos="1" name="service.product"/></fingerprint></fingerprints>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		db, _, err := ImportRecog(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		for _, r := range db.Rules() {
			sameAnswer(t, db, r.Protocol, map[string]string{r.Field: string(data)})
		}
	})
}

// FuzzIdentify: any text under any protocol and field, against the
// built-in rules: no panic, the prefilter agrees with running every rule,
// and the time stays bounded (field capped, Go's regexps linear).
func FuzzIdentify(f *testing.F) {
	f.Add("ssh", "banner", "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6")
	f.Add("http", "server", "Apache/2.4.41 (Ubuntu)")
	f.Add("http", "body", `{"version":{"number":"8.11.1"},"tagline":"You Know, for Search"}`)
	f.Add("mysql", "banner", "J\x00\x00\x00\x0a8.0.35\x00")
	f.Add("telnet", "banner", "\xff\xfd\x18BusyBox v1.2.3")
	f.Add("rdp", "rdp.neg", "030000130ed00000123400021f080002000000")
	f.Add("unknown", "banner", "\u212a\u017f")
	db := Default()
	f.Fuzz(func(t *testing.T, protocol, field, text string) {
		start := time.Now()
		sameAnswer(t, db, protocol, map[string]string{field: text, "banner": text})
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%d bytes took %v", len(text), d)
		}
	})
}
