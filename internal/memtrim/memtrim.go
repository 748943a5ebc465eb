// Package memtrim gives back the resident pages of the program's own file
// that a lean role does not use. The one vantage binary links DuckDB and
// the server; a sensor runs none of that code, but loading the binary (and
// the kernel's fault-around, which maps cached neighbours of every page
// touched) leaves tens of megabytes of it resident. Those pages are clean
// copies of the file: dropping them from this process's mappings costs
// nothing but a page fault for any that are used again.
package memtrim

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Executable drops the resident pages of the read-only mappings of the
// program's own file (code and constants; never writable data). It
// returns how many bytes of mappings it advised.
func Executable() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-00a9b000 r--p 00000000 08:01 1234 /path/to/exe
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") || !strings.HasSuffix(fields[1], "p") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// the raw call: the region is no Go object, and making a slice of
		// it would need a uintptr-to-pointer conversion
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("memtrim: madvise %s: %w", fields[0], errno)
		}
		total += int64(end - start)
	}
	return total, sc.Err()
}
