// Package cli is the vantage command line: one cobra command per role or
// client verb, each a thin layer that parses flags into the configuration of
// the package that does the work.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/internal/version"
)

// Exit codes, documented in `vantage help exit-codes`.
const (
	ExitOK          = 0
	ExitFailure     = 1   // the work failed (network, permissions, I/O)
	ExitUsage       = 2   // bad flags, targets, ports or files
	ExitInterrupted = 130 // stopped by SIGINT or SIGTERM; results so far were written
)

// usageError marks errors caused by what the operator typed.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// errInterrupted is returned by commands that stopped on a signal.
var errInterrupted = errors.New("interrupted")

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	return run(args, os.Stdin, os.Stdout, os.Stderr)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first Ctrl-C asks for a clean stop; once it has arrived, the
	// default handling returns, so a second one ends the process at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errInterrupted):
		return ExitInterrupted
	}
	fmt.Fprintf(stderr, "vantage: %v\n", err)
	var u usageError
	if errors.As(err, &u) || isFlagError(err) {
		return ExitUsage
	}
	return ExitFailure
}

// isFlagError recognises cobra's and pflag's errors about the command line.
func isFlagError(err error) bool {
	msg := err.Error()
	for _, s := range []string{"unknown flag", "unknown shorthand", "unknown command", "invalid argument", "flag needs an argument", "accepts ", "requires "} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "vantage",
		Short: "See the Internet the way scanners do, and see yourself through it",
		Long: `Vantage finds what answers on the Internet (a stateless SYN scanner in the
style of ZMap) and what it is (grab: protocol, product, version, CPE),
listens to who scans it (sensor: every packet to dark addresses, tagged by
tool, activity and intent), and answers questions about both (server: a
platform with search and an API).

Start with a scan of your own addresses, or of the lab in ../shared/netlab:

  sudo vantage scan -p 22,80,443 --grab 203.0.113.0/24 --allow-reserved 203.0.113.0/24

Reserved address space (private, documentation, benchmarking ...) is never
scanned unless you name it with --allow-reserved. See 'vantage help targets'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Get().String(),
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.PersistentFlags().String("log-level", "warn", "log level: debug, info, warn or error (logs go to stderr as text)")
	// for benchmarks: where the CPU of a long run goes
	root.PersistentFlags().String("cpuprofile", "", "write a CPU profile of the command to `FILE`")
	root.PersistentFlags().MarkHidden("cpuprofile")
	var profile *os.File
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		name, _ := cmd.Flags().GetString("cpuprofile")
		if name == "" {
			return nil
		}
		f, err := os.Create(name)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		profile = f
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRun = func(*cobra.Command, []string) {
		if profile != nil {
			pprof.StopCPUProfile()
			profile.Close()
		}
	}
	root.AddCommand(newScanCmd(), newGrabCmd(), newSensorCmd(), newServerCmd(), newUpCmd(), newLookupCmd(), newSearchCmd(), newCountCmd(), newKeyCmd(), newOptOutCmd(), newTriageCmd(), newScannerCmd(), newJobsCmd(), newMonitorCmd(), newNATSCmd(), newVersionCmd())
	for _, t := range helpTopics {
		root.AddCommand(&cobra.Command{Use: t.name, Short: t.short, Long: t.long})
	}
	return root
}

// logger builds the structured logger a command writes to stderr.
func logger(cmd *cobra.Command) (*slog.Logger, error) {
	lvl, _ := cmd.Flags().GetString("log-level")
	var level slog.Level
	if err := level.UnmarshalText([]byte(lvl)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", lvl)
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})), nil
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version.Get()
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(v)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), v)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
