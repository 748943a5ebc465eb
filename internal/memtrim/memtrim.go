// Package memtrim gives back the resident pages of the program's own file
// that a lean role does not use. The one vantage binary links DuckDB and
// the server; a sensor runs none of that code, but loading the binary (and
// the kernel's fault-around, which maps cached neighbours of every page
// touched) leaves tens of megabytes of it resident. Pages that are clean
// copies of the file cost nothing to drop but a page fault for any used
// again.
//
// Only clean copies: a read-only mapping can hold pages written before it
// was made read-only (the dynamic loader's relocations, RELRO, the GOT).
// Those are private, anonymous copies; dropping them would bring back the
// file's unrelocated bytes and crash the process. A mapping with any
// anonymous page is left alone.
package memtrim

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

type mapping struct {
	start, end uint64
	perms      string
	path       string
	anonymous  int64 // kB
}

// Executable drops the resident pages of the read-only mappings of the
// program's own file that hold no page of their own (code and constants;
// never writable data, never relocated data). It returns how many bytes
// of mappings it advised.
func Executable() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	maps, err := readSmaps()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, m := range maps {
		if m.path != exe || strings.Contains(m.perms, "w") || !strings.HasSuffix(m.perms, "p") || m.anonymous != 0 {
			continue
		}
		// the raw call: the region is no Go object, and making a slice of
		// it would need a uintptr-to-pointer conversion
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("memtrim: madvise %x-%x: %w", m.start, m.end, errno)
		}
		total += int64(m.end - m.start)
	}
	return total, nil
}

// readSmaps reads the mappings of /proc/self/smaps with their anonymous
// (private, written) size. A mapping whose Anonymous line is missing
// counts as written: it is never dropped.
func readSmaps() ([]mapping, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && len(fields[1]) == 4 {
			// 00400000-00a9b000 r--p 00000000 08:01 1234 /path/to/exe
			lo, hi, _ := strings.Cut(fields[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil || end <= start {
				continue
			}
			m := mapping{start: start, end: end, perms: fields[1], anonymous: -1}
			if len(fields) >= 6 {
				m.path = fields[5]
			}
			out = append(out, m)
			continue
		}
		if v, ok := strings.CutPrefix(line, "Anonymous:"); ok && len(out) > 0 {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				out[len(out)-1].anonymous = n
			}
		}
	}
	return out, sc.Err()
}
