package fanout

import (
	"context"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/disk"
)

// repairingReader serves a local hit and survives a corrupt local copy. The
// local store checks a file blob chunk by chunk before handing bytes out
// and, at the first bad chunk, deletes the blob and fails the Read with
// DATA_LOSS, every byte served so far being good (store.PrefixVerified).
// The reader then fetches the blob again exactly as a miss would
// (getTeeing: the first remote in pull order that has it, its bytes hashed
// against the digest as they are stored, so the whole blob is verified and
// the local copy repaired), skips what the client already has and goes on
// at the same offset. A client therefore never sees the local damage while
// a remote has the blob. Any other error, including the DATA_LOSS of a
// file stored before chunk sums (found only after its bytes went out, so
// possibly bad ones), is passed on unrepaired.
//
// If no remote has it, the client gets NOT_FOUND when nothing was served
// yet (the blob is gone everywhere reachable: a plain miss, which a client
// like Bazel answers by rebuilding) and DATA_LOSS once bytes went out (a
// miss cannot be reported mid-stream). Not safe for concurrent use, like
// any reader.
type repairingReader struct {
	c        *fanoutCAS
	ctx      context.Context
	d        digest.Digest
	rc       io.ReadCloser
	start    int64 // offset the client asked for
	pos      int64 // offset of the next byte to serve
	repaired bool  // a second failure is not repaired again
}

func (c *fanoutCAS) repairing(ctx context.Context, d digest.Digest, offset int64, rc io.ReadCloser) io.ReadCloser {
	return &repairingReader{c: c, ctx: ctx, d: d, rc: rc, start: offset, pos: offset}
}

func (r *repairingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.pos += int64(n)
	if err == nil || err == io.EOF || !disk.PrefixVerified(err) || r.repaired {
		return n, err
	}
	if rerr := r.repair(err); rerr != nil {
		return n, rerr
	}
	if n > 0 {
		return n, nil
	}
	return r.Read(p)
}

// repair replaces the failed local reader with a fetch of d, positioned at
// r.pos.
func (r *repairingReader) repair(cause error) error {
	r.repaired = true
	_ = r.rc.Close()
	r.rc = io.NopCloser(eofReader{})
	r.c.opts.Logger.Warn("fanout: the local copy is corrupt; completing the read from the remotes",
		"digest", r.d.String(), "offset", r.pos, "err", grpcerr.Of(cause).Message())
	rc, err := r.c.getTeeing(r.ctx, r.d)
	if err != nil {
		return r.repairFailed(cause, err)
	}
	r.rc = rc
	if _, err := io.CopyN(io.Discard, rc, r.pos); err != nil {
		return r.repairFailed(cause, err)
	}
	return nil
}

// repairFailed is the client's error when the blob could not be had again.
func (r *repairingReader) repairFailed(cause, err error) error {
	if gone := grpcerr.CallerGone(r.ctx); gone != nil {
		return gone
	}
	if status.Code(err) == codes.NotFound && r.pos == r.start {
		return err
	}
	return status.Errorf(codes.DataLoss, "%s; completing the read from the remotes failed: %s (%s)",
		grpcerr.Of(labelLocal(cause)).Message(), grpcerr.Of(err).Message(), grpcerr.Of(err).Code())
}

// Close closes the current reader.
func (r *repairingReader) Close() error { return r.rc.Close() }

// eofReader is an exhausted reader.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
