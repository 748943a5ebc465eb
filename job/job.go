// Package job carries scan jobs over the bus. Whoever wants a scan (the
// monitor's schedule, an operator) submits a job; scanner workers take jobs
// one at a time from the JOBS work queue and run them; each job's status
// lives in the "scanjobs" bucket, where anyone can follow it.
//
// A job is delivered to one worker at a time. A worker signals progress
// while it scans; if it dies, the job is delivered again (to it or to
// another worker) after AckWait, up to MaxDeliver times. Results carry the
// job's ID as their scan ID, so a job scanned twice stores each
// observation once per (scan, address, port).
package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vantagehq/vantage/bus"
)

// Scan is what a job asks a scanner to do.
type Scan struct {
	ID      string    `json:"id"`
	Origin  string    `json:"origin"`  // who asked: "monitor:<watchlist>", "operator"
	Targets []string  `json:"targets"` // addresses, CIDRs or ranges, as `vantage scan` takes them
	Ports   string    `json:"ports"`   // 22,80,443,8000-8100
	Rate    int       `json:"rate,omitempty"`
	Grab    bool      `json:"grab"` // identify what answers
	Created time.Time `json:"created"`

	// A shard of a larger scan (Split): every shard probes the same
	// targets and ports in the order Seed gives, and sends only its own
	// part of it, under the scan's ID (ScanID), so the results of a
	// shard done twice are the same records.
	ScanID string `json:"scan_id,omitempty"` // default: ID
	Seed   string `json:"seed,omitempty"`
	Shards int    `json:"shards,omitempty"` // 0 or 1: not sharded
	Shard  int    `json:"shard,omitempty"`  // 0-based
}

// Results is the scan ID the job's results carry.
func (s *Scan) Results() string {
	if s.ScanID != "" {
		return s.ScanID
	}
	return s.ID
}

// MaxShards bounds how many jobs one scan is split into.
const MaxShards = 1024

// Split makes n shard jobs of a scan, with IDs "<id>.s<i>" (so that
// Jobs(id) finds them) and one seed for all (random when s has none).
func Split(s Scan, n int) ([]Scan, error) {
	if n < 1 || n > MaxShards {
		return nil, fmt.Errorf("shards %d: want 1 to %d", n, MaxShards)
	}
	if s.Seed == "" {
		s.Seed = strconv.FormatUint(rand.Uint64(), 10)
	}
	out := make([]Scan, n)
	for i := range out {
		j := s
		j.ID, j.ScanID, j.Shards, j.Shard = fmt.Sprintf("%s.s%d", s.ID, i), s.ID, n, i
		out[i] = j
	}
	return out, nil
}

// States of a job.
const (
	Queued  = "queued"
	Running = "running"
	Done    = "done"
	Failed  = "failed"
)

// Status is a job and how far it got.
type Status struct {
	Scan
	State     string    `json:"state"`
	Worker    string    `json:"worker,omitempty"`
	Attempts  int       `json:"attempts,omitempty"` // deliveries to workers so far
	Started   time.Time `json:"started,omitzero"`   // of the latest attempt
	Finished  time.Time `json:"finished,omitzero"`
	Published int       `json:"published"` // records the worker published
	Error     string    `json:"error,omitempty"`
	Updated   time.Time `json:"updated"`
}

// Timing of deliveries.
const (
	AckWait    = time.Minute // a worker silent this long has lost its job
	MaxDeliver = 5
	progress   = 20 * time.Second
	subject    = bus.SubjectJobs + ".scan"
	consumer   = "scanners"
	bucket     = "scanjobs"
	maxTargets = 100_000 // entries in one job
)

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_=-]{0,100}(\.[A-Za-z0-9_=-]{1,26})?$`)

// Check says what is wrong with a job, if anything.
func (s *Scan) Check() error {
	switch {
	case !idRE.MatchString(s.ID):
		return fmt.Errorf("job id %q: want 1-101 letters, digits, '_', '-' or '=', and one '.'-separated part at most", s.ID)
	case len(s.Targets) == 0:
		return errors.New("job has no targets")
	case len(s.Targets) > maxTargets:
		return fmt.Errorf("job has %d targets (at most %d)", len(s.Targets), maxTargets)
	case strings.TrimSpace(s.Ports) == "":
		return errors.New("job has no ports")
	case s.Rate < 0:
		return fmt.Errorf("job rate %d: must not be negative", s.Rate)
	case s.Shards < 0 || s.Shards > MaxShards || (s.Shards > 1 && (s.Shard < 0 || s.Shard >= s.Shards)):
		return fmt.Errorf("job shard %d of %d: want 0 <= shard < shards <= %d", s.Shard, s.Shards, MaxShards)
	case s.Shards > 1 && s.Seed == "":
		return errors.New("a sharded job needs the scan's seed")
	}
	for _, v := range []string{s.ScanID, s.Seed} {
		if v != "" && !idRE.MatchString(v) {
			return fmt.Errorf("job scan id or seed %q: want letters, digits, '_', '-' or '='", v)
		}
	}
	for _, t := range s.Targets {
		if t == "" || strings.HasPrefix(t, "-") || strings.ContainsAny(t, " \t\r\n") {
			return fmt.Errorf("job target %q: not an address, CIDR or range", t)
		}
	}
	if strings.HasPrefix(s.Ports, "-") || strings.ContainsAny(s.Ports, " \t\r\n") {
		return fmt.Errorf("job ports %q: want a list like 22,80,8000-8100", s.Ports)
	}
	return nil
}

// Queue submits and follows jobs.
type Queue struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// Open uses the bus's JOBS stream and scanjobs bucket (bus.Open made them).
func Open(ctx context.Context, b *bus.Bus) (*Queue, error) {
	kv, err := b.KV(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("scan jobs bucket: %w", err)
	}
	return &Queue{js: b.JS, kv: kv}, nil
}

// Submit queues a job. A job whose ID was submitted before is not queued
// again (created is false), so two servers that both decide to run the
// same scheduled scan queue it once.
func (q *Queue) Submit(ctx context.Context, s Scan) (created bool, err error) {
	if err := s.Check(); err != nil {
		return false, err
	}
	if s.Created.IsZero() {
		s.Created = time.Now().UTC()
	}
	st := Status{Scan: s, State: Queued, Updated: time.Now().UTC()}
	data, _ := json.Marshal(st)
	if _, err := q.kv.Create(ctx, s.ID, data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		return false, fmt.Errorf("record job %s: %w", s.ID, err)
	}
	msg, _ := json.Marshal(s)
	if _, err := q.js.Publish(ctx, subject, msg, jetstream.WithMsgID(s.ID)); err != nil {
		return true, fmt.Errorf("queue job %s: %w", s.ID, err)
	}
	return true, nil
}

// Get is a job's status.
func (q *Queue) Get(ctx context.Context, id string) (Status, error) {
	e, err := q.kv.Get(ctx, id)
	if err != nil {
		return Status{}, fmt.Errorf("job %s: %w", id, err)
	}
	var st Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return Status{}, fmt.Errorf("job %s: %w", id, err)
	}
	return st, nil
}

// Jobs are the statuses of a scan's shard jobs (Split), in shard order.
func (q *Queue) Jobs(ctx context.Context, scanID string) ([]Status, error) {
	if !idRE.MatchString(scanID) || strings.Contains(scanID, ".") {
		return nil, fmt.Errorf("scan %q: %w", scanID, jetstream.ErrKeyNotFound)
	}
	l, err := q.kv.ListKeysFiltered(ctx, scanID+".*")
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", scanID, err)
	}
	var out []Status
	for k := range l.Keys() {
		if st, err := q.Get(ctx, k); err == nil {
			out = append(out, st)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("scan %s: %w", scanID, jetstream.ErrKeyNotFound)
	}
	slices.SortFunc(out, func(a, b Status) int { return a.Shard - b.Shard })
	return out, nil
}

// Watch calls fn with every status written from now on, until ctx is done.
func (q *Queue) Watch(ctx context.Context, fn func(Status)) error {
	w, err := q.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("watch jobs: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch jobs: the bus closed the watch")
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var st Status
			if json.Unmarshal(e.Value(), &st) == nil {
				fn(st)
			}
		}
	}
}

func (q *Queue) put(ctx context.Context, st Status) error {
	st.Updated = time.Now().UTC()
	data, _ := json.Marshal(st)
	if _, err := q.kv.Put(ctx, st.ID, data); err != nil {
		return fmt.Errorf("job %s status: %w", st.ID, err)
	}
	return nil
}

// Runner scans one job and says how many records it published.
type Runner func(ctx context.Context, s Scan) (published int, err error)

// Work takes jobs one at a time and runs them until ctx is done. A job
// that fails is marked failed and not retried (a worker's own error, such
// as a target its policy refuses, would fail again); a job interrupted by
// ctx goes back to the queue for the next worker.
func (q *Queue) Work(ctx context.Context, worker string, run Runner) error {
	cons, err := q.js.CreateOrUpdateConsumer(ctx, bus.StreamJobs, jetstream.ConsumerConfig{
		Durable: consumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: AckWait,
		MaxDeliver: MaxDeliver, MaxAckPending: 1000, FilterSubject: subject,
	})
	if err != nil {
		return fmt.Errorf("scan job consumer: %w", err)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			sleep(ctx, time.Second)
			continue
		}
		for msg := range batch.Messages() {
			q.handle(ctx, worker, msg, run)
		}
	}
	return nil
}

func (q *Queue) handle(ctx context.Context, worker string, msg jetstream.Msg, run Runner) {
	var s Scan
	if err := json.Unmarshal(msg.Data(), &s); err != nil || s.Check() != nil {
		msg.Term() // not a job: a producer's bug, never redelivered
		return
	}
	st, err := q.Get(ctx, s.ID)
	if err != nil {
		st = Status{Scan: s}
	}
	if st.State == Done || st.State == Failed {
		msg.Ack() // finished before (its ack was lost)
		return
	}
	meta, _ := msg.Metadata()
	st.State, st.Worker, st.Started, st.Error = Running, worker, time.Now().UTC(), ""
	if meta != nil {
		st.Attempts = int(meta.NumDelivered)
	}
	if err := q.put(ctx, st); err != nil {
		msg.Nak()
		return
	}

	// progress keeps the job ours while it runs
	hctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progress)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				msg.InProgress()
			}
		}
	}()
	n, err := run(ctx, s)
	stop()
	wg.Wait()

	// the status is written with a context of its own: a worker stopped
	// mid-job still says so
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st.Published, st.Finished = n, time.Now().UTC()
	switch {
	case ctx.Err() != nil:
		st.State, st.Error = Queued, "the worker stopped before the job was done; it goes to the next worker"
		q.put(wctx, st)
		msg.NakWithDelay(time.Second)
	case err != nil:
		st.State, st.Error = Failed, err.Error()
		q.put(wctx, st)
		msg.Term()
	default:
		st.State = Done
		q.put(wctx, st)
		msg.Ack()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
