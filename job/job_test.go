package job

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantagehq/vantage/bus"
)

func openBus(t *testing.T) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func waitState(t *testing.T, q *Queue, id, state string) Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := q.Get(context.Background(), id)
		if err == nil && st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: state %q (%v), want %s", id, st.State, err, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSubmitWorkDone(t *testing.T) {
	b := openBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, err := Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	s := Scan{ID: "corp-1", Origin: "test", Targets: []string{"192.0.2.0/24"}, Ports: "22,80", Grab: true}
	if created, err := q.Submit(ctx, s); err != nil || !created {
		t.Fatalf("submit: %v %v", created, err)
	}
	// the same ID again is not queued twice
	if created, err := q.Submit(ctx, s); err != nil || created {
		t.Fatalf("second submit: created %v, %v", created, err)
	}
	var mu sync.Mutex
	var ran []string
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Work(wctx, "w1", func(ctx context.Context, s Scan) (int, error) {
			mu.Lock()
			ran = append(ran, s.ID)
			mu.Unlock()
			return 7, nil
		})
	}()
	st := waitState(t, q, "corp-1", Done)
	stop()
	<-done
	if st.Published != 7 || st.Worker != "w1" || st.Attempts != 1 || st.Finished.IsZero() {
		t.Errorf("status %+v", st)
	}
	if len(ran) != 1 {
		t.Errorf("ran %v, want the job once", ran)
	}
}

// A failing job is marked failed with the reason, and not retried.
func TestWorkFailed(t *testing.T) {
	b := openBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, _ := Open(ctx, b)
	q.Submit(ctx, Scan{ID: "bad", Targets: []string{"10.0.0.0/8"}, Ports: "22"})
	var runs atomic.Int32
	go q.Work(ctx, "w1", func(context.Context, Scan) (int, error) {
		runs.Add(1)
		return 0, errors.New("10.0.0.0/8 is reserved: this worker does not scan it")
	})
	st := waitState(t, q, "bad", Failed)
	if st.Error == "" {
		t.Error("no reason")
	}
	time.Sleep(200 * time.Millisecond)
	if runs.Load() != 1 {
		t.Errorf("ran %d times", runs.Load())
	}
}

// A worker stopped mid-job hands the job back; the next worker does it.
func TestWorkerStoppedMidJob(t *testing.T) {
	b := openBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, _ := Open(ctx, b)
	q.Submit(ctx, Scan{ID: "long", Targets: []string{"192.0.2.1"}, Ports: "22"})
	started := make(chan struct{})
	w1, stop1 := context.WithCancel(ctx)
	done1 := make(chan struct{})
	go func() {
		defer close(done1)
		q.Work(w1, "w1", func(ctx context.Context, s Scan) (int, error) {
			close(started)
			<-ctx.Done() // stopped before it finished
			return 0, ctx.Err()
		})
	}()
	<-started
	stop1()
	<-done1
	if st, _ := q.Get(ctx, "long"); st.State != Queued {
		t.Fatalf("after the worker stopped: %s, want queued", st.State)
	}
	go q.Work(ctx, "w2", func(context.Context, Scan) (int, error) { return 3, nil })
	st := waitState(t, q, "long", Done)
	if st.Worker != "w2" || st.Attempts != 2 || st.Published != 3 {
		t.Errorf("status %+v", st)
	}
}

func TestCheck(t *testing.T) {
	for _, s := range []Scan{
		{ID: "", Targets: []string{"192.0.2.1"}, Ports: "22"},
		{ID: "a b", Targets: []string{"192.0.2.1"}, Ports: "22"},
		{ID: "x", Ports: "22"},
		{ID: "x", Targets: []string{"--rate=999999"}, Ports: "22"},
		{ID: "x", Targets: []string{"192.0.2.1"}, Ports: "-p1"},
		{ID: "x", Targets: []string{"192.0.2.1"}, Ports: "22", Rate: -1},
	} {
		if s.Check() == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}

// A scan split into shards: one seed, the scan's ID on every shard's
// results, and Jobs lists the shards in order.
func TestSplitAndJobs(t *testing.T) {
	b := openBus(t)
	ctx := context.Background()
	q, _ := Open(ctx, b)
	shards, err := Split(Scan{ID: "farm", Targets: []string{"198.18.0.0/15"}, Ports: "22,80,443"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range shards {
		if s.ID != "farm.s"+strconv.Itoa(i) || s.Results() != "farm" || s.Shards != 3 || s.Shard != i || s.Seed != shards[0].Seed || s.Seed == "" {
			t.Errorf("shard %d: %+v", i, s)
		}
		if err := s.Check(); err != nil {
			t.Errorf("shard %d refused: %v", i, err)
		}
		if _, err := q.Submit(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	q.Submit(ctx, Scan{ID: "farmer", Targets: []string{"192.0.2.1"}, Ports: "22"}) // not one of them
	jobs, err := q.Jobs(ctx, "farm")
	if err != nil || len(jobs) != 3 || jobs[0].Shard != 0 || jobs[2].Shard != 2 {
		t.Fatalf("jobs %+v %v", jobs, err)
	}
	if _, err := q.Jobs(ctx, "nope"); err == nil {
		t.Error("a scan that does not exist has jobs")
	}
	for _, n := range []int{0, -1, MaxShards + 1} {
		if _, err := Split(Scan{ID: "x"}, n); err == nil {
			t.Errorf("split into %d accepted", n)
		}
	}
	bad := shards[1]
	bad.Seed = ""
	if bad.Check() == nil {
		t.Error("a shard without a seed accepted")
	}
	bad = shards[1]
	bad.Shard = 3
	if bad.Check() == nil {
		t.Error("shard 3 of 3 accepted")
	}
}
