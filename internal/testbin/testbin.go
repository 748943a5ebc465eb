// Package testbin builds the vantage binary once for end-to-end tests, so
// that they run what users run.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

var (
	once sync.Once
	path string
	dir  string
	err  error
)

// Build compiles cmd/vantage (with the tags the store needs) into a
// temporary directory readable by every user, and returns its path.
func Build() (string, error) {
	once.Do(func() {
		if dir, err = os.MkdirTemp("", "vantage-bin-"); err != nil {
			return
		}
		os.Chmod(dir, 0o755) // tests may run the binary as nobody
		path = filepath.Join(dir, "vantage")
		root, rerr := repoRoot()
		if rerr != nil {
			err = rerr
			return
		}
		cmd := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", path, "./cmd/vantage")
		cmd.Dir = root
		if out, berr := cmd.CombinedOutput(); berr != nil {
			err = fmt.Errorf("build vantage: %v\n%s", berr, out)
		}
	})
	return path, err
}

// Clean removes the binary; call it from TestMain after the tests.
func Clean() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("go.mod not found")
		}
		d = filepath.Dir(d)
	}
}
