package grpcservers

import (
	"container/list"
	"log/slog"
	"sync"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/disk"
)

// upload is one ByteStream upload: the bytes received so far, in a
// store.Upload of its own (in the local store's temp directory, hashed as
// they arrive). Successive Write streams (a client resuming from
// committed_size) append to it; finish_write commits it, which for the
// local store takes the file in by rename. Until then it holds no claim
// and no reservation of the whole blob in the store (only the bytes
// received count against the quota), so another writer of the same blob
// never waits for it; between streams it holds no fd either.
type upload struct {
	name   string
	digest digest.Digest
	spool  *disk.Upload  // written only by the stream holding slot
	slot   chan struct{} // held by the one stream writing to the upload
	// inflate, for a compressed upload, decodes into spool (see
	// upload_inflater.go); nil for identity.
	inflate *inflater

	// Guarded by uploads.mu.
	registered bool          // in byName: resumable, QueryWriteStatus sees it
	attached   bool          // a stream holds slot
	stored     bool          // its blob was committed
	removed    bool          // the spool file is gone
	why        error         // why it was unregistered without being stored
	idle       *list.Element // in uploads.idle while detached
	idleBytes  int64         // its bytes counted in uploads.idleBytes
	timer      *time.Timer   // aborts it once idle for uploads.timeout
}

// committed is the number of bytes received: the committed_size to report,
// in compressed bytes for a compressed upload.
func (up *upload) committed() int64 {
	if up.inflate != nil {
		return up.inflate.received.Load()
	}
	return up.spool.Size()
}

// discard stops a compressed upload's decoder and removes the spool file.
func (up *upload) discard() {
	if up.inflate != nil {
		up.inflate.close()
	}
	up.spool.Abort()
}

// uploads tracks resumable uploads by canonical write resource name and
// bounds what detached ones cost: each is aborted after timeout, and the
// longest idle is while more than maxIdle wait or their spool files hold
// more than maxIdleBytes. Safe for concurrent use.
type uploads struct {
	mu           sync.Mutex
	byName       map[string]*upload
	idle         *list.List // detached uploads, longest idle first
	idleBytes    int64      // in the spool files of idle uploads
	spooler      disk.Spooler
	timeout      time.Duration
	maxIdle      int
	maxIdleBytes int64
	log          *slog.Logger
}

func newUploads(spooler disk.Spooler, timeout time.Duration, maxIdle int, maxIdleBytes int64, log *slog.Logger) *uploads {
	return &uploads{byName: map[string]*upload{}, idle: list.New(), spooler: spooler,
		timeout: timeout, maxIdle: maxIdle, maxIdleBytes: maxIdleBytes, log: log}
}

// get returns the upload registered under name, or nil.
func (u *uploads) get(name string) *upload {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byName[name]
}

// start registers a new, empty upload of d under name, compressed with c,
// attached to the calling stream (see attach), with its spool file open.
// An upload it
// replaces is aborted; one a stream is still writing finishes or fails on
// its own without being resumable. The spooler's refusal (a full disk,
// say) is returned as it is.
func (u *uploads) start(name string, d digest.Digest, c repb.Compressor_Value) (*upload, error) {
	spool, err := u.spooler.NewUpload(d)
	if err != nil {
		return nil, err
	}
	up := &upload{name: name, digest: d, spool: spool,
		slot: make(chan struct{}, 1), registered: true, attached: true}
	if c != repb.Compressor_IDENTITY {
		up.inflate = newInflater(c, spool, d.Size)
	}
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
// go; its spool file reopens at the first write. stored reports that
// up's blob was committed meanwhile; an error, that up ended without it
// (the client should restart).
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
	return false, nil
}

// detach closes up's spool file and releases it. A registered upload
// waits, resumable, for timeout (see dropIdle); any other has its file
// removed.
func (u *uploads) detach(up *upload) {
	up.spool.Suspend()
	u.mu.Lock()
	up.attached = false
	if up.registered {
		up.idle = u.idle.PushBack(up)
		up.idleBytes = up.spool.Size()
		u.idleBytes += up.idleBytes
		up.timer.Reset(u.timeout)
	}
	remove := u.dropIdle()
	if u.removable(up) {
		remove = append(remove, up)
	}
	u.mu.Unlock()
	<-up.slot
	for _, r := range remove {
		r.discard()
	}
}

// dropIdle ends the longest idle uploads while more than maxIdle wait or
// their files hold more than maxIdleBytes (a lone upload larger than that
// is not kept either), and returns those whose files the caller must
// remove. Called with mu held.
func (u *uploads) dropIdle() (remove []*upload) {
	for u.idle.Len() > u.maxIdle || u.idleBytes > u.maxIdleBytes {
		old := u.idle.Front().Value.(*upload)
		why := status.Errorf(codes.Aborted, "bytestream: upload %s dropped: more than %d uploads wait to be resumed", old.name, u.maxIdle)
		if u.idle.Len() <= u.maxIdle {
			why = status.Errorf(codes.Aborted, "bytestream: upload %s dropped: the uploads waiting to be resumed hold more than %d bytes", old.name, u.maxIdleBytes)
		}
		if u.end(old, why) {
			remove = append(remove, old)
		}
	}
	return remove
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
		up.discard()
	}
}

// end is abort with mu held; it reports whether the caller must remove the
// spool file.
func (u *uploads) end(up *upload, why error) (remove bool) {
	if !up.registered {
		return false
	}
	u.unregister(up, why)
	u.log.Debug("bytestream upload aborted", "resource", up.name, "committed", up.committed(), "reason", why)
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
		u.idleBytes -= up.idleBytes
		up.idleBytes = 0
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
	_, err := up.spool.Write(data)
	return err
}
