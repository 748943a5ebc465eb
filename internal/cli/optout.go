package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/optout"
)

func newOptOutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "optout",
		Short: "Manage opt-out requests and the exclusion list (needs an admin key)",
		Long: `Opt-out requests ask that ranges be left out of every scan. People send them
through the server's /optout page or POST /api/v1/optout; a request is approved
when it came from inside every range, when a token it was given is published on
an address in the range, or when an operator approves it here. Ranges wider
than /16 (IPv4) or /32 (IPv6) always need an operator.

An approved request becomes a new version of the exclusion list, which every
scanner connected to the server applies before its next packet. Every request
and decision is in the audit log ('vantage optout audit').`,
		Example: `  vantage optout add --approve 198.51.100.0/24 --contact noc@example.net --reason "asked by phone"
  vantage optout list
  vantage optout approve 3f2a...   # a pending request
  vantage optout remove 3f2a... --note "the holder withdrew it"`,
	}
	var f clientFlags
	var contact, reason, note string
	var approve bool
	add := &cobra.Command{
		Use: "add CIDR...", Short: "Record an operator's request (--approve: approve it in the same step)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.client().AddOptOut(cmd.Context(), args, contact, reason, approve)
			if err != nil {
				return apiErr(err)
			}
			return printRequests(cmd.OutOrStdout(), f.json, []optout.Request{*r})
		},
	}
	add.Flags().BoolVar(&approve, "approve", false, "approve at once: the ranges go onto the exclusion list now")
	add.Flags().StringVar(&contact, "contact", "operator", "who asked (e-mail or URL)")
	add.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	list := &cobra.Command{
		Use: "list", Short: "List requests, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs, err := f.client().OptOuts(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			return printRequests(cmd.OutOrStdout(), f.json, rs)
		},
	}
	decide := func(action, short string) *cobra.Command {
		c := &cobra.Command{
			Use: action + " ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				r, err := f.client().DecideOptOut(cmd.Context(), args[0], action, note)
				if err != nil {
					return apiErr(err)
				}
				return printRequests(cmd.OutOrStdout(), f.json, []optout.Request{*r})
			},
		}
		c.Flags().StringVar(&note, "note", "", "why, for the audit log")
		return c
	}
	var limit int
	audit := &cobra.Command{
		Use: "audit", Short: "Show the audit log: every request, decision and list version", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			evs, err := f.client().Audit(cmd.Context(), limit)
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), evs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tACTION\tBY\tREQUEST\tRANGES\tLIST\tDETAIL")
			for _, e := range evs {
				v := ""
				if e.Version > 0 {
					v = fmt.Sprintf("v%d", e.Version)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format(time.DateTime), e.Action, e.By, short(e.Request),
					prefixes(e.CIDRs), v, e.Detail)
			}
			return tw.Flush()
		},
	}
	audit.Flags().IntVarP(&limit, "limit", "n", 100, "the last N events")
	exclusions := &cobra.Command{
		Use: "exclusions", Short: "Show the exclusion list scanners apply now", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := f.client().Exclusions(cmd.Context(), 0, 0)
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), l)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "version %d (%s), %d ranges\n", l.Version, l.Updated.Format(time.RFC3339), len(l.Entries))
			for _, e := range l.Entries {
				fmt.Fprintf(cmd.OutOrStdout(), "%-20s %s\n", e.Prefix, e.Reason)
			}
			return nil
		},
	}
	for _, c := range []*cobra.Command{add, list, decide("approve", "Approve a pending request"), decide("reject", "Reject a pending request"),
		decide("remove", "Take an approved request off the exclusion list"), audit, exclusions} {
		f.add(c)
		cmd.AddCommand(c)
	}
	return cmd
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func prefixes[P fmt.Stringer](ps []P) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func printRequests(w io.Writer, asJSON bool, rs []optout.Request) error {
	if asJSON {
		return printJSON(w, rs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tRANGES\tCONTACT\tMETHOD\tLIST\tCREATED\tNOTE")
	for _, r := range rs {
		v := ""
		if r.Version > 0 {
			v = fmt.Sprintf("v%d", r.Version)
		}
		note := r.Note
		if r.State == optout.Pending {
			note = r.Needs
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, prefixes(r.CIDRs), r.Contact, r.Method, v,
			r.Created.Format(time.DateTime), note)
	}
	return tw.Flush()
}
