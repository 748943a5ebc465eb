package memtrim

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func rssFile(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("skipping: no /proc/self/status: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	t.Skip("skipping: no RssFile in /proc/self/status")
	return 0
}

// TestExecutable: the binary's read-only pages leave the process's
// resident set, and the program goes on running (the pages it needs come
// back on use).
func TestExecutable(t *testing.T) {
	before := rssFile(t)
	n, err := Executable()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("advised %d MiB of mappings; file-backed resident %d -> %d KiB", n>>20, before>>10, after>>10)
	if n == 0 {
		t.Fatal("no mapping of the executable found")
	}
	if after >= before {
		t.Errorf("file-backed resident memory did not shrink: %d -> %d", before, after)
	}
	// still alive: code and constants fault back in
	if s := strconv.Itoa(12345); s != "12345" {
		t.Fatal(s)
	}
}

// TestKeepsWrittenMappings: a mapping with private written pages (the
// loader's relocations) is never a candidate.
func TestKeepsWrittenMappings(t *testing.T) {
	maps, err := readSmaps()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Readlink("/proc/self/exe")
	var clean, written int
	for _, m := range maps {
		if m.path != exe {
			continue
		}
		if m.anonymous == 0 {
			clean++
		} else {
			written++
		}
		if m.anonymous < 0 {
			t.Errorf("mapping %x-%x has no Anonymous line", m.start, m.end)
		}
	}
	t.Logf("the executable's mappings: %d clean, %d with written pages", clean, written)
	if clean == 0 {
		t.Error("no clean mapping of the executable")
	}
}
