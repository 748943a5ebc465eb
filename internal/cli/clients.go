package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/client"
	"github.com/vantagehq/vantage/store"
)

// clientFlags are shared by the commands that ask a server.
type clientFlags struct {
	server, key string
	json        bool
}

func (f *clientFlags) add(cmd *cobra.Command) {
	def := os.Getenv("VANTAGE_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	cmd.Flags().StringVar(&f.server, "server", def, "server `URL` ($VANTAGE_SERVER)")
	cmd.Flags().StringVar(&f.key, "key", os.Getenv("VANTAGE_KEY"), "API key ($VANTAGE_KEY); reads may not need one")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the server's JSON instead of a table")
}

func (f *clientFlags) client() *client.Client { return client.New(f.server, f.key) }

// apiErr turns a server's query error into a usage error with a caret.
func apiErr(err error) error {
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status >= 400 && ce.Status < 500 {
		if ce.Caret != "" {
			return usageError{fmt.Errorf("%s\n%s", ce.Msg, ce.Caret)}
		}
		return usageError{ce}
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newLookupCmd() *cobra.Command {
	var f clientFlags
	var events int
	cmd := &cobra.Command{
		Use:   "lookup IP|CIDR",
		Short: "Show what is known about an address: services, and what it did to the sensors",
		Example: `  vantage lookup 198.18.0.7
  vantage lookup 203.0.113.0/28 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, out := f.client(), cmd.OutOrStdout()
			if strings.Contains(args[0], "/") {
				if _, err := netip.ParsePrefix(args[0]); err != nil {
					return usagef("%q is not a CIDR block", args[0])
				}
				hosts, err := c.HostRange(cmd.Context(), args[0])
				if err != nil {
					return apiErr(err)
				}
				if f.json {
					return printJSON(out, hosts)
				}
				for i, h := range hosts {
					if i > 0 {
						fmt.Fprintln(out)
					}
					printHost(out, h)
				}
				if len(hosts) == 0 {
					fmt.Fprintf(out, "nothing is known about %s\n", args[0])
				}
				return nil
			}
			if _, err := netip.ParseAddr(args[0]); err != nil {
				return usagef("%q is not an IP address", args[0])
			}
			h, err := c.Host(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(out, h)
			}
			printHost(out, h)
			if h.Profile != nil && events > 0 {
				v, err := c.Sensors(cmd.Context(), args[0], events)
				if err == nil {
					fmt.Fprintf(out, "\n%v\n", v["summary"])
					if ev, ok := v["evidence"].([]any); ok && len(ev) > 0 {
						fmt.Fprintln(out, "evidence:")
						for _, e := range ev {
							fmt.Fprintf(out, "  %v\n", e)
						}
					}
				}
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().IntVar(&events, "events", 10, "recent sensor events to summarise")
	return cmd
}

func printHost(out io.Writer, h *store.Host) {
	geo := strings.TrimSpace(fmt.Sprintf("%s AS%d %s", h.Geo.Country, h.Geo.ASN, h.Geo.Org))
	if h.Geo.ASN == 0 {
		geo = strings.TrimSpace(h.Geo.Country + " " + h.Geo.Org)
	}
	if h.Geo.Label != "" {
		geo += " [" + h.Geo.Label + "]"
	}
	fmt.Fprintf(out, "%s  %s\n", h.IP, geo)
	if len(h.Services) > 0 {
		fmt.Fprintf(out, "first seen %s, last seen %s\n", h.FirstSeen.Format(time.DateTime), h.LastSeen.Format(time.DateTime))
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PORT\tSTATE\tPROTOCOL\tPRODUCT\tVERSION\tLAST SEEN")
		for _, s := range h.Services {
			fmt.Fprintf(tw, "%d/%s\t%s\t%s\t%s\t%s\t%s\n", s.Port, s.Transport, s.State, dash(s.Protocol), dash(s.Product),
				dash(s.Version), s.LastSeen.Format(time.DateTime))
		}
		tw.Flush()
	}
	if len(h.Vulns) > 0 {
		fmt.Fprintf(out, "vulns: %s\n", strings.Join(h.Vulns, ", "))
	}
	if p := h.Profile; p != nil {
		fmt.Fprintf(out, "sensors: %d events from %s to %s, %s", p.Events, p.FirstSeen.Format(time.DateTime),
			p.LastSeen.Format(time.DateTime), p.Classification)
		if p.Actor != "" {
			fmt.Fprintf(out, " (%s)", p.Actor)
		}
		if len(p.Tags) > 0 {
			fmt.Fprintf(out, "; tags %s", strings.Join(p.Tags, ", "))
		}
		fmt.Fprintln(out)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newSearchCmd() *cobra.Command {
	var f clientFlags
	var o client.SearchOptions
	var events bool
	var format string
	cmd := &cobra.Command{
		Use:   "search QUERY",
		Short: "Search services (or sensor events) with the query language",
		Long: `Search finds current services matching a query (see 'vantage help query'), or
sensor events with --events. The table shows one page; --cursor gives the
next, and --format jsonl or csv exports every match.`,
		Example: `  vantage search 'port:22 product:openssh version:<8.0' --facets country,org
  vantage search 'http.server:nginx*' --format csv > nginx.csv
  vantage search --events 'tag:RDP_SCANNER last_seen:1h'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, out, q := f.client(), cmd.OutOrStdout(), args[0]
			if format == "jsonl" || format == "csv" {
				if events {
					return usagef("--format %s exports services only", format)
				}
				return apiErr(c.Export(cmd.Context(), q, format, out))
			}
			if format != "table" {
				return usagef("--format %q: want table, jsonl or csv", format)
			}
			if events {
				r, err := c.SearchEvents(cmd.Context(), q, o)
				if err != nil {
					return apiErr(err)
				}
				if f.json {
					return printJSON(out, r)
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tSOURCE\tCOUNTRY\tDST PORT\tTRANSPORT\tTAGS\tCLASSIFICATION")
				for _, e := range r.Events {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Time.Format(time.DateTime), e.Src, dash(e.SrcGeo.Country),
						e.DstPort, e.Transport, dash(strings.Join(e.Tags, ",")), dash(e.Classification))
				}
				tw.Flush()
				printFooter(out, len(r.Events), r.Total, r.Next, r.Facets)
				return nil
			}
			r, err := c.Search(cmd.Context(), q, o)
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(out, r)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IP\tPORT\tPROTOCOL\tPRODUCT\tVERSION\tCOUNTRY\tORG\tLAST SEEN")
			for _, s := range r.Services {
				fmt.Fprintf(tw, "%s\t%d/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.IP, s.Port, s.Transport, dash(s.Protocol), dash(s.Product),
					dash(s.Version), dash(s.Geo.Country), dash(s.Geo.Org), s.LastSeen.Format(time.DateTime))
			}
			tw.Flush()
			printFooter(out, len(r.Services), r.Total, r.Next, r.Facets)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&o.Facets, "facets", "", "count values of fields: country,org,product:20")
	cmd.Flags().IntVar(&o.Limit, "limit", 20, "rows per page")
	cmd.Flags().StringVar(&o.Cursor, "cursor", "", "the next page (printed after each page)")
	cmd.Flags().BoolVar(&events, "events", false, "search sensor events instead of services")
	cmd.Flags().StringVar(&format, "format", "table", "table, or jsonl / csv to export every match")
	return cmd
}

func printFooter(out io.Writer, shown int, total int64, next string, facets map[string][]store.FacetValue) {
	fmt.Fprintf(out, "%d of %d\n", shown, total)
	if next != "" {
		fmt.Fprintf(out, "next page: --cursor %s\n", next)
	}
	printFacets(out, facets)
}

func printFacets(out io.Writer, facets map[string][]store.FacetValue) {
	for name, vals := range facets {
		fmt.Fprintf(out, "\n%s\n", name)
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		for _, v := range vals {
			fmt.Fprintf(tw, "  %d\t  %s\n", v.Count, v.Value)
		}
		tw.Flush()
	}
}

func newCountCmd() *cobra.Command {
	var f clientFlags
	var facets string
	cmd := &cobra.Command{
		Use:     "count QUERY",
		Short:   "Count services matching a query, with facets",
		Example: `  vantage count 'product:openssh version:<8.0' --facets country,org`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			total, fs, err := f.client().Count(cmd.Context(), args[0], facets)
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"total": total, "facets": fs})
			}
			fmt.Fprintln(cmd.OutOrStdout(), total)
			printFacets(cmd.OutOrStdout(), fs)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&facets, "facets", "", "count values of fields: country,org,product:20")
	return cmd
}

func newKeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage API keys (needs an admin key)"}
	var f clientFlags
	var scopes []string
	var rate float64
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a key and print its secret (shown once)", Args: cobra.ExactArgs(1),
		Example: `  vantage key create ci-scanner --scope scan --key $(cat data/admin.key)`,
		RunE: func(cmd *cobra.Command, args []string) error {
			secret, key, err := f.client().CreateKey(cmd.Context(), args[0], scopes, rate)
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"secret": secret, "key": key})
			}
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			return nil
		},
	}
	create.Flags().StringSliceVar(&scopes, "scope", []string{"read"}, "scopes: read, scan, admin")
	create.Flags().Float64Var(&rate, "rate-limit", 0, "requests per second for this key (0: the server's default)")
	list := &cobra.Command{
		Use: "list", Short: "List keys", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, err := f.client().Keys(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), keys)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED")
			for _, k := range keys {
				fmt.Fprintf(tw, "%v\t%v\t%v\t%v\n", k["id"], k["name"], k["scopes"], k["created"])
			}
			return tw.Flush()
		},
	}
	del := &cobra.Command{
		Use: "delete ID", Short: "Delete a key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return apiErr(f.client().DeleteKey(cmd.Context(), args[0]))
		},
	}
	for _, c := range []*cobra.Command{create, list, del} {
		f.add(c)
		cmd.AddCommand(c)
	}
	return cmd
}
