package localexec

import (
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/store"
)

// Options configure a Runner. The zero value is usable.
type Options struct {
	// Jobs is the most actions run at once; further Runs queue in FIFO
	// order. Default: runtime.NumCPU().
	Jobs int
	// Sandbox is "none" (default) or "bwrap"; see the package doc.
	Sandbox string
	// WorkDir holds one staging directory per running action. Default:
	// os.TempDir()/castd-exec. Created if missing.
	WorkDir string
	// DefaultTimeout applies to actions that set no timeout; 0 means none.
	DefaultTimeout time.Duration
	// Logger receives one debug line per action. Default: slog.Default().
	Logger *slog.Logger
	// WorkerName is reported as ExecutedActionMetadata.worker. Default:
	// the host name.
	WorkerName string
	// Clock is the clock for the metadata timestamps. Default: the wall
	// clock.
	Clock clock.Clock
}

// Runner runs actions locally against one CAS. It is safe for concurrent
// use; every Run gets its own staging directory.
type Runner struct {
	cas     store.CAS
	opts    Options
	bwrap   string // path of the bwrap binary when sandboxing
	sem     *semaphore.Weighted
	queued  atomic.Int64
	running atomic.Int64
}

// New returns a Runner that reads inputs from and writes outputs to cas. It
// fails if the sandbox is unknown or bwrap is not installed, or WorkDir
// cannot be created.
func New(cas store.CAS, opts Options) (*Runner, error) {
	if opts.Jobs <= 0 {
		opts.Jobs = runtime.NumCPU()
	}
	if opts.WorkDir == "" {
		opts.WorkDir = filepath.Join(os.TempDir(), "castd-exec")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Clock = clock.OrReal(opts.Clock)
	if opts.WorkerName == "" {
		opts.WorkerName, _ = os.Hostname()
	}
	r := &Runner{cas: cas, opts: opts, sem: semaphore.NewWeighted(int64(opts.Jobs))}
	switch opts.Sandbox {
	case "", "none":
	case "bwrap":
		p, err := exec.LookPath("bwrap")
		if err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "sandbox bwrap: %v (install Debian's bubblewrap)", err)
		}
		r.bwrap = p
	default:
		return nil, grpcerr.InvalidArgument("sandbox", "%q is not one of none, bwrap", opts.Sandbox)
	}
	abs, err := filepath.Abs(opts.WorkDir)
	if err == nil {
		err = os.MkdirAll(abs, 0o700)
	}
	if err != nil {
		return nil, internalf(err, "work directory %s", opts.WorkDir)
	}
	r.opts.WorkDir = abs
	return r, nil
}

// Queued returns how many Runs are waiting for a job slot.
func (r *Runner) Queued() int { return int(r.queued.Load()) }

// Running returns how many Runs hold a job slot.
func (r *Runner) Running() int { return int(r.running.Load()) }

// removeStage deletes a staging directory even if the action removed write
// permission from directories in it.
func (r *Runner) removeStage(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		r.opts.Logger.Error("localexec: cannot remove staging directory", "dir", dir, "err", err)
	}
}
