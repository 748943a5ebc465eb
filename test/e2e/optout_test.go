package e2e_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/vantagehq/vantage/internal/testbin"
)

// TestOptOutCLI: an operator adds and approves a range in one step, adds
// another for later, approves it, removes the first; the exclusion list
// and the audit log say so; a command without the admin key is refused.
func TestOptOutCLI(t *testing.T) {
	srv := testbin.StartServer(t, testbin.ServerOptions{})
	bin, err := testbin.Build()
	if err != nil {
		t.Fatal(err)
	}
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"optout"}, append(args, "--server", srv.URL)...)...).CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("vantage optout %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	key := []string{"--key", srv.Key}
	out := run(true, append([]string{"add", "--approve", "198.51.100.0/24", "--contact", "noc@example.net", "--reason", "asked by phone"}, key...)...)
	if !strings.Contains(out, "approved") || !strings.Contains(out, "v1") {
		t.Errorf("add --approve:\n%s", out)
	}
	out = run(true, append([]string{"add", "203.0.113.0/25", "--json"}, key...)...)
	id := between(out, `"id": "`, `"`)
	if id == "" || !strings.Contains(out, `"state": "pending"`) {
		t.Fatalf("add:\n%s", out)
	}
	run(true, append([]string{"approve", id, "--note", "checked"}, key...)...)
	var reqs []struct {
		ID    string   `json:"id"`
		CIDRs []string `json:"cidrs"`
	}
	if err := json.Unmarshal([]byte(run(true, append([]string{"list", "--json"}, key...)...)), &reqs); err != nil || len(reqs) != 2 {
		t.Fatalf("list --json: %v, %d requests", err, len(reqs))
	}
	first := reqs[1].ID // newest first
	if reqs[1].CIDRs[0] != "198.51.100.0/24" {
		t.Fatalf("list order: %+v", reqs)
	}
	run(true, append([]string{"remove", first}, key...)...)
	ex := run(true, append([]string{"exclusions"}, key...)...)
	if !strings.HasPrefix(ex, "version 3") || !strings.Contains(ex, "203.0.113.0/25") || strings.Contains(ex, "198.51.100.0/24") {
		t.Errorf("exclusions after add, approve, remove:\n%s", ex)
	}
	audit := run(true, append([]string{"audit"}, key...)...)
	for _, want := range []string{"request", "approve", "remove", "v3"} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit log lacks %q:\n%s", want, audit)
		}
	}
	if out := run(false, "list"); !strings.Contains(out, "admin") {
		t.Errorf("list without a key:\n%s", out)
	}
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	j := strings.Index(s, b)
	if j < 0 {
		return ""
	}
	return s[:j]
}
