package scan

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func sampleResults() []Result {
	t0 := time.Date(2026, 11, 27, 8, 43, 1, 123456789, time.UTC)
	return []Result{
		{IP: netip.MustParseAddr("198.18.0.7"), Port: 80, Proto: "tcp", State: StateOpen, TTL: 64, Window: 64240, Time: t0, ScanID: "3f2a9c", Shard: 0},
		{IP: netip.MustParseAddr("198.19.255.254"), Port: 443, Proto: "tcp", State: StateClosed, TTL: 63, Window: 0, Time: t0.Add(time.Millisecond), ScanID: "3f2a9c", Shard: 2},
		{IP: netip.MustParseAddr("198.18.0.9"), Port: 22, Proto: "tcp", State: StateOpen, Time: t0, ScanID: "3f2a9c"}, // connect mode: no TTL or window
		{IP: netip.MustParseAddr("198.18.1.1"), Proto: "icmp", State: StateUp, TTL: 64, Time: t0, ScanID: "3f2a9c"},
	}
}

func TestWritersGolden(t *testing.T) {
	for _, format := range []string{"json", "csv"} {
		var buf bytes.Buffer
		w, err := NewWriter(format, &buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range sampleResults() {
			if err := w.Write(&r); err != nil {
				t.Fatal(err)
			}
		}
		w.Flush()
		golden := filepath.Join("testdata", "results."+format)
		if *update {
			os.WriteFile(golden, buf.Bytes(), 0o644)
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s output differs from %s:\n%s", format, golden, buf.Bytes())
		}
	}
}

// The hand-written encoders must produce what a JSON or CSV parser reads back.
func TestWritersParse(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter("json", &buf)
	for _, r := range sampleResults() {
		w.Write(&r)
	}
	w.Flush()
	dec := json.NewDecoder(&buf)
	for i, want := range sampleResults() {
		var got struct {
			IP     netip.Addr `json:"ip"`
			Port   uint16     `json:"port"`
			State  string     `json:"state"`
			Time   time.Time  `json:"time"`
			Window *int       `json:"window"`
		}
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if got.IP != want.IP || got.Port != want.Port || got.State != want.State.String() || !got.Time.Equal(want.Time) {
			t.Errorf("line %d: %+v, want %+v", i, got, want)
		}
		if (got.Window != nil) != (want.Proto == "tcp" && want.TTL != 0) {
			t.Errorf("line %d: window present = %v", i, got.Window != nil)
		}
	}
	buf.Reset()
	w, _ = NewWriter("csv", &buf)
	for _, r := range sampleResults() {
		w.Write(&r)
	}
	w.Flush()
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) != 5 || len(rows[0]) != 9 {
		t.Fatalf("csv: %d rows, %v", len(rows), err)
	}
	var empty bytes.Buffer
	w, _ = NewWriter("csv", &empty)
	w.Flush()
	if empty.String() != CSVHeader+"\n" {
		t.Errorf("empty CSV %q", empty.String())
	}
	if _, err := NewWriter("xml", &empty); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestParseStates(t *testing.T) {
	s, err := ParseStates("open, closed")
	if err != nil || !s[StateOpen] || !s[StateClosed] || s[StateUp] {
		t.Fatalf("%v %v", s, err)
	}
	if _, err := ParseStates("opne"); err == nil {
		t.Fatal("typo accepted")
	}
}

func TestPacerBatches(t *testing.T) {
	// batch sizes only: timing is measured by bench/scan.sh, not asserted here
	for _, tt := range []struct {
		rate      float64
		max       int
		wantBatch uint64
	}{
		{0, 256, 256}, {100, 256, 1}, {10000, 256, 40}, {1e6, 256, 256}, {1e9, 64, 64},
	} {
		p := newPacer(tt.rate, tt.max)
		if p.batch != tt.wantBatch || p.burst != 4*tt.wantBatch {
			t.Errorf("rate %v: batch %d burst %d, want %d", tt.rate, p.batch, p.burst, tt.wantBatch)
		}
	}
}
