// Package faultproxy is a TCP proxy for tests that stands between clients
// and one server and misbehaves on demand: it passes bytes, refuses
// connections, stalls, corrupts, throttles, delays or flaps the link. The
// mode is switched at run time and applies to connections already open
// where that has a meaning (Down cuts them, Stall holds their bytes, the
// others change how the next chunk is delivered).
//
// It knows nothing of the protocol it carries: faults are applied to raw
// TCP bytes, as a bad link or a broken server would apply them.
package faultproxy

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Directions of a link, indexing per-direction state.
const (
	toServer = iota
	toClient
)

// chunkSize is the most one read takes from a connection.
const chunkSize = 32 << 10

// Stats counts what the proxy did, so that a test can check that the fault
// it asked for really happened.
type Stats struct {
	Accepted int64 // connections forwarded to the target
	Reset    int64 // new connections reset (Down, Flap, or the target refused)
	Cut      int64 // established connections cut by Down, Flap or Close
	Held     int64 // chunks Stall held (counted when each starts waiting)
	Flipped  int64 // bytes flipped by Corrupt
	ToClient int64 // bytes forwarded toward clients (counted as each write starts)
	ToServer int64 // bytes forwarded toward the target
}

// Proxy listens on a loopback port and forwards each connection to its
// target according to the current Mode. Safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	pacers [2]pacer // one per direction, shared by all links (Throttle)
	wg     sync.WaitGroup

	mu       sync.Mutex
	mode     Mode
	changed  chan struct{} // closed and replaced by every SetMode
	links    map[*link]struct{}
	nextID   uint64 // id of the next forwarded connection
	refuse   int    // new connections still to reset (Flap)
	flapSent int64  // bytes toward clients since the last drop (Flap)
	sinceSet int64  // bytes toward clients since SetMode (Mode.After)
	closed   bool
	stats    Stats
}

// New starts a proxy in Pass mode on 127.0.0.1 at a free port, forwarding
// to target (HOST:PORT). Close stops it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, mode: Pass(), changed: make(chan struct{}), links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the HOST:PORT clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetMode switches the link's behaviour for new and existing connections.
// Switching to Down cuts every open connection; any switch releases bytes
// a Stall held (to be delivered, or dropped, by the new mode) and starts a
// Flap count afresh.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
	p.refuse, p.flapSent, p.sinceSet = 0, 0, 0
	var cut []*link
	if p.effective().Kind == KindDown {
		cut = p.openLinks()
	}
	p.mu.Unlock()
	p.cutAll(cut)
}

// Mode is the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Stats is a snapshot of the counters since New.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Close stops listening, cuts every connection and waits for the proxy's
// goroutines to end. Calling it again does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := p.openLinks()
	p.mu.Unlock()
	err := p.ln.Close()
	p.cutAll(links)
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(c.(*net.TCPConn))
	}
}

// handle resets c or connects it to the target and forwards until either
// side closes or the link is cut.
func (p *Proxy) handle(c *net.TCPConn) {
	defer p.wg.Done()
	id, ok := p.admit()
	if !ok {
		reset(c)
		return
	}
	s, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		p.count(func(st *Stats) { st.Reset++ })
		reset(c)
		return
	}
	l := &link{p: p, id: id, client: c, server: s.(*net.TCPConn), done: make(chan struct{})}
	if !p.register(l) {
		l.cut(false)
		return
	}
	l.run()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// admit decides whether a new connection is forwarded and numbers it.
func (p *Proxy) admit() (id uint64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.effective().Kind == KindDown || p.refuse > 0 {
		if p.refuse > 0 {
			p.refuse--
		}
		p.stats.Reset++
		return 0, false
	}
	id = p.nextID
	p.nextID++
	return id, true
}

// register adds l to the open links unless the mode went Down (or the
// proxy closed) while its target was being dialled.
func (p *Proxy) register(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.effective().Kind == KindDown {
		p.stats.Reset++
		return false
	}
	p.links[l] = struct{}{}
	p.stats.Accepted++
	return true
}

// openLinks lists the open links; p.mu must be held.
func (p *Proxy) openLinks() []*link {
	out := make([]*link, 0, len(p.links))
	for l := range p.links {
		out = append(out, l)
	}
	return out
}

// cutAll cuts links, counting each in Stats.Cut before its client sees it.
func (p *Proxy) cutAll(links []*link) {
	for _, l := range links {
		l.cut(true)
	}
}

// current is the mode in effect and the channel closed by the next SetMode.
func (p *Proxy) current() (Mode, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.effective(), p.changed
}

// effective is the mode in effect: Pass while a delayed fault waits for
// its bytes (Mode.After), else the mode set. p.mu must be held.
func (p *Proxy) effective() Mode {
	if p.sinceSet < p.mode.AfterBytes {
		return Pass()
	}
	return p.mode
}

func (p *Proxy) count(f func(*Stats)) {
	p.mu.Lock()
	f(&p.stats)
	p.mu.Unlock()
}

// forwarding accounts n bytes about to be written in direction dir and
// reports whether every link must drop once they are written: in Flap
// mode when the budget is spent (the next new connection is reset from
// now on), and when these bytes start a delayed Down. Counting before the
// write keeps Stats ahead of what a client can observe.
func (p *Proxy) forwarding(dir int, n int, m Mode) (drop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if dir == toServer {
		p.stats.ToServer += int64(n)
		return false
	}
	p.stats.ToClient += int64(n)
	before := p.sinceSet
	p.sinceSet += int64(n)
	if p.mode.Kind == KindDown && before < p.mode.AfterBytes && p.sinceSet >= p.mode.AfterBytes {
		return true
	}
	if m.Kind != KindFlap || p.mode != m {
		return false
	}
	if p.flapSent += int64(n); p.flapSent < m.FlapBytes {
		return false
	}
	p.flapSent, p.refuse = 0, 1
	return true
}

// drop cuts every open link (Flap, or a delayed Down starting).
func (p *Proxy) drop() {
	p.mu.Lock()
	links := p.openLinks()
	p.mu.Unlock()
	p.cutAll(links)
}

// reset closes c with a TCP reset rather than an orderly FIN.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// errCut ends a direction whose link was cut.
var errCut = errors.New("faultproxy: link cut")
