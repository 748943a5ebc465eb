package scan

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"
)

// Result is one answer from one target.
type Result struct {
	IP     netip.Addr
	Port   uint16 // 0 for address-only probes (ICMP)
	Proto  string // "tcp", "icmp"
	State  State
	TTL    uint8  // 0 when unknown (connect mode)
	Window uint16 // TCP window of the reply
	Time   time.Time
	ScanID string
	Shard  int
}

// Writer writes results in one output format.
type Writer interface {
	Write(*Result) error
	Flush() error
}

// NewWriter returns a writer for format "json" (JSON lines) or "csv".
func NewWriter(format string, w io.Writer) (Writer, error) {
	switch format {
	case "json", "jsonl", "":
		return &jsonWriter{w: bufio.NewWriterSize(w, 64<<10)}, nil
	case "csv":
		return &csvWriter{w: bufio.NewWriterSize(w, 64<<10)}, nil
	}
	return nil, fmt.Errorf("unknown output format %q (want json or csv)", format)
}

// jsonWriter writes one JSON object per line. It appends fields by hand:
// every value is a number, an address or a fixed token, so nothing needs
// escaping, and it costs no allocation per result.
type jsonWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (j *jsonWriter) Write(r *Result) error {
	b := j.buf[:0]
	b = append(b, `{"ip":"`...)
	b = r.IP.AppendTo(b)
	b = append(b, '"')
	if r.Port != 0 {
		b = append(b, `,"port":`...)
		b = strconv.AppendUint(b, uint64(r.Port), 10)
	}
	b = append(b, `,"proto":"`...)
	b = append(b, r.Proto...)
	b = append(b, `","state":"`...)
	b = append(b, r.State.String()...)
	b = append(b, '"')
	if r.TTL != 0 {
		b = append(b, `,"ttl":`...)
		b = strconv.AppendUint(b, uint64(r.TTL), 10)
	}
	if r.Proto == "tcp" && r.TTL != 0 {
		b = append(b, `,"window":`...)
		b = strconv.AppendUint(b, uint64(r.Window), 10)
	}
	b = append(b, `,"time":"`...)
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","scan_id":"`...)
	b = append(b, r.ScanID...)
	b = append(b, `","shard":`...)
	b = strconv.AppendInt(b, int64(r.Shard), 10)
	b = append(b, "}\n"...)
	j.buf = b
	_, err := j.w.Write(b)
	return err
}

func (j *jsonWriter) Flush() error { return j.w.Flush() }

// csvWriter writes a header line and one line per result. No field can hold
// a comma or a quote, so no quoting is needed.
type csvWriter struct {
	w      *bufio.Writer
	buf    []byte
	header bool
}

// CSVHeader names the columns of the CSV output.
const CSVHeader = "ip,port,proto,state,ttl,window,time,scan_id,shard"

func (c *csvWriter) Write(r *Result) error {
	b := c.buf[:0]
	if !c.header {
		b = append(b, CSVHeader+"\n"...)
		c.header = true
	}
	b = r.IP.AppendTo(b)
	b = append(b, ',')
	if r.Port != 0 {
		b = strconv.AppendUint(b, uint64(r.Port), 10)
	}
	b = append(b, ',')
	b = append(b, r.Proto...)
	b = append(b, ',')
	b = append(b, r.State.String()...)
	b = append(b, ',')
	if r.TTL != 0 {
		b = strconv.AppendUint(b, uint64(r.TTL), 10)
	}
	b = append(b, ',')
	if r.Proto == "tcp" && r.TTL != 0 {
		b = strconv.AppendUint(b, uint64(r.Window), 10)
	}
	b = append(b, ',')
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ',')
	b = append(b, r.ScanID...)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(r.Shard), 10)
	b = append(b, '\n')
	c.buf = b
	_, err := c.w.Write(b)
	return err
}

func (c *csvWriter) Flush() error {
	if !c.header { // an empty result set still gets its header
		c.w.WriteString(CSVHeader + "\n")
		c.header = true
	}
	return c.w.Flush()
}
