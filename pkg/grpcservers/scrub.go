package grpcservers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	castdpb "github.com/castd/castd/api/castd/v1"
	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/promreg"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

// Fanouts is what a Scrubber refetches through: the instance names served
// and each one's read fan-out. *proxy.Set implements it.
type Fanouts interface {
	Instances() []string
	CAS(ctx context.Context, instanceName string) (store.CAS, error)
}

// ScrubberOptions configures NewScrubber. The zero value is usable.
type ScrubberOptions struct {
	// Logger receives one line per scrub and per failed refetch; nil
	// discards.
	Logger *slog.Logger
	// Registerer, when set, receives castd_scrub_refetched_total.
	Registerer prometheus.Registerer
	// Clock times the background loop; nil means the wall clock.
	Clock clock.Clock
}

// ScrubResult is the outcome of one Scrubber.Run.
type ScrubResult struct {
	disk.ScrubReport
	Refetched int64 // bad blobs fetched again from a remote
	Took      time.Duration
}

// Scrubber verifies the local store (disk.Store.Scrub) and fetches the
// blobs it deleted again through the fan-outs, so that a corrupt copy is
// replaced before a client asks for it. One scrub runs at a time. Safe for
// concurrent use.
type Scrubber struct {
	local     *disk.Store
	fanouts   Fanouts
	log       *slog.Logger
	clock     clock.Clock
	refetched prometheus.Counter
	running   chan struct{} // holds a token while a scrub runs
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// NewScrubber returns a Scrubber of local refetching through fanouts.
func NewScrubber(local *disk.Store, fanouts Fanouts, opts ScrubberOptions) *Scrubber {
	s := &Scrubber{
		local: local, fanouts: fanouts, log: opts.Logger, clock: clock.OrReal(opts.Clock),
		running: make(chan struct{}, 1),
		refetched: promreg.Register(opts.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "castd_scrub_refetched_total",
			Help: "Blobs a scrub found corrupt and fetched again from a remote.",
		})),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Run scrubs the store once at bytesPerSecond (0: unbounded), then
// refetches what it deleted. It fails with FAILED_PRECONDITION at once if
// another scrub is running, and with the context's error (and the counts
// so far) when ctx ends.
func (s *Scrubber) Run(ctx context.Context, bytesPerSecond int64) (ScrubResult, error) {
	select {
	case s.running <- struct{}{}:
	default:
		return ScrubResult{}, status.Error(codes.FailedPrecondition, "scrub: another scrub is running; try again when it is over")
	}
	defer func() { <-s.running }()
	start := time.Now()
	rep, err := s.local.Scrub(ctx, disk.ScrubOptions{BytesPerSecond: bytesPerSecond})
	res := ScrubResult{ScrubReport: rep}
	for _, d := range rep.Deleted {
		if ctx.Err() != nil {
			break
		}
		if s.refetch(ctx, d) {
			res.Refetched++
			s.refetched.Inc()
		}
	}
	res.Took = time.Since(start)
	s.log.Info("scrub: done", "checked", res.Checked, "bytes", res.CheckedBytes, "bad", res.Corrupt,
		"refetched", res.Refetched, "errors", res.Errors, "took", res.Took)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return res, status.FromContextError(err).Err()
	}
	return res, nil
}

// refetch fetches d into the local store through the first fan-out that
// has it: a read at offset d.Size makes the fan-out fetch (and verify and
// store) the blob without streaming any of it here. Instance "" (the
// user's remotes) comes first, then the projects' in name order.
func (s *Scrubber) refetch(ctx context.Context, d digest.Digest) bool {
	for _, name := range s.fanouts.Instances() {
		cas, err := s.fanouts.CAS(ctx, name)
		if err != nil {
			continue
		}
		rc, err := cas.Get(ctx, d, d.Size)
		if err == nil {
			_ = rc.Close()
			return true
		}
		if status.Code(err) != codes.NotFound {
			s.log.Warn("scrub: refetching a corrupt blob failed", "digest", d.String(), "instance", name, "err", err)
		}
	}
	return false
}

// Start runs a scrub at bytesPerSecond every interval (the first one an
// interval after Start) until Stop. A failed or skipped scrub waits for
// the next interval.
func (s *Scrubber) Start(interval time.Duration, bytesPerSecond int64) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			if !s.wait(ctx, interval) {
				return
			}
			if _, err := s.Run(ctx, bytesPerSecond); err != nil && ctx.Err() == nil {
				s.log.Warn("scrub: background scrub failed", "err", err)
			}
		}
	}()
}

// wait waits for interval on the clock; false means ctx ended first.
func (s *Scrubber) wait(ctx context.Context, interval time.Duration) bool {
	due, t := clock.After(s.clock, interval)
	defer t.Stop()
	select {
	case <-due:
		return true
	case <-ctx.Done():
		return false
	}
}

// Stop ends the background scrub started by Start, interrupting a scrub in
// progress, and waits for it. Call it before the store is closed; a no-op
// without Start.
func (s *Scrubber) Stop() {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
}

// Scrub implements castd.v1.Control/Scrub.
func (s *Server) Scrub(ctx context.Context, req *castdpb.ScrubRequest) (*castdpb.ScrubResponse, error) {
	if s.info.Scrubber == nil {
		return nil, status.Error(codes.Unimplemented, "scrub: this castd has no scrubber")
	}
	if req.GetBytesPerSecond() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "scrub: bytes_per_second %d is negative", req.GetBytesPerSecond())
	}
	res, err := s.info.Scrubber.Run(ctx, req.GetBytesPerSecond())
	if err != nil {
		return nil, err
	}
	return &castdpb.ScrubResponse{
		Checked: res.Checked, CheckedBytes: res.CheckedBytes, Bad: res.Corrupt,
		Refetched: res.Refetched, Errors: res.Errors, Took: durationpb.New(res.Took),
	}, nil
}
