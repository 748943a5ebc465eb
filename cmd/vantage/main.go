// Command vantage scans the Internet, listens to who scans it, and answers
// questions about both. See `vantage help`.
package main

import (
	"os"
	"runtime"

	"github.com/vantagehq/vantage/internal/cli"
)

// The main goroutine keeps the main thread, so that no other goroutine
// runs there: `vantage up --demo` moves a goroutine's thread into a lab
// namespace for good (internal/netns), and the main thread must never be
// that one.
func init() { runtime.LockOSThread() }

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
