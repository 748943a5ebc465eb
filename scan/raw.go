package scan

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantagehq/vantage/afpacket"
	"github.com/vantagehq/vantage/frame"
	"github.com/vantagehq/vantage/target"
)

// frameSender sends raw frames in batches. Two implementations:
// afpacket.TX (a memory-mapped TX ring, the default) and afpacket.Batch
// (sendmmsg).
type frameSender interface {
	Next() ([]byte, error)
	Commit(n int)
	Flush() error
	Slots() int
	Failures() uint64
	Close() error
}

// rxRetire is how long the kernel keeps a partly filled receive block.
const rxRetire = 40 * time.Millisecond

// rawIO holds the raw-mode sockets, opened before any probe is sent.
type rawIO struct {
	rx     *afpacket.RX
	txs    []frameSender
	probes []Probe // one per sender, plus one for the receiver (last)
}

func (r *rawIO) close() {
	for _, tx := range r.txs {
		tx.Close()
	}
	if r.rx != nil {
		r.rx.Close()
	}
}

// openRaw resolves the network path and opens the receive ring and one
// send ring per sender.
func (s *scanner) openRaw(ctx context.Context) (*rawIO, error) {
	// before anything else, so that a missing privilege leads to the
	// connect() fallback rather than to a failed ARP request
	if err := afpacket.CheckPermission(); err != nil {
		return nil, err
	}
	path, err := s.resolveNetwork(ctx)
	if err != nil {
		return nil, err
	}
	mac, err := NewValidator()
	if err != nil {
		return nil, err
	}
	src := target.AddrTo(path.SrcIP)
	s.env = Env{
		SrcMAC: path.SrcMAC, DstMAC: path.NextHopMAC, Src: src, MAC: mac,
		SrcPortFirst: s.cfg.SrcPortFirst, SrcPortLast: s.cfg.SrcPortLast,
		Probes: s.cfg.Probes, TTL: s.cfg.TTL, Args: s.cfg.ProbeArgs,
	}
	s.sum.Interface = path.Interface
	s.sum.SrcIP = path.SrcIP.String()
	s.sum.SrcMAC = path.SrcMAC.String()
	s.sum.GatewayMAC = path.NextHopMAC.String()

	r := &rawIO{}
	for i := 0; i <= s.cfg.Senders; i++ {
		p, err := s.cfg.Module.New(s.env)
		if err != nil {
			return nil, err
		}
		r.probes = append(r.probes, p)
	}
	// The receive ring opens first, so no early reply is missed. Replies
	// are a fraction of what is sent and only headers are kept. A full
	// block is handed over at once; a partly filled one after rxRetire,
	// which bounds how often an idle receiver wakes.
	r.rx, err = afpacket.NewRX(afpacket.RXConfig{
		Ifindex: path.Index, BlockSize: 256 << 10, Blocks: 16, Timeout: rxRetire,
		Filter: afpacket.IPv4Filter(src, s.cfg.Module.Protocols, 128),
	})
	if err != nil {
		return nil, err
	}
	for i := 0; i < s.cfg.Senders; i++ {
		var tx frameSender
		switch s.cfg.SendMethod {
		case "mmsg":
			tx, err = afpacket.NewBatch(afpacket.BatchConfig{
				Ifindex: path.Index, MaxFrame: s.cfg.Module.MaxFrame, Frames: 256, QdiscBypass: s.cfg.QdiscBypass,
			})
		default:
			tx, err = afpacket.NewTX(afpacket.TXConfig{
				Ifindex: path.Index, MaxFrame: s.cfg.Module.MaxFrame, Frames: 4096, QdiscBypass: s.cfg.QdiscBypass,
			})
		}
		if err != nil {
			r.close()
			return nil, err
		}
		r.txs = append(r.txs, tx)
	}
	s.log.Info("raw scan", "interface", path.Interface, "source", path.SrcIP, "gateway_mac", path.NextHopMAC, "senders", s.cfg.Senders)
	return r, nil
}

func (s *scanner) runRaw(ctx, sendCtx context.Context, r *rawIO) error {
	defer r.close()
	stopRecv := make(chan struct{})
	recvDone := make(chan error, 1)
	go func() { recvDone <- s.receive(r.rx, r.probes[len(r.probes)-1], stopRecv) }()

	// each sender walks its own part of the shard, at its share of the rate
	var wg sync.WaitGroup
	errs := make([]error, len(r.txs))
	sendStart := time.Now()
	for i, tx := range r.txs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.send(sendCtx, s.walker.Split(i, len(r.txs)), tx, r.probes[i], float64(s.cfg.Rate)/float64(len(r.txs)))
		}()
	}
	wg.Wait()
	s.sum.SendSeconds = time.Since(sendStart).Seconds()
	err := errors.Join(errs...)
	if err == nil && ctx.Err() == nil {
		sleepCtx(ctx, s.cfg.Cooldown)
	}
	close(stopRecv)
	if rerr := <-recvDone; err == nil {
		err = rerr
	}
	return err
}

// send is one sender: it walks targets, builds frames into the TX ring and
// flushes each paced batch with one syscall.
func (s *scanner) send(ctx context.Context, w *target.Walker, tx frameSender, probe Probe, rate float64) error {
	// Not pinned to a thread: a locked thread that sleeps between batches
	// costs two thread hand-offs per wake-up, which at 10k pps was most of
	// the scanner's CPU time.
	probes := s.cfg.Probes
	targetRate := rate / float64(probes)
	maxBatch := max(tx.Slots()/probes, 1)
	pace := newPacer(targetRate, min(256, maxBatch))
	defer func() { s.c.sendFailures.Add(tx.Failures()) }()
	var ack *atomic.Uint64 // with a live exclusion list: the state this sender took last
	if s.cfg.Live != nil {
		ack = s.cfg.Live.register()
		defer ack.Store(senderDone) // after the last flush
	}
	for {
		n := s.claim(pace.next(ctx))
		if n == 0 {
			return tx.Flush()
		}
		// the list in force for this batch, taken after the pacer's wait
		// and before the first frame is built
		var block *target.Blocklist
		if ack != nil {
			st := s.cfg.Live.take(ack)
			if st.stop {
				return tx.Flush() // nothing of this batch was built
			}
			block = st.block
		}
		done, skipped := uint64(0), uint64(0)
		for ; done < n; done++ {
			k, ok := w.Next()
			if !ok {
				break
			}
			addr, port := s.space.At(k)
			if block != nil && block.Contains(addr) {
				skipped++
				continue
			}
			for j := 0; j < probes; j++ {
				buf, err := tx.Next()
				if err != nil {
					return err
				}
				tx.Commit(probe.Build(buf, addr, port, j))
			}
		}
		if err := tx.Flush(); err != nil {
			return err
		}
		s.c.targets.Add(done - skipped)
		s.c.sent.Add((done - skipped) * uint64(probes))
		if skipped > 0 {
			s.c.excluded.Add(skipped)
		}
		if done < n {
			return nil // the walk is over
		}
	}
}

// receive reads replies until stop is closed, then drains what is left.
func (s *scanner) receive(rx *afpacket.RX, probe Probe, stop <-chan struct{}) error {
	var pk frame.Packet
	handle := func(p *afpacket.Packet) {
		pk = frame.Packet{}
		if frame.ParseEthernet(p.Data, &pk) != nil || pk.Dst != s.env.Src {
			s.c.invalid.Add(1)
			return
		}
		r, ok := probe.Classify(&pk)
		if !ok {
			s.c.invalid.Add(1)
			return
		}
		s.emit(pk.Src, r, p.Time)
	}
	updateStats := func() {
		if packets, drops, err := rx.Stats(); err == nil {
			s.c.recvPackets.Store(packets)
			s.c.recvDrops.Store(drops)
		}
	}
	lastStats := time.Now()
	for {
		select {
		case <-stop:
			// a block is handed over when full or after its timeout: wait
			// past that once more, then stop at the first empty read
			for {
				n, err := rx.Read(2*rxRetire, handle)
				if err != nil || n == 0 {
					updateStats()
					return err
				}
			}
		default:
		}
		if _, err := rx.Read(250*time.Millisecond, handle); err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		if time.Since(lastStats) > 250*time.Millisecond {
			updateStats()
			lastStats = time.Now()
		}
	}
}
