package cli

import (
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/monitor"
)

func newMonitorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Watch what you own: rescans, alerts on changes, vulnerable versions and your addresses seen scanning",
		Long: `A watchlist names what your team owns: CIDRs, ASNs, organisation names,
certificate subjects and domains found in certificates. The server rescans it
on a schedule through its scanner workers ('vantage scanner'), compares every
host with the previous rescan, and raises alerts with the evidence:

  new_service      a port or service exposed that was not before (a firewall rule that failed?)
  service_gone     no longer answers, ` + "`gone_after`" + ` rescans in a row (default 2)
  version_changed  same product, another version
  service_changed  another protocol or product on the same port
  vulnerable       the version has known CVEs (with the NVD and KEV feeds loaded)
  end_of_life      the version's release cycle is past its vendor's end of life
  cert_expiring    the certificate expires within 30 days, or has expired
  cert_changed     another certificate than at the previous rescan
  seen_scanning    one of your addresses was seen by the sensors scanning others: compromised?

The first rescan is the baseline: it raises only standing problems
(vulnerable, end of life, certificates), not changes. An alert is raised once;
when the same finding comes back it is counted, not sent again. Alerts go to
the watchlist's webhooks (JSON, signed: X-Vantage-Signature), its e-mail
addresses (through the server's monitor.smtp_* settings) and the server's log.

These commands need a key with the monitor scope (or admin).`,
		Example: `  vantage monitor add corp --cidr 198.51.100.0/24 --domain example.com --every 6h \
      --webhook https://hooks.example.com/vantage --webhook-secret s3cret --email soc@example.com
  vantage monitor scan corp
  vantage monitor alerts --state open
  vantage monitor ack 4f0c2a9e
  vantage monitor mute 198.51.100.7:8080 --for 7d --reason "lab box, known"`,
	}
	var f clientFlags
	var w monitor.Watchlist
	var every time.Duration
	var hooks, secrets []string
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Create or replace a watchlist",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w.Name = args[0]
			w.Every = monitor.Duration(every)
			if len(secrets) > len(hooks) {
				return usagef("%d --webhook-secret for %d --webhook", len(secrets), len(hooks))
			}
			for i, h := range hooks {
				wh := monitor.Webhook{URL: h}
				if i < len(secrets) {
					wh.Secret = secrets[i]
				}
				w.Webhooks = append(w.Webhooks, wh)
			}
			v, err := f.client().PutWatchlist(cmd.Context(), w)
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), v)
			}
			return printWatchlists(cmd.OutOrStdout(), []monitor.View{*v})
		},
	}
	fl := add.Flags()
	fl.StringSliceVar(&w.CIDRs, "cidr", nil, "a `CIDR` or address you own; repeatable or comma-separated")
	var asns []string
	fl.StringSliceVar(&asns, "asn", nil, "an AS number you own (64500 or AS64500)")
	fl.StringArrayVar(&w.Orgs, "org", nil, "an organisation name as the enrichment gives it; repeatable")
	fl.StringArrayVar(&w.Subjects, "cert-subject", nil, "text in the TLS subject of your certificates; repeatable")
	fl.StringSliceVar(&w.Domains, "domain", nil, "a domain of yours: matches it and its subdomains in certificates")
	fl.StringVarP(&w.Ports, "ports", "p", "", "ports to rescan (default: about 60 commonly exposed ones, see --help of the API)")
	fl.DurationVar(&every, "every", 24*time.Hour, "time between rescans")
	fl.IntVarP(&w.Rate, "rate", "r", 0, "probes per second of the rescans (default 1000)")
	fl.StringArrayVar(&hooks, "webhook", nil, "POST alerts to this `URL`; repeatable")
	fl.StringArrayVar(&secrets, "webhook-secret", nil, "sign the matching --webhook's requests with this shared secret")
	fl.StringSliceVar(&w.Emails, "email", nil, "send alerts to this address (the server's SMTP settings)")
	add.PreRunE = func(cmd *cobra.Command, _ []string) error {
		for _, a := range asns {
			n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(a), "AS"), 10, 32)
			if err != nil {
				return usagef("--asn %q: want a number such as 64500 or AS64500", a)
			}
			w.ASNs = append(w.ASNs, uint32(n))
		}
		return nil
	}

	list := &cobra.Command{
		Use: "list", Short: "List watchlists and their last rescans", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vs, err := f.client().Watchlists(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), vs)
			}
			return printWatchlists(cmd.OutOrStdout(), vs)
		},
	}
	remove := &cobra.Command{
		Use: "remove NAME", Short: "Remove a watchlist (its alerts stay)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.client().DeleteWatchlist(cmd.Context(), args[0]); err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed watchlist %s\n", args[0])
			return nil
		},
	}
	var wait time.Duration
	scan := &cobra.Command{
		Use: "scan NAME", Short: "Rescan a watchlist now (a scanner worker must be running)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := f.client()
			st, err := c.ScanWatchlist(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "vantage: job %s queued: %d targets, ports %s\n", st.ID, len(st.Targets), st.Ports)
			deadline := time.Now().Add(wait)
			for wait > 0 && st.State != "done" && st.State != "failed" && time.Now().Before(deadline) {
				select {
				case <-cmd.Context().Done():
					return errInterrupted
				case <-time.After(time.Second):
				}
				if st, err = c.Job(cmd.Context(), st.ID); err != nil {
					return apiErr(err)
				}
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %s: %s", st.ID, st.State)
			if st.State == "done" {
				fmt.Fprintf(cmd.OutOrStdout(), ", %d services published by %s", st.Published, st.Worker)
			}
			if st.Error != "" {
				fmt.Fprintf(cmd.OutOrStdout(), ": %s", st.Error)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	scan.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for the job to finish")

	var q struct{ watchlist, state, kind, ip string }
	var muted bool
	var limit int
	alerts := &cobra.Command{
		Use: "alerts", Short: "List alerts, most urgent first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := url.Values{"limit": {strconv.Itoa(limit)}}
			for k, s := range map[string]string{"watchlist": q.watchlist, "state": q.state, "kind": q.kind, "ip": q.ip} {
				if s != "" {
					v.Set(k, s)
				}
			}
			if muted {
				v.Set("muted", "true")
			}
			total, as, err := f.client().Alerts(cmd.Context(), v)
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), as)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tSEVERITY\tKIND\tWHERE\tSEEN\tCOUNT\tTITLE")
			for _, a := range as {
				st := a.State
				if a.Muted {
					st += ",muted"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", a.ID, st, a.Severity, a.Kind, a.Where(),
					a.LastSeen.Format(time.DateTime), a.Count, a.Title)
			}
			tw.Flush()
			if total > len(as) {
				fmt.Fprintf(cmd.ErrOrStderr(), "vantage: %d of %d alerts shown (--limit)\n", len(as), total)
			}
			return nil
		},
	}
	af := alerts.Flags()
	af.StringVar(&q.watchlist, "watchlist", "", "only this watchlist's")
	af.StringVar(&q.state, "state", "", "open or acked")
	af.StringVar(&q.kind, "kind", "", "only this kind: "+strings.Join(monitor.Kinds, ", "))
	af.StringVar(&q.ip, "ip", "", "only this address's")
	af.BoolVar(&muted, "muted", false, "include alerts raised under a mute")
	af.IntVarP(&limit, "limit", "n", 100, "at most this many")

	ack := &cobra.Command{
		Use: "ack ID...", Short: "Acknowledge alerts", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, id := range args {
				a, err := f.client().AckAlert(cmd.Context(), id)
				if err != nil {
					return apiErr(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s acknowledged: %s\n", a.ID, a.Title)
			}
			return nil
		},
	}
	var muteFor, reason, muteList string
	mute := &cobra.Command{
		Use: "mute IP[:PORT]", Short: "Stop sending alerts for a host, or one of its ports", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := map[string]any{"reason": reason}
			if ap, err := netip.ParseAddrPort(args[0]); err == nil {
				req["ip"], req["port"] = ap.Addr().String(), ap.Port()
			} else if a, err := netip.ParseAddr(args[0]); err == nil {
				req["ip"] = a.String()
			} else {
				return usagef("%q: want an address, or address:port ([v6]:port)", args[0])
			}
			if muteFor != "" {
				req["for"] = muteFor
			}
			if muteList != "" {
				req["watchlist"] = muteList
			}
			m, err := f.client().Mute(cmd.Context(), req)
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), m)
			}
			until := "until removed"
			if !m.Until.IsZero() {
				until = "until " + m.Until.Format(time.DateTime)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "mute %s: %s %s\n", m.ID, args[0], until)
			return nil
		},
	}
	mute.Flags().StringVar(&muteFor, "for", "", "for this long (12h, 7d); default until removed")
	mute.Flags().StringVar(&reason, "reason", "", "why, for the team")
	mute.Flags().StringVar(&muteList, "watchlist", "", "only in this watchlist (default: every watchlist)")
	mutes := &cobra.Command{
		Use: "mutes", Short: "List mutes in force", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := f.client().Mutes(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), ms)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tWATCHLIST\tIP\tPORT\tUNTIL\tBY\tREASON")
			for _, m := range ms {
				until := "-"
				if !m.Until.IsZero() {
					until = m.Until.Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.ID, orAll(m.Watchlist), m.IP, m.Port, until, m.By, m.Reason)
			}
			return tw.Flush()
		},
	}
	unmute := &cobra.Command{
		Use: "unmute ID", Short: "Remove a mute", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.client().Unmute(cmd.Context(), args[0]); err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed mute %s\n", args[0])
			return nil
		},
	}
	for _, c := range []*cobra.Command{add, list, remove, scan, alerts, ack, mute, mutes, unmute} {
		f.add(c)
		cmd.AddCommand(c)
	}
	return cmd
}

func orAll(s string) string {
	if s == "" {
		return "(all)"
	}
	return s
}

func printWatchlists(w io.Writer, vs []monitor.View) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tWATCHES\tEVERY\tLAST RESCAN\tHOSTS\tSERVICES\tPENDING\tNOTIFIES")
	for _, v := range vs {
		var what []string
		if len(v.CIDRs) > 0 {
			what = append(what, strings.Join(v.CIDRs, ","))
		}
		for _, a := range v.ASNs {
			what = append(what, fmt.Sprintf("AS%d", a))
		}
		for _, o := range v.Orgs {
			what = append(what, "org:"+o)
		}
		for _, s := range v.Subjects {
			what = append(what, "subject:"+s)
		}
		for _, d := range v.Domains {
			what = append(what, "domain:"+d)
		}
		last := "never"
		if !v.State.LastEval.IsZero() {
			last = v.State.LastEval.Format(time.DateTime)
		}
		var to []string
		for _, h := range v.Webhooks {
			to = append(to, h.URL)
		}
		to = append(to, v.Emails...)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", v.Name, strings.Join(what, " "), time.Duration(v.Every), last,
			v.State.Hosts, v.State.Services, orDash(v.State.PendingJob), orDash(strings.Join(to, ",")))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
