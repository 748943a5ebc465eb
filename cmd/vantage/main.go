// Command vantage scans the Internet, listens to who scans it, and answers
// questions about both. See `vantage help`.
package main

import (
	"os"

	"github.com/vantagehq/vantage/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
