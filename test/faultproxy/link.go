package faultproxy

import (
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// link is one client connection and its connection to the target, with a
// pump per direction.
type link struct {
	p              *Proxy
	id             uint64
	client, server *net.TCPConn
	done           chan struct{} // closed by cut
	cutOnce        sync.Once

	// Corrupt state of the toClient direction, touched only by its pump.
	rng      *rand.Rand
	pos      int64 // bytes carried toward the client in Corrupt mode
	nextFlip int64 // offset of the next byte to flip
}

// chunk is bytes read from one side, stamped with when they were read.
type chunk struct {
	data []byte
	at   time.Time
}

// run forwards both directions until both ended or the link was cut, then
// closes both connections.
func (l *link) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pump(toServer, l.client, l.server) }()
	go func() { defer wg.Done(); l.pump(toClient, l.server, l.client) }()
	wg.Wait()
	_ = l.client.Close()
	_ = l.server.Close()
}

// cut resets the client, closes the target side and stops both pumps;
// counted says it is a fault to count in Stats.Cut (not a peer gone).
// Cutting a link again does nothing.
func (l *link) cut(counted bool) {
	l.cutOnce.Do(func() {
		if counted {
			l.p.count(func(st *Stats) { st.Cut++ })
		}
		close(l.done)
		reset(l.client)
		_ = l.server.Close()
	})
}

// pump reads src in one goroutine and delivers to dst in this one, so that
// reading goes on while delivery waits (Latency pipelines, Stall holds).
// An orderly end of src is passed on as a half-close of dst.
func (l *link) pump(dir int, src, dst *net.TCPConn) {
	chunks := make(chan chunk, 16)
	go l.read(src, chunks)
	for c := range chunks {
		if err := l.deliver(dir, c, dst); err != nil {
			l.cut(false)
			for range chunks { // let the reader finish
			}
			return
		}
	}
	_ = dst.CloseWrite()
}

// read sends what src carries to chunks until src ends or the link is cut.
func (l *link) read(src *net.TCPConn, chunks chan<- chunk) {
	defer close(chunks)
	for {
		buf := make([]byte, chunkSize)
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case chunks <- chunk{data: buf[:n], at: time.Now()}:
			case <-l.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// deliver writes c to dst as the current mode says, re-reading the mode
// whenever it changes while c waits.
func (l *link) deliver(dir int, c chunk, dst *net.TCPConn) error {
	data := c.data
	held := false
	for len(data) > 0 {
		m, changed := l.p.current()
		n := len(data)
		switch m.Kind {
		case KindDown:
			return errCut
		case KindStall:
			if !held {
				held = true
				l.p.count(func(st *Stats) { st.Held++ })
			}
			if !l.wait(changed, time.Time{}) {
				return errCut
			}
			continue
		case KindLatency:
			if due := c.at.Add(m.Delay); time.Now().Before(due) {
				if !l.wait(changed, due) {
					return errCut
				}
				continue
			}
		case KindThrottle:
			n = min(n, sliceSize(m.BytesPerSec))
			if !l.wait(changed, l.p.pacers[dir].book(n, m.BytesPerSec)) {
				return errCut
			}
		case KindCorrupt:
			if dir == toClient {
				l.corrupt(data, m)
			}
		}
		drop := l.p.forwarding(dir, n, m)
		if _, err := dst.Write(data[:n]); err != nil {
			return err
		}
		if drop {
			l.p.drop()
		}
		data = data[n:]
	}
	return nil
}

// wait blocks until the mode changes or until (when not zero) passes, and
// reports false if the link was cut meanwhile.
func (l *link) wait(changed <-chan struct{}, until time.Time) bool {
	var timeout <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-changed:
	case <-timeout:
	case <-l.done:
		return false
	}
	return true
}

// corrupt flips the bytes of data (the next part of the stream toward the
// client) that fall on this link's flip offsets for m.
func (l *link) corrupt(data []byte, m Mode) {
	if m.Rate <= 0 {
		return
	}
	if l.rng == nil {
		l.rng = rand.New(rand.NewPCG(m.Seed, l.id))
		l.nextFlip = l.gap(m.Rate)
	}
	end := l.pos + int64(len(data))
	flipped := int64(0)
	for ; l.nextFlip < end; l.nextFlip += 1 + l.gap(m.Rate) {
		data[l.nextFlip-l.pos] ^= byte(1 + l.rng.IntN(255))
		flipped++
	}
	l.pos = end
	if flipped > 0 {
		l.p.count(func(st *Stats) { st.Flipped += flipped })
	}
}

// gap is how many bytes pass unflipped before the next flip: geometric
// with mean 1/rate.
func (l *link) gap(rate float64) int64 { return int64(l.rng.ExpFloat64() / rate) }

// pacer books bytes on one direction of the throttled link.
type pacer struct {
	mu   sync.Mutex
	next time.Time // when the bytes booked so far have passed
}

// book reserves n bytes at rate bytes/s and returns when they will have
// passed; the caller sends them then. A sender woken late keeps up to one
// slice of the time it lost (else every timer's lateness would come off
// the rate: a 40 MB/s link carried 26), so an idle link earns a burst of
// one slice at most.
func (pc *pacer) book(n int, rate int64) time.Time {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	slack := time.Duration(int64(sliceSize(rate)) * int64(time.Second) / max(rate, 1))
	if floor := time.Now().Add(-slack); pc.next.Before(floor) {
		pc.next = floor
	}
	pc.next = pc.next.Add(time.Duration(int64(n) * int64(time.Second) / max(rate, 1)))
	return pc.next
}

// sliceSize is how many bytes a throttled write sends at once: about 20 ms
// worth, so that the rate holds over short spans too.
func sliceSize(rate int64) int { return int(max(1, min(rate/50, chunkSize))) }
