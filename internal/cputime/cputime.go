// Package cputime reads the CPU time this process has used, for
// benchmarks that report CPU per operation: on a shared machine that
// figure moves less with other load than a rate does.
package cputime

import (
	"syscall"
	"time"
)

// Self is the process's user and system time so far, every thread
// included (C libraries' threads too); 0 if the kernel will not say.
func Self() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
