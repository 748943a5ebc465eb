// Package netns moves a goroutine's OS thread into another Linux network
// namespace, for tests and tools that work inside netlab's namespaces. A
// network namespace belongs to a thread, not a process: sockets a thread
// opens, and /proc/thread-self/net, follow the thread's namespace. A thread
// that cannot be returned to where it came from stays locked to its
// goroutine, so the runtime discards it instead of reusing it elsewhere.
package netns

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Path is the file of a named namespace (as `ip netns add` creates it), or
// name itself when it is already a path.
func Path(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return "/run/netns/" + name
}

// Join moves the calling goroutine's thread into the namespace for good.
// Call it at the top of a goroutine that works only there.
//
// It refuses the process's main thread: that thread cannot exit, so it
// would stay in the namespace for the life of the process, and tools that
// find a namespace's processes by their main thread (`ip netns pids`, and
// `netlab down`, which kills them) would count the whole process in. A
// program that uses Join keeps its main goroutine on the main thread with
// runtime.LockOSThread in an init function.
func Join(name string) error {
	runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
	if unix.Gettid() == unix.Getpid() {
		return fmt.Errorf("join network namespace %s: refusing to move the main thread (lock the main goroutine to it in init)", name)
	}
	return setns(Path(name))
}

// Private moves the calling goroutine's thread into a new, empty network
// namespace (only a loopback interface, down) for good.
func Private() error {
	runtime.LockOSThread() // never unlocked, as in Join
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("new network namespace: %w", err)
	}
	return nil
}

// Do runs fn on the calling goroutine's thread inside the namespace and
// then moves the thread back. fn must not start goroutines that expect to
// be in the namespace: they run on other threads.
func Do(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net") // not /proc/self: that is the main thread's
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current network namespace: %w", err)
	}
	defer orig.Close()
	if err := setns(Path(name)); err != nil {
		runtime.UnlockOSThread() // still where it was
		return err
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// stay locked: the runtime must not reuse a thread in the wrong namespace
		return fmt.Errorf("return to the original network namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	return nil
}

// Listen opens a listening socket inside the namespace and returns it; the
// calling goroutine's thread stays where it is. The socket belongs to the
// namespace it was made in, so Accept works from any thread and the
// connections come from inside the namespace. A process can so serve a
// namespace that has no link to its own (vantage up --demo serves the
// lab's scanner and sensor from the host).
func Listen(name, network, address string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	res := make(chan result, 1)
	go func() {
		// Join locks this goroutine's thread and never unlocks it: the
		// thread ends with the goroutine instead of being reused elsewhere
		if err := Join(name); err != nil {
			res <- result{err: err}
			return
		}
		l, err := net.Listen(network, address)
		if err != nil {
			err = fmt.Errorf("listen on %s in network namespace %s: %w", address, name, err)
		}
		res <- result{l, err}
	}()
	r := <-res
	return r.l, r.err
}
