package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/vantagehq/vantage/bus"
	"github.com/vantagehq/vantage/internal/metrics"
	"github.com/vantagehq/vantage/job"
)

type scannerFlags struct {
	nats, name      string
	connect         bool
	allowReserved   []string
	maxRate         int
	iface, sourceIP string
	cooldown        time.Duration
	metrics         string
	jobs            *prometheus.CounterVec // by outcome, with --metrics
}

func newScannerCmd() *cobra.Command {
	var f scannerFlags
	cmd := &cobra.Command{
		Use:   "scanner --nats URL",
		Short: "Run as a scanner worker: take scan jobs from the bus and publish what they find",
		Long: `Scanner runs as a worker of the platform: it takes scan jobs (targets, ports,
rate) from the bus's work queue one at a time, scans them as 'vantage scan
--grab' would, and publishes the services onto the bus under the job's ID.
The monitor's scheduled rescans of watchlists are such jobs.

The worker's own rules come first: it obeys the platform's exclusion list
(opt-outs) before every probe, refuses reserved address space unless this
command names it with --allow-reserved, and never sends faster than
--max-rate whatever a job asks. A job the worker refuses (a reserved target)
is marked failed with the reason. A worker stopped mid-job hands the job
back; one that dies loses it for a minute, then the bus gives it to the next
worker.`,
		Example: `  sudo vantage scanner --nats nats://platform:4222
  vantage scanner --nats nats://127.0.0.1:4222 --connect --max-rate 500
  sudo vantage scanner --nats nats://192.0.2.1:4222 --allow-reserved 198.18.0.0/15`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger(cmd)
			if err != nil {
				return err
			}
			if f.nats == "" {
				return usagef("--nats URL is required: the bus the jobs come from")
			}
			if f.maxRate < 0 {
				return usagef("--max-rate %d: must not be negative", f.maxRate)
			}
			if f.name == "" {
				h, _ := os.Hostname()
				f.name = fmt.Sprintf("%s/%d", h, os.Getpid())
			}
			ctx := cmd.Context()
			if f.metrics != "" {
				reg := metrics.NewRegistry("scanner")
				f.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vantage_scanner_jobs_total",
					Help: "Scan jobs this worker finished, by outcome (done, failed, handed back)."}, []string{"outcome"})
				reg.MustRegister(f.jobs)
				ctx = withScanMetrics(ctx, newScanMetrics(reg)) // every job's scan counts in vantage_scan_*
				stop, err := startMetrics(ctx, f.metrics, reg, false, log, cmd.ErrOrStderr())
				if err != nil {
					return usagef("--metrics: %v", err)
				}
				defer stop()
			}
			b, err := bus.Open(ctx, natsClient(f.nats), log)
			if err != nil {
				return err
			}
			defer b.Close()
			q, err := job.Open(ctx, b)
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			fmt.Fprintf(stderr, "vantage: scanner %s waiting for jobs on %s\n", f.name, f.nats)
			err = q.Work(ctx, f.name, func(ctx context.Context, s job.Scan) (int, error) {
				return f.run(ctx, s, stderr)
			})
			if err == nil && ctx.Err() != nil {
				return errInterrupted
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.nats, "nats", "", "the platform's NATS `URL` ($VANTAGE_NATS_TOKEN, $VANTAGE_NATS_CREDS)")
	fl.StringVar(&f.name, "name", "", "worker name in job statuses (default host/pid)")
	fl.BoolVar(&f.connect, "connect", false, "scan with connect() (no root needed; slower)")
	fl.StringArrayVar(&f.allowReserved, "allow-reserved", nil, "let jobs scan this reserved `CIDR`; repeatable")
	fl.IntVar(&f.maxRate, "max-rate", 10000, "probes per second at most, whatever a job asks (0 = no cap)")
	fl.StringVarP(&f.iface, "interface", "i", "", "send on this interface (default: from the route)")
	fl.StringVarP(&f.sourceIP, "source-ip", "S", "", "source address of probes")
	fl.DurationVarP(&f.cooldown, "cooldown", "c", 3*time.Second, "wait this long for late replies after each job's last probe")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics (vantage_scanner_*, vantage_scan_*) on `ADDR`/metrics")
	return cmd
}

// workInProcess runs a scanner worker in this process on the platform's
// bus until ctx ends (`vantage server --scan-worker`, `vantage up`): raw
// SYN probes as root, connect() otherwise.
func workInProcess(ctx context.Context, natsURL string, allowReserved []string, stderr io.Writer, log *slog.Logger) {
	f := scannerFlags{nats: natsURL, name: "in-process", connect: os.Geteuid() != 0, allowReserved: allowReserved,
		maxRate: 10000, cooldown: 3 * time.Second}
	b, err := bus.Open(ctx, bus.Config{URL: natsURL}, log)
	if err != nil {
		fmt.Fprintf(stderr, "vantage: scan worker: %v\n", err)
		return
	}
	defer b.Close()
	q, err := job.Open(ctx, b)
	if err == nil {
		err = q.Work(ctx, f.name, func(ctx context.Context, s job.Scan) (int, error) { return f.run(ctx, s, stderr) })
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "vantage: scan worker: %v\n", err)
	}
}

// run scans one job in this process, as `vantage scan` with the job's
// targets and the worker's rules, and says how many records it published.
func (f *scannerFlags) run(ctx context.Context, s job.Scan, stderr io.Writer) (int, error) {
	rate := s.Rate
	if rate <= 0 || (f.maxRate > 0 && rate > f.maxRate) {
		rate = f.maxRate
	}
	args := []string{"scan", "-q", "-p", s.Ports, "-r", strconv.Itoa(rate), "-c", f.cooldown.String(),
		"--scan-id", s.Results(), "--nats", f.nats, "-o", os.DevNull}
	if s.Shards > 1 {
		args = append(args, "--seed", s.Seed, "--shards", strconv.Itoa(s.Shards), "--shard", strconv.Itoa(s.Shard))
	}
	if s.Grab {
		args = append(args, "--grab")
	}
	if f.connect {
		args = append(args, "--connect")
	}
	if f.iface != "" {
		args = append(args, "-i", f.iface)
	}
	if f.sourceIP != "" {
		args = append(args, "-S", f.sourceIP)
	}
	for _, c := range f.allowReserved {
		args = append(args, "--allow-reserved", c)
	}
	args = append(args, "--")
	args = append(args, s.Targets...)
	fmt.Fprintf(stderr, "vantage: job %s (%s): %d targets, ports %s, %d probes/s\n", s.ID, s.Origin, len(s.Targets), s.Ports, rate)
	t0 := time.Now()
	var log lockedBuffer
	err := inProcess(ctx, &log, args...)
	n := publishedIn(log.String())
	if f.jobs != nil {
		switch {
		case ctx.Err() != nil:
			f.jobs.WithLabelValues("handed back").Inc()
		case err != nil:
			f.jobs.WithLabelValues("failed").Inc()
		default:
			f.jobs.WithLabelValues("done").Inc()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "vantage: job %s failed: %v\n", s.ID, err)
		return n, fmt.Errorf("%v", err)
	}
	fmt.Fprintf(stderr, "vantage: job %s done in %s: %d services published\n", s.ID, time.Since(t0).Round(100*time.Millisecond), n)
	return n, nil
}
