package cputime

import (
	"testing"
	"time"
)

// TestSelfGrows: burning CPU shows in Self.
func TestSelfGrows(t *testing.T) {
	before := Self()
	x := uint64(1)
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	if after := Self(); after <= before {
		t.Fatalf("CPU time %v then %v after 50 ms of work (%d)", before, after, x)
	}
}
