package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/store"
	"github.com/vantagehq/vantage/tag"
	"github.com/vantagehq/vantage/triage"
)

// triageRow is one source of the log with the sensors' answer.
type triageRow struct {
	*triage.Source
	Verdict   string   `json:"verdict"` // targeted?, malicious, noise, benign
	Attention int      `json:"attention"`
	Actor     string   `json:"actor,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	Why       string   `json:"why"`
}

func newTriageCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "triage [--server URL] FILE...",
		Short: "Is each address in my logs Internet-wide noise, a known scanner, malicious, or aimed at me?",
		Long: `Triage reads what your edge logged (nginx or Apache access logs, iptables or
nftables LOG lines, sshd auth logs, or plain lists of addresses or CSV; '-' is
standard input), finds every source address, and asks the server what its
sensors saw of each:

  not seen      no sensor saw it: it may be aimed at you. Look closer.
  malicious     seen attacking the sensors (which tags say how)
  noise         seen scanning everyone, intent unknown
  benign        a known, benign scanner (who, and where to opt out)

The table lists what needs attention first.`,
		Example: `  vantage triage /var/log/nginx/access.log
  sudo journalctl -u ssh --since today | vantage triage -
  vantage triage --json firewall.log | jq '.[] | select(.verdict == "not seen")'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var all []*triage.Source
			seen := map[string]*triage.Source{}
			for _, name := range args {
				var r io.Reader = cmd.InOrStdin()
				if name != "-" {
					fh, err := os.Open(name)
					if err != nil {
						return usageError{err}
					}
					defer fh.Close()
					r = fh
				}
				srcs, st, err := triage.Read(r)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if !f.json {
					fmt.Fprintf(cmd.ErrOrStderr(), "vantage: %s: %d lines, %d sources, %d lines not understood\n", name, st.Lines, len(srcs), st.Unreadable+st.TooLong)
				}
				for _, s := range srcs {
					if old := seen[s.Addr.String()]; old != nil {
						old.Hits += s.Hits
						continue
					}
					seen[s.Addr.String()] = s
					all = append(all, s)
				}
			}
			rows, err := triageRows(cmd, f, all)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), rows)
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
	return cmd
}

func triageRows(cmd *cobra.Command, f clientFlags, srcs []*triage.Source) ([]triageRow, error) {
	c := f.client()
	rows := make([]triageRow, 0, len(srcs))
	actors := tag.Default().Actors()
	for start := 0; start < len(srcs); start += 10000 {
		chunk := srcs[start:min(start+10000, len(srcs))]
		ips := make([]string, len(chunk))
		for i, s := range chunk {
			ips[i] = s.Addr.String()
		}
		sums, err := c.Bulk(cmd.Context(), ips)
		if err != nil {
			return nil, apiErr(err)
		}
		by := map[string]store.Summary{}
		for _, s := range sums {
			by[s.IP.String()] = s
		}
		for _, s := range chunk {
			sum := by[s.Addr.String()]
			r := triageRow{Source: s, Actor: sum.Actor, Tags: sum.Tags}
			switch {
			case !sum.Noise:
				r.Verdict, r.Attention, r.Why = "not seen", 0, "no sensor saw it scanning: it may be aimed at you; look closer"
			case sum.Classification == "malicious":
				r.Verdict, r.Attention, r.Why = "malicious", 1, "attacks the sensors: "+strings.Join(sum.Tags, ", ")
			case sum.Classification == "benign":
				r.Verdict, r.Attention = "benign", 3
				r.Why = "a known scanner"
				if sum.Actor != "" {
					r.Why = sum.Actor + ", a known scanner"
					if a, ok := actors.Actor(sum.Actor); ok && len(a.References) > 0 {
						r.Why += " (opt out: " + a.References[0] + ")"
					}
				}
			default:
				r.Verdict, r.Attention, r.Why = "noise", 2, "scans everyone, intent unknown"
				if len(sum.Tags) > 0 {
					r.Why += ": " + strings.Join(sum.Tags, ", ")
				}
			}
			rows = append(rows, r)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Attention != rows[j].Attention {
			return rows[i].Attention < rows[j].Attention
		}
		return rows[i].Hits > rows[j].Hits
	})
	return rows, nil
}
