package fanout

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
)

// maxFlightAttempts bounds how often one caller joins a new fetch after
// the one it waited on failed.
const maxFlightAttempts = 3

// flightGroup merges concurrent fetches of one digest into one, like
// singleflight, but context-aware: the fetch runs on a context detached from
// every caller, each caller may stop waiting when its own context ends, and
// the fetch is cancelled only when no caller is left waiting. A caller that
// joined a fetch someone else started retries when that fetch failed with
// anything but NOT_FOUND (the fetch's failure, e.g. a local write error, is
// not the joiner's); the caller that started it gets its error. Safe for
// concurrent use.
type flightGroup struct {
	mu      sync.Mutex
	flights map[digest.Digest]*flight
}

// flight is one fetch in progress. err is set before done is closed.
type flight struct {
	done    chan struct{}
	err     error
	waiters int // guarded by flightGroup.mu
	cancel  context.CancelFunc
}

func newFlightGroup() *flightGroup {
	return &flightGroup{flights: map[digest.Digest]*flight{}}
}

// do runs fetch for d unless one is already running, and waits for it.
func (g *flightGroup) do(ctx context.Context, d digest.Digest, fetch func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		if err := grpcerr.CallerGone(ctx); err != nil {
			return err
		}
		fl, leader := g.join(ctx, d, fetch)
		err := g.wait(ctx, d, fl)
		if err == nil || leader || ctx.Err() != nil || status.Code(err) == codes.NotFound || attempt == maxFlightAttempts {
			return err
		}
	}
}

// join returns the running flight for d, or starts one and reports that
// the caller leads it.
func (g *flightGroup) join(ctx context.Context, d digest.Digest, fetch func(context.Context) error) (*flight, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fl, ok := g.flights[d]; ok {
		fl.waiters++
		return fl, false
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fl := &flight{done: make(chan struct{}), waiters: 1, cancel: cancel}
	g.flights[d] = fl
	go g.run(fctx, d, fl, fetch)
	return fl, true
}

func (g *flightGroup) run(ctx context.Context, d digest.Digest, fl *flight, fetch func(context.Context) error) {
	g.finish(d, fl, fetch(ctx))
}

// claim makes the caller the fetcher of d, like join, but runs nothing:
// a caller that leads (true) fetches d itself, on its own context, and
// must finish the flight. Used by batch reads, which fetch many digests
// with one call per remote. Waiters that give up cannot cancel a claimed
// fetch.
func (g *flightGroup) claim(d digest.Digest) (*flight, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fl, ok := g.flights[d]; ok {
		fl.waiters++
		return fl, false
	}
	fl := &flight{done: make(chan struct{}), waiters: 1, cancel: func() {}}
	g.flights[d] = fl
	return fl, true
}

// finish ends fl with err and wakes its waiters.
func (g *flightGroup) finish(d digest.Digest, fl *flight, err error) {
	g.mu.Lock()
	if g.flights[d] == fl {
		delete(g.flights, d)
	}
	fl.err = err
	g.mu.Unlock()
	fl.cancel()
	close(fl.done)
}

// wait returns fl's result, or the caller's cancellation; the last caller
// to give up cancels the fetch.
func (g *flightGroup) wait(ctx context.Context, d digest.Digest, fl *flight) error {
	select {
	case <-fl.done:
		return fl.err
	case <-ctx.Done():
	}
	g.leave(d, fl, true)
	return grpcerr.CallerGone(ctx)
}

// leave gives up one caller's place in fl. With cancel, the last caller
// to leave cancels the fetch; without (a caller that has had what it
// needs), the fetch runs to its end.
func (g *flightGroup) leave(d digest.Digest, fl *flight, cancel bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fl.waiters--
	if fl.waiters == 0 && cancel {
		fl.cancel()
		if g.flights[d] == fl {
			delete(g.flights, d)
		}
	}
}

// waiting reports how many callers wait on the fetch of d (for tests).
func (g *flightGroup) waiting(d digest.Digest) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if fl, ok := g.flights[d]; ok {
		return fl.waiters
	}
	return 0
}
