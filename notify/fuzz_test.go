package notify

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary signature headers and bodies to Verify. It must
// never panic, must fail only with its documented errors, must accept only a
// header holding the right HMAC, and must accept what Sign makes.
func FuzzVerify(f *testing.F) {
	const secret = "fuzz-secret"
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"event":"alert"}`)
	f.Add(Sign(secret, now, body), body)
	f.Add("t=1700000000,v1=00", body)
	f.Add("t=1700000000,v1="+strings.Repeat("ab", 32)+",v0=x", []byte{})
	f.Add("", []byte("x"))
	f.Add("t=,v1=", []byte(nil))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := Verify(secret, header, body, now, time.Minute)
		if err != nil {
			if !errors.Is(err, ErrNoSignature) && !errors.Is(err, ErrMalformed) &&
				!errors.Is(err, ErrStale) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify(%q) = %v: not a documented error", header, err)
			}
		} else {
			// Success needs the real HMAC for the header's timestamp.
			ts := ""
			for part := range strings.SplitSeq(header, ",") {
				if k, v, _ := strings.Cut(strings.TrimSpace(part), "="); k == "t" {
					ts = v
				}
			}
			if want := "v1=" + hex.EncodeToString(mac(secret, ts, body)); !strings.Contains(strings.ToLower(header), want) {
				t.Fatalf("Verify accepted %q for body %q without the right HMAC", header, body)
			}
		}

		// What Sign makes verifies, for this body only and this secret only.
		at := now.Add(-30 * time.Second)
		sig := Sign(secret, at, body)
		if err := Verify(secret, sig, body, now, time.Minute); err != nil {
			t.Fatalf("Verify(Sign(body)) = %v", err)
		}
		if err := Verify(secret, sig, append(append([]byte(nil), body...), 'x'), now, time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify of a longer body = %v, want ErrBadSignature", err)
		}
		if err := Verify("other", sig, body, now, time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify with another secret = %v, want ErrBadSignature", err)
		}
		// Extra unknown parts do not break it (unless the header gets too long).
		if len(header) < 1000 && !strings.ContainsAny(header, ",=") {
			if err := Verify(secret, sig+",x="+strings.TrimSpace(header), body, now, time.Minute); err != nil {
				t.Fatalf("Verify with an extra part: %v", err)
			}
		}
	})
}
