package proxy

import (
	"container/list"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// upload is one ByteStream upload: the bytes received so far, in a spool
// file of its own. Successive Write streams (a client resuming from
// committed_size) append to it; finish_write hands the file to store.Put.
// Until then it holds no claim and no quota reservation in the store, so
// another writer of the same blob never waits for it; between streams it
// holds no fd either.
type upload struct {
	name      string
	digest    digest.Digest
	path      string
	slot      chan struct{} // held by the one stream writing to the upload
	f         *os.File      // open while a stream holds slot
	committed atomic.Int64  // bytes in the spool file

	// Guarded by uploads.mu.
	registered bool          // in byName: resumable, QueryWriteStatus sees it
	attached   bool          // a stream holds slot
	stored     bool          // its blob was committed
	removed    bool          // the spool file is gone
	why        error         // why it was unregistered without being stored
	idle       *list.Element // in uploads.idle while detached
	timer      *time.Timer   // aborts it once idle for uploads.timeout
}

// uploads tracks resumable uploads by canonical write resource name and
// bounds what detached ones cost: each is aborted after timeout, and past
// maxIdle the longest idle is. Safe for concurrent use.
type uploads struct {
	mu      sync.Mutex
	byName  map[string]*upload
	idle    *list.List // detached uploads, longest idle first
	dir     string
	timeout time.Duration
	maxIdle int
	log     *slog.Logger
}

func newUploads(dir string, timeout time.Duration, maxIdle int, log *slog.Logger) *uploads {
	return &uploads{byName: map[string]*upload{}, idle: list.New(), dir: dir,
		timeout: timeout, maxIdle: maxIdle, log: log}
}

// get returns the upload registered under name, or nil.
func (u *uploads) get(name string) *upload {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byName[name]
}

// start registers a new, empty upload of d under name, attached to the
// calling stream (see attach), with its spool file open. An upload it
// replaces is aborted; one a stream is still writing finishes or fails on
// its own without being resumable.
func (u *uploads) start(name string, d digest.Digest) (*upload, error) {
	f, err := os.CreateTemp(u.dir, "upload-")
	if err != nil {
		return nil, status.Errorf(codes.Internal, "bytestream: create spool file for %s: %v", name, err)
	}
	up := &upload{name: name, digest: d, path: f.Name(), f: f,
		slot: make(chan struct{}, 1), registered: true, attached: true}
	up.slot <- struct{}{}
	up.timer = time.AfterFunc(u.timeout, func() {
		u.abort(up, status.Errorf(codes.Aborted, "bytestream: upload %s idle for %v; restart it", name, u.timeout))
	})
	up.timer.Stop()
	u.mu.Lock()
	old := u.byName[name]
	u.byName[name] = up
	u.mu.Unlock()
	if old != nil {
		u.abort(old, status.Errorf(codes.Aborted, "bytestream: upload %s restarted from offset 0", name))
	}
	return up, nil
}

// attach gives the calling stream exclusive use of up, waiting for a
// previous stream (whose break the server may not have noticed yet) to let
// go, and opens its spool file. stored reports that up's blob was committed
// meanwhile; an error, that up ended without it (the client should restart).
func (u *uploads) attach(up *upload, done <-chan struct{}) (stored bool, err error) {
	select {
	case up.slot <- struct{}{}:
	case <-done:
		return false, status.Errorf(codes.Canceled, "bytestream: stream ended waiting for upload %s", up.name)
	}
	u.mu.Lock()
	if !up.registered {
		stored, why := up.stored, up.why
		u.mu.Unlock()
		<-up.slot
		return stored, why
	}
	up.attached = true
	u.unidle(up)
	u.mu.Unlock()
	f, err := os.OpenFile(up.path, os.O_RDWR, 0)
	if err != nil {
		err = status.Errorf(codes.Internal, "bytestream: reopen spool file of %s: %v", up.name, err)
		u.abort(up, err)
		u.detach(up)
		return false, err
	}
	up.f = f
	return false, nil
}

// detach closes up's spool file and releases it. A registered upload
// waits, resumable, for timeout (dropping the longest idle past maxIdle);
// any other has its file removed.
func (u *uploads) detach(up *upload) {
	if up.f != nil {
		_ = up.f.Close()
		up.f = nil
	}
	var remove []*upload
	u.mu.Lock()
	up.attached = false
	if up.registered {
		up.idle = u.idle.PushBack(up)
		up.timer.Reset(u.timeout)
	}
	for u.idle.Len() > u.maxIdle {
		old := u.idle.Front().Value.(*upload)
		if u.end(old, status.Errorf(codes.Aborted, "bytestream: upload %s dropped: more than %d uploads wait to be resumed", old.name, u.maxIdle)) {
			remove = append(remove, old)
		}
	}
	if u.removable(up) {
		remove = append(remove, up)
	}
	u.mu.Unlock()
	<-up.slot
	for _, r := range remove {
		_ = os.Remove(r.path)
	}
}

// stored marks up's blob committed: streams waiting for up succeed.
func (u *uploads) stored(up *upload) {
	u.mu.Lock()
	up.stored = true
	u.unregister(up, nil)
	u.mu.Unlock()
}

// abort ends up without storing anything; its spool file goes now, or when
// the stream writing it lets go.
func (u *uploads) abort(up *upload, why error) {
	u.mu.Lock()
	remove := u.end(up, why)
	u.mu.Unlock()
	if remove {
		_ = os.Remove(up.path)
	}
}

// end is abort with mu held; it reports whether the caller must remove the
// spool file.
func (u *uploads) end(up *upload, why error) (remove bool) {
	if !up.registered {
		return false
	}
	u.unregister(up, why)
	u.log.Debug("bytestream upload aborted", "resource", up.name, "committed", up.committed.Load(), "reason", why)
	return u.removable(up)
}

// unregister makes up unresumable. Called with mu held.
func (u *uploads) unregister(up *upload, why error) {
	if u.byName[up.name] == up {
		delete(u.byName, up.name)
	}
	up.registered, up.why = false, why
	up.timer.Stop()
	u.unidle(up)
}

// unidle takes up off the idle list. Called with mu held.
func (u *uploads) unidle(up *upload) {
	if up.idle != nil {
		u.idle.Remove(up.idle)
		up.idle = nil
		up.timer.Stop()
	}
}

// removable reports, once, that up's spool file is no longer needed.
// Called with mu held.
func (u *uploads) removable(up *upload) bool {
	if up.registered || up.attached || up.removed {
		return false
	}
	up.removed = true
	return true
}

// write appends data at committed. Called by the stream holding slot.
func (up *upload) write(data []byte) error {
	n, err := up.f.WriteAt(data, up.committed.Load())
	up.committed.Add(int64(n))
	if err != nil {
		return status.Errorf(codes.Internal, "bytestream: write spool file of %s: %v", up.name, err)
	}
	return nil
}

// reader reads the whole spool file back. Called by the stream holding slot.
func (up *upload) reader() io.Reader {
	return io.NewSectionReader(up.f, 0, up.digest.Size)
}
