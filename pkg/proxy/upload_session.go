package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// errPutReturned unblocks a writer whose store.Put returned before reading
// everything, which the CAS contract allows when the blob already exists.
var errPutReturned = errors.New("store put returned")

// upload is one ByteStream upload in progress: a store.Put goroutine reading
// from a pipe that successive Write streams feed. It outlives a broken
// stream so that the client can resume from committed.
type upload struct {
	name      string
	digest    digest.Digest
	pw        *io.PipeWriter
	cancel    context.CancelFunc
	committed atomic.Int64  // bytes the store has consumed
	slot      chan struct{} // held by the one stream writing to the upload
	done      chan struct{} // closed when Put returned
	err       error         // Put's result, read after done
	idle      *time.Timer   // armed while no stream holds slot
}

// uploads tracks uploads by canonical write resource name. Safe for
// concurrent use.
type uploads struct {
	mu      sync.Mutex
	byName  map[string]*upload
	timeout time.Duration
	log     *slog.Logger
}

func newUploads(timeout time.Duration, log *slog.Logger) *uploads {
	return &uploads{byName: map[string]*upload{}, timeout: timeout, log: log}
}

// get returns the upload registered under name, or nil.
func (u *uploads) get(name string) *upload {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byName[name]
}

// start registers a new upload of d under name, replacing (and aborting)
// any previous one, and starts its store.Put.
func (u *uploads) start(name string, d digest.Digest, cas store.CAS) *upload {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	up := &upload{name: name, digest: d, pw: pw, cancel: cancel,
		slot: make(chan struct{}, 1), done: make(chan struct{})}
	up.idle = time.AfterFunc(u.timeout, func() {
		u.abort(up, status.Errorf(codes.Aborted, "upload %s idle for %v", name, u.timeout))
	})
	up.idle.Stop()
	u.mu.Lock()
	old := u.byName[name]
	u.byName[name] = up
	u.mu.Unlock()
	if old != nil {
		u.abort(old, status.Error(codes.Aborted, "upload restarted from offset 0"))
	}
	go func() {
		up.err = cas.Put(ctx, d, pr)
		pr.CloseWithError(errPutReturned)
		cancel()
		close(up.done)
	}()
	return up
}

// abort stops up: nothing is stored, and later lookups miss it.
func (u *uploads) abort(up *upload, why error) {
	u.forget(up)
	up.idle.Stop()
	up.pw.CloseWithError(why)
	up.cancel()
	u.log.Debug("bytestream upload aborted", "resource", up.name, "committed", up.committed.Load(), "reason", why)
}

// forget removes up from the registry if it is still registered.
func (u *uploads) forget(up *upload) {
	u.mu.Lock()
	if u.byName[up.name] == up {
		delete(u.byName, up.name)
	}
	u.mu.Unlock()
}

// attach gives the calling stream exclusive use of up, waiting for a
// previous stream (whose break the server may not have noticed yet) to let
// go.
func (up *upload) attach(ctx context.Context) error {
	select {
	case up.slot <- struct{}{}:
		up.idle.Stop()
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// detach releases up and starts its idle timer, unless it has finished.
func (u *uploads) detach(up *upload) {
	select {
	case <-up.done:
	default:
		up.idle.Reset(u.timeout)
	}
	<-up.slot
}

// write feeds data to the store and advances committed by what it took.
func (up *upload) write(data []byte) error {
	n, err := up.pw.Write(data)
	up.committed.Add(int64(n))
	return err
}

// finish closes the pipe and waits for Put's verdict.
func (up *upload) finish(ctx context.Context) error {
	up.pw.Close()
	return up.wait(ctx)
}

// wait returns Put's result once it has returned.
func (up *upload) wait(ctx context.Context) error {
	select {
	case <-up.done:
		return up.err
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}
