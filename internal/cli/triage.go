package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/store/duckdb"
	"github.com/vantagehq/vantage/tag"
	"github.com/vantagehq/vantage/triage"
)

func newTriageCmd() *cobra.Command {
	var f clientFlags
	var data string
	cmd := &cobra.Command{
		Use:   "triage [--server URL | --data DIR] FILE...",
		Short: "Is each address in my logs Internet-wide noise, a known scanner, malicious, or aimed at me?",
		Long: `Triage reads what your edge logged (nginx or Apache access logs, iptables or
nftables LOG lines, sshd auth logs, or plain lists of addresses or CSV; '-' is
standard input), finds every source address, and asks what the sensors saw of
each:

  not seen      no sensor saw it: it may be aimed at you. Look closer.
  malicious     seen attacking the sensors (which tags say how)
  rare          seen by only one sensor at one of its addresses: not clearly
                Internet-wide. Look closer.
  noise         seen scanning widely (several sensors or sensor addresses),
                intent unknown
  benign        a known, benign scanner (who, and where to opt out)

The table lists what needs attention first; --json prints the shape of the
API's POST /api/v1/triage ({"lines", "malformed", "malformed_examples",
"formats", "sources"}). Lines it cannot read are counted, never fatal.

The logs are read here, as a stream: memory grows with the distinct sources,
not with the size of the logs. The sources are asked about 10,000 at a time,
either of a server (--server, the default) or, with --data DIR, of the store
in a server's data directory, opened read only: for a server that is not
running (DuckDB lets one process hold the store; while the server runs, use
--server). --server and --data exclude each other.`,
		Example: `  vantage triage /var/log/nginx/access.log
  sudo journalctl -u ssh --since today | vantage triage -
  vantage triage --json firewall.log | jq '.sources[] | select(.verdict == "not seen")'
  vantage triage --data /var/lib/vantage auth.log   # no server running`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lookup, done, err := triageLookup(cmd, f, data) // before reading: a wrong --data fails at once
			if err != nil {
				return err
			}
			defer done()
			tl := triage.NewTally()
			for _, name := range args {
				start := time.Now()
				st, err := readLog(cmd, tl, name)
				if err != nil {
					return err
				}
				secs := time.Since(start).Seconds()
				fmt.Fprintf(cmd.ErrOrStderr(), "vantage: %s: %d lines, %d sources, %d lines not understood (%.1f s, %.0f lines/s)\n",
					name, st.Lines, st.Addrs, st.Malformed(), secs, float64(st.Lines)/max(secs, 1e-9))
			}
			rows, err := triage.Triage(cmd.Context(), tl.Sources(), lookup, tag.DefaultActors())
			if err != nil {
				return err
			}
			if f.json {
				return tl.Report(rows).WriteJSON(cmd.OutOrStdout())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IP\tHITS\tLOG\tVERDICT\tWHY")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Addr, r.Hits, strings.Join(r.Kinds, ","), r.Verdict, r.Why)
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&data, "data", "", "ask the store in the server data directory `DIR` (read only: the server must not be running) instead of a server")
	cmd.MarkFlagsMutuallyExclusive("server", "data")
	return cmd
}

// readLog streams one log into the tally.
func readLog(cmd *cobra.Command, tl *triage.Tally, name string) (triage.Stats, error) {
	var r io.Reader = cmd.InOrStdin()
	if name != "-" {
		fh, err := os.Open(name)
		if err != nil {
			return triage.Stats{}, usageError{err}
		}
		defer fh.Close()
		r = fh
	}
	st, err := tl.Read(name, r)
	if err != nil {
		return st, fmt.Errorf("%s: %w", name, err)
	}
	return st, nil
}

// triageLookup asks the store of a data directory (read only) or a
// server's bulk endpoint; done releases what it opened.
func triageLookup(cmd *cobra.Command, f clientFlags, data string) (triage.Lookup, func(), error) {
	if data == "" {
		c := f.client()
		return func(ctx context.Context, ips []netip.Addr) ([]store.Summary, error) {
			s := make([]string, len(ips))
			for i, ip := range ips {
				s[i] = ip.String()
			}
			sums, err := c.Bulk(ctx, s)
			if err != nil {
				return nil, apiErr(err)
			}
			return sums, nil
		}, func() {}, nil
	}
	dir := filepath.Join(data, "store")
	st, err := duckdb.Open(cmd.Context(), dir, duckdb.Options{ReadOnly: true})
	switch {
	case errors.Is(err, duckdb.ErrInUse):
		return nil, nil, usagef("%s: the data directory is in use by a running server: use --server URL", data)
	case errors.Is(err, os.ErrNotExist):
		return nil, nil, usagef("%s holds no store (%s): is it a vantage server's data directory?", data, dir)
	case err != nil:
		return nil, nil, err
	}
	return st.Summaries, func() { st.Close() }, nil
}
