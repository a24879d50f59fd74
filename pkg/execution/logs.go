package execution

import (
	"context"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// Log stream names are the operation's name followed by one of these.
const (
	stdoutSuffix = "/streams/stdout"
	stderrSuffix = "/streams/stderr"
)

// Complete log streams answer reads for logRetention after their run ended,
// while all of them together hold at most maxRetainedLogBytes; the oldest
// go first.
const (
	logRetention        = time.Minute
	maxRetainedLogBytes = 64 << 20
)

// StreamingRunner is a Runner that also hands out a command's stdout and
// stderr while it runs; *localexec.Runner implements it. With one, locally
// run operations publish log streams (see the package doc).
type StreamingRunner interface {
	RunStreaming(ctx context.Context, a *repb.Action, stdout, stderr io.Writer) (*repb.ActionResult, error)
}

// FunctionRunner is a StreamingRunner for actions of any digest function:
// RunIn reads every digest of the Action and below it as fn's and computes
// every digest of the result with fn; *localexec.Runner implements it. A
// Runner that is not one is given SHA-256 actions only (others fail with
// FAILED_PRECONDITION naming the function).
type FunctionRunner interface {
	RunIn(ctx context.Context, fn digest.Function, a *repb.Action, stdout, stderr io.Writer) (*repb.ActionResult, error)
}

// OpenLog implements proxy.LogStreams: it returns a reader of the log
// stream called name from byte offset on, which blocks for new data until
// the run ends and then returns io.EOF. isLog is false when name is not
// shaped like a log stream name (the caller then reads it as a blob); an
// unknown or expired stream is NOT_FOUND. Safe for concurrent use.
func (s *Server) OpenLog(name string, offset int64) (r io.ReadCloser, isLog bool, err error) {
	if !isLogName(name) {
		return nil, false, nil
	}
	l := s.logs.get(name)
	if l == nil {
		return nil, true, status.Errorf(codes.NotFound, "log stream %q is unknown or ended too long ago", name)
	}
	r, err = l.reader(offset)
	return r, true, err
}

// isLogName reports whether name is "{operation name}/streams/std{out,err}"
// for an operation name ending in "operations/{id}".
func isLogName(name string) bool {
	op, ok := strings.CutSuffix(name, stdoutSuffix)
	if !ok {
		op, ok = strings.CutSuffix(name, stderrSuffix)
	}
	return ok && path.Base(path.Dir(op)) == "operations"
}

// runAction runs j's action locally, in its digest function. When the
// Runner can stream, o publishes stdout and stderr log streams for the
// duration of the run; they are complete (closed) before runAction returns.
func (s *Server) runAction(ctx context.Context, o *operation, j *job) (*repb.ActionResult, error) {
	fr, anyFunc := s.cfg.Runner.(FunctionRunner)
	sr, streams := s.cfg.Runner.(StreamingRunner)
	switch {
	case !anyFunc && j.digest.Func != digest.SHA256:
		return nil, status.Errorf(codes.FailedPrecondition, "execution: the local runner runs only sha256 actions, not %s", j.digest.Func)
	case !anyFunc && !streams:
		return s.cfg.Runner.Run(ctx, j.action)
	}
	stdout, stderr := s.logs.create(o.name+stdoutSuffix), s.logs.create(o.name+stderrSuffix)
	defer s.logs.close(stdout, stderr)
	o.setStreams(stdout.name, stderr.name)
	if anyFunc {
		return fr.RunIn(ctx, j.digest.Func, j.action, stdout, stderr)
	}
	return sr.RunStreaming(ctx, j.action, stdout, stderr)
}

// logRegistry indexes log streams by name: live ones, and complete ones
// for a while (see logRetention). Safe for concurrent use.
type logRegistry struct {
	now func() time.Time

	mu          sync.Mutex
	byName      map[string]*logStream
	closed      []*logStream // in closing order, oldest first
	closedBytes int64
}

func newLogRegistry(now func() time.Time) *logRegistry {
	return &logRegistry{now: now, byName: map[string]*logStream{}}
}

// create registers a new live stream called name.
func (r *logRegistry) create(name string) *logStream {
	l := newLogStream(name, MaxLogStreamBytes)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byName[name] = l
	return l
}

// get returns the stream called name, or nil.
func (r *logRegistry) get(name string) *logStream {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prune()
	return r.byName[name]
}

// close completes streams and keeps them for late readers.
func (r *logRegistry) close(streams ...*logStream) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range streams {
		l.close(now)
		r.closed = append(r.closed, l)
		r.closedBytes += int64(l.size())
	}
	r.prune()
}

// prune forgets complete streams past retention or beyond the byte bound.
func (r *logRegistry) prune() {
	cutoff := r.now().Add(-logRetention)
	n := 0
	for ; n < len(r.closed); n++ {
		l := r.closed[n]
		if r.closedBytes <= maxRetainedLogBytes && !l.closedAt.Before(cutoff) {
			break
		}
		delete(r.byName, l.name)
		r.closedBytes -= int64(l.size())
		r.closed[n] = nil
	}
	r.closed = r.closed[n:]
}
