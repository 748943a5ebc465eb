package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/client"
)

func newJobsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "Hand a scan to the scanner workers, split into shards, and follow it (needs an admin key)",
		Long: `A scan too big for one machine is split into shards: every shard probes the
same targets and ports in the order one seed gives, and sends only its own
part, as 'vantage scan --shards N --shard I --seed S' would. Each shard is a
job on the bus's work queue; 'vantage scanner' workers take them one at a
time and publish the results under the scan's ID. A worker that dies
mid-shard loses its job after a minute; the next worker scans that shard
again, and since its records have the same IDs, search shows each service
once.`,
		Example: `  vantage jobs submit --shards 3 -p 22,80,443 -r 20000 198.51.100.0/24
  vantage jobs status scan-20261127-101500-000`,
	}
	var f clientFlags
	var id, ports, seed string
	var shards, rate int
	var grab bool
	var wait time.Duration
	submit := &cobra.Command{
		Use: "submit -p PORTS [--shards N] TARGET...", Short: "Queue a scan, split into shards", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := f.client()
			v, err := c.SubmitScan(cmd.Context(), map[string]any{"id": id, "targets": args, "ports": ports, "rate": rate,
				"shards": shards, "seed": seed, "grab": grab})
			if err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "vantage: scan %s queued as %d jobs\n", v.ID, len(v.Jobs))
			deadline := time.Now().Add(wait)
			for wait > 0 && v.State != "done" && v.State != "failed" && time.Now().Before(deadline) {
				select {
				case <-cmd.Context().Done():
					return errInterrupted
				case <-time.After(time.Second):
				}
				if v, err = c.Scan(cmd.Context(), v.ID); err != nil {
					return apiErr(err)
				}
			}
			return printScan(cmd.OutOrStdout(), f.json, v)
		},
	}
	fl := submit.Flags()
	fl.StringVarP(&ports, "ports", "p", "", "ports to scan (required)")
	fl.IntVar(&shards, "shards", 1, "split into this many jobs (one per worker)")
	fl.IntVarP(&rate, "rate", "r", 0, "probes per second of each shard (default: the worker's --max-rate)")
	fl.StringVar(&seed, "seed", "", "seed of the probe order (default: random)")
	fl.StringVar(&id, "id", "", "the scan's ID, carried by its results (default: from the time)")
	fl.BoolVar(&grab, "grab", false, "identify what answers")
	fl.DurationVar(&wait, "wait", 0, "wait up to this long for every shard to finish")
	submit.MarkFlagRequired("ports")
	status := &cobra.Command{
		Use: "status SCAN-ID", Short: "Show a scan's shards", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := f.client().Scan(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return printScan(cmd.OutOrStdout(), f.json, v)
		},
	}
	for _, c := range []*cobra.Command{submit, status} {
		f.add(c)
		cmd.AddCommand(c)
	}
	return cmd
}

func printScan(w io.Writer, asJSON bool, v *client.ScanView) error {
	if asJSON {
		return printJSON(w, v)
	}
	fmt.Fprintf(w, "scan %s: %s, %d records published\n", v.ID, v.State, v.Published)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSHARD\tSTATE\tWORKER\tATTEMPTS\tPUBLISHED\tERROR")
	for _, j := range v.Jobs {
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%d\t%d\t%s\n", j.ID, j.Shard, j.Shards, j.State, orDash(j.Worker), j.Attempts, j.Published, j.Error)
	}
	return tw.Flush()
}
