package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/vantagehq/vantage/internal/netns"
)

// txSampler reads the transmit packet counter of an interface in another
// network namespace at a fixed period, to find the send window of a scan
// the way netlab's measure.py does.
//
// /sys/class/net shows the interfaces of the namespace sysfs was mounted
// in, so it cannot see scan0 from here even after setns. Files under
// /proc/thread-self/net follow the reading thread's namespace instead: the
// sampling goroutine locks its thread, moves it into the namespace and opens
// /proc/thread-self/net/dev there. The thread is never unlocked, so when the
// goroutine returns the Go runtime ends it rather than reuse a thread that
// lives in another namespace.
type txSampler struct {
	period  time.Duration
	samples []txSample // owned by the sampling goroutine until done is closed
	stop    chan struct{}
	done    chan struct{}
	err     error
}

type txSample struct {
	at time.Time
	tx uint64
}

// startTxSampler starts sampling iface in the named namespace (/run/netns/ns).
func startTxSampler(ns, iface string, period time.Duration) (*txSampler, error) {
	s := &txSampler{period: period, stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go s.run(ns, iface, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return s, nil
}

func (s *txSampler) run(ns, iface string, ready chan<- error) {
	defer close(s.done)
	if err := netns.Join(ns); err != nil { // for good: see the type's comment
		ready <- err
		return
	}
	f, err := os.Open("/proc/thread-self/net/dev")
	if err != nil {
		ready <- fmt.Errorf("in %s: %w", ns, err)
		return
	}
	defer f.Close()
	buf := make([]byte, 16<<10)
	name := []byte(iface + ":")
	read := func() (uint64, error) {
		n, err := f.ReadAt(buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		return txPackets(buf[:n], name)
	}
	sample := func() error {
		tx, err := read()
		if err == nil {
			s.samples = append(s.samples, txSample{time.Now(), tx})
		}
		return err
	}
	if err := sample(); err != nil {
		ready <- fmt.Errorf("/proc/thread-self/net/dev in %s: %w", ns, err)
		return
	}
	ready <- nil
	tick := time.NewTicker(s.period)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			s.err = sample()
			return
		case <-tick.C:
			if s.err = sample(); s.err != nil {
				<-s.stop
				return
			}
		}
	}
}

// txPackets finds the tx_packets column of one interface in /proc/net/dev:
// "scan0: rx_bytes rx_packets ... (8 receive columns) tx_bytes tx_packets ...".
func txPackets(dev, name []byte) (uint64, error) {
	for _, line := range bytes.Split(dev, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if !bytes.HasPrefix(line, name) {
			continue
		}
		f := bytes.Fields(line[len(name):])
		if len(f) < 10 {
			return 0, fmt.Errorf("short line %q", line)
		}
		return strconv.ParseUint(string(f[9]), 10, 64)
	}
	return 0, fmt.Errorf("no interface %s", name[:len(name)-1])
}

// Stop ends sampling. The samples are readable afterwards.
func (s *txSampler) Stop() error {
	close(s.stop)
	<-s.done
	return s.err
}

// window is the send window: from the start of the first sample period in
// which tx grew by more than 2% of the largest growth in one period, to the
// end of the last such period. minGrowth raises the bar for a period to
// count (1 ignores single packets, such as replies to a ping trickle).
// It also returns the packets counted over all samples.
func (s *txSampler) window(minGrowth uint64) (time.Duration, uint64, bool) {
	sm := s.samples
	if len(sm) < 2 {
		return 0, 0, false
	}
	var peak uint64
	for i := 1; i < len(sm); i++ {
		peak = max(peak, sm[i].tx-sm[i-1].tx)
	}
	total := sm[len(sm)-1].tx - sm[0].tx
	threshold := max(0.02*float64(peak), float64(minGrowth))
	first, last := 0, 0
	for i := 1; i < len(sm); i++ {
		if float64(sm[i].tx-sm[i-1].tx) > threshold {
			if first == 0 {
				first = i
			}
			last = i
		}
	}
	if first == 0 {
		return 0, total, false
	}
	return sm[last].at.Sub(sm[first-1].at), total, true
}
