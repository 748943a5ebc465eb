package cli

import (
	"bytes"
	"context"
	"io"
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

// TestInProcessKeepsGCSettings: a grab run inside a server (its scan
// worker) must not change the server's garbage collector settings, which
// a grab run as its own process tunes for itself.
func TestInProcessKeepsGCSettings(t *testing.T) {
	t.Setenv("GOGC", "") // set in the environment, they would win
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	var out bytes.Buffer
	if err := inProcess(context.Background(), &out, "grab", "--timeout", "1s"); err != nil {
		t.Fatalf("grab with no targets: %v\n%s", err, out.String())
	}
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GC percent %d after an in-process grab, want the process's 100", p)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("memory limit %d after an in-process grab", l)
	}
	// run as the process, the same command tunes them
	root := newRoot(strings.NewReader(""), io.Discard, &out)
	root.SetArgs([]string{"grab", "--timeout", "1s"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := debug.SetGCPercent(100); p != 400 {
		t.Errorf("GC percent %d after vantage grab, want 400", p)
	}
}
