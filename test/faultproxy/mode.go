package faultproxy

import (
	"fmt"
	"time"
)

// Kind is what a Mode does to the link.
type Kind int

// The kinds of fault. Each has a constructor (Pass, Down, ...) that fills
// the Mode fields it uses.
const (
	KindPass     Kind = iota // forward bytes unchanged
	KindDown                 // reset new connections, cut existing ones
	KindStall                // accept, forward nothing, answer nothing
	KindCorrupt              // flip bytes on their way to the client
	KindThrottle             // limit each direction to BytesPerSec
	KindLatency              // deliver each chunk Delay after it was read
	KindFlap                 // drop the link every FlapBytes toward the client
)

// Mode is one behaviour of the link. Build it with the constructors below;
// a Mode is a plain value, safe to copy and compare.
type Mode struct {
	Kind Kind
	// Rate is the probability that a byte toward the client is flipped
	// (KindCorrupt).
	Rate float64
	// Seed makes the flipped positions deterministic: connection n (counted
	// from 0 since New) flips the same byte offsets of its stream in every
	// run, however the stream is split into reads (KindCorrupt).
	Seed uint64
	// BytesPerSec is each direction's bandwidth (KindThrottle).
	BytesPerSec int64
	// Delay is added to every chunk in each direction, so a round trip
	// takes 2×Delay longer (KindLatency).
	Delay time.Duration
	// FlapBytes is how many bytes the link carries toward the client before
	// it drops: every connection is cut and the next new one is reset;
	// the one after that passes again (KindFlap).
	FlapBytes int64
	// AfterBytes delays the fault: the link passes until it has carried
	// this many bytes toward clients since SetMode (see After).
	AfterBytes int64
}

// After returns m starting only once the link has carried n bytes toward
// clients since SetMode, so that a fault can hit a transfer midway (a
// stream that stalls or is cut after its first bytes). The chunk that
// crosses n still passes.
func (m Mode) After(n int64) Mode {
	m.AfterBytes = n
	return m
}

// Pass forwards everything unchanged.
func Pass() Mode { return Mode{Kind: KindPass} }

// Down resets every new connection as soon as it is accepted and cuts (with
// a reset) every existing one: a server that went away. The listener keeps
// its port, so a dialler sees a reset right after connecting rather than
// ECONNREFUSED.
func Down() Mode { return Mode{Kind: KindDown} }

// Stall accepts connections and forwards nothing in either direction:
// bytes already read are held until the mode changes. A server that hangs.
func Stall() Mode { return Mode{Kind: KindStall} }

// Corrupt flips each byte toward the client with probability rate (XOR with
// a non-zero value), deterministically for seed. Over gRPC most flips
// land in message payloads (wrong bytes); those in frame headers end the
// connection with a protocol error, as a bad link would.
func Corrupt(rate float64, seed uint64) Mode {
	return Mode{Kind: KindCorrupt, Rate: rate, Seed: seed}
}

// Throttle limits each direction to bytesPerSec, shared by all
// connections, as one slow link would.
func Throttle(bytesPerSec int64) Mode { return Mode{Kind: KindThrottle, BytesPerSec: bytesPerSec} }

// Latency delays every chunk by d in each direction without limiting
// throughput (chunks are pipelined).
func Latency(d time.Duration) Mode { return Mode{Kind: KindLatency, Delay: d} }

// Flap drops the link every upBytes toward the client: existing
// connections are cut and the next connection is reset, then the link is
// up again. A client that reconnects sees the link come and go.
func Flap(upBytes int64) Mode { return Mode{Kind: KindFlap, FlapBytes: upBytes} }

// String names the mode and its parameters, for test and benchmark names.
func (m Mode) String() string {
	if m.AfterBytes > 0 {
		return fmt.Sprintf("%s after %dB", m.kind(), m.AfterBytes)
	}
	return m.kind()
}

func (m Mode) kind() string {
	switch m.Kind {
	case KindPass:
		return "pass"
	case KindDown:
		return "down"
	case KindStall:
		return "stall"
	case KindCorrupt:
		return fmt.Sprintf("corrupt(rate=%g,seed=%d)", m.Rate, m.Seed)
	case KindThrottle:
		return fmt.Sprintf("throttle(%dB/s)", m.BytesPerSec)
	case KindLatency:
		return fmt.Sprintf("latency(%v)", m.Delay)
	case KindFlap:
		return fmt.Sprintf("flap(%dB)", m.FlapBytes)
	}
	return fmt.Sprintf("Kind(%d)", int(m.Kind))
}
