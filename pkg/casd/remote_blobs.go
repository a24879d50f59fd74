package casd

import (
	"context"
	"fmt"
	"io"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// batchBlobLimit is the largest blob fetched in a batch (GetMany); larger
// ones are streamed one by one. batchTotalLimit bounds one batch's bytes,
// which GetMany holds in memory.
const (
	batchBlobLimit  = 1 << 20
	batchTotalLimit = 4 << 20
)

// streamParallelism bounds the blobs streamed from or to a remote at once.
const streamParallelism = 4

// blobErrors collects per-blob errors from concurrent work.
type blobErrors struct {
	mu   sync.Mutex
	errs map[digest.Digest]error
}

func (b *blobErrors) set(d digest.Digest, err error) {
	if err == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.errs == nil {
		b.errs = map[digest.Digest]error{}
	}
	b.errs[d] = err
}

// fetchFromRemote is FetchMissingBlobs for a remote instance: blobs not
// in the local cache are read through rt.read, which stores each verified
// blob in the cache before it counts as fetched. A blob still not on
// disk afterwards (a full cache served it unstored) fails too. Failures
// are returned in the order of ds.
func (d *Daemon) fetchFromRemote(ctx context.Context, rt *route, ds []*repb.Digest) ([]blobFailure, error) {
	failed, valid := splitInvalid(ds)
	missing, err := d.store.FindMissing(ctx, valid)
	if err != nil {
		return nil, err
	}
	errs := fetchInto(ctx, rt.read, missing)
	still, err := d.store.FindMissing(ctx, missing)
	if err != nil {
		return nil, err
	}
	for _, dg := range still {
		if errs.errs[dg] == nil {
			errs.set(dg, status.Errorf(codes.Internal, "blob %s was read from %s but not stored in the local cache", dg, rt.via))
		}
	}
	return append(failed, failuresOf(ds, errs.errs, "fetching from "+rt.via)...), nil
}

// fetchInto reads every blob of ds through read, which stores them
// locally: small ones in batches, large ones streamed, a few at once.
func fetchInto(ctx context.Context, read store.CAS, ds []digest.Digest) *blobErrors {
	errs := &blobErrors{}
	var batch, large []digest.Digest
	var total int64
	flush := func() {
		for i, r := range read.GetMany(ctx, batch) {
			errs.set(batch[i], r.Err)
		}
		batch, total = nil, 0
	}
	for _, dg := range ds {
		if dg.Size > batchBlobLimit {
			large = append(large, dg)
			continue
		}
		if total+dg.Size > batchTotalLimit {
			flush()
		}
		batch, total = append(batch, dg), total+dg.Size
	}
	if len(batch) > 0 {
		flush()
	}
	g := errgroup.Group{}
	g.SetLimit(streamParallelism)
	for _, dg := range large {
		g.Go(func() error { errs.set(dg, drain(ctx, read, dg)); return nil })
	}
	_ = g.Wait()
	return errs
}

// drain reads dg through read to the end (which stores it locally).
func drain(ctx context.Context, read store.CAS, dg digest.Digest) error {
	rc, err := read.Get(ctx, dg, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// uploadToRemote is UploadMissingBlobs for a remote instance: blobs the
// local cache lacks are NOT_FOUND; to a read_only remote every other blob
// fails FAILED_PRECONDITION; otherwise the blobs the push target lacks are
// streamed to it from the local cache. Failures in the order of ds.
func (d *Daemon) uploadToRemote(ctx context.Context, rt *route, ds []*repb.Digest) ([]blobFailure, error) {
	failed, err := d.missingLocally(ctx, ds, func(dg digest.Digest) string {
		return fmt.Sprintf("blob %s is not in the local cache", dg)
	})
	if err != nil {
		return nil, err
	}
	present := presentDigests(ds, failed)
	if rt.push == nil {
		return append(failed, presentFailed(ds, failed, status.Errorf(codes.FailedPrecondition,
			"buildbox-casd (castd): %s is read-only (BuildStream's remote has push disabled)", rt.via))...), nil
	}
	errs := &blobErrors{}
	need, err := rt.remote.FindMissing(ctx, present)
	if err != nil {
		for _, dg := range present {
			errs.set(dg, err)
		}
	}
	g := errgroup.Group{}
	g.SetLimit(streamParallelism)
	for _, dg := range need {
		g.Go(func() error { errs.set(dg, copyBlob(ctx, d.store, rt.push, dg)); return nil })
	}
	_ = g.Wait()
	return append(failed, failuresOf(ds, errs.errs, "uploading to "+rt.via)...), nil
}

// copyBlob streams dg from src to dst.
func copyBlob(ctx context.Context, src, dst store.CAS, dg digest.Digest) error {
	rc, err := src.Get(ctx, dg, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	return dst.Put(ctx, dg, rc)
}

// splitInvalid returns a failure for each invalid digest of ds and the
// valid ones.
func splitInvalid(ds []*repb.Digest) ([]blobFailure, []digest.Digest) {
	var failed []blobFailure
	valid := make([]digest.Digest, 0, len(ds))
	for _, dp := range ds {
		dg, err := digest.FromProto(dp)
		if err != nil {
			failed = append(failed, blobFailure{dp, status.Newf(codes.InvalidArgument, "blob_digests: %v", err).Proto()})
			continue
		}
		valid = append(valid, dg)
	}
	return failed, valid
}

// presentDigests returns the valid digests of ds without a failure.
func presentDigests(ds []*repb.Digest, failed []blobFailure) []digest.Digest {
	done := map[*repb.Digest]bool{}
	for _, f := range failed {
		done[f.digest] = true
	}
	var out []digest.Digest
	for _, dp := range ds {
		if !done[dp] {
			if dg, err := digest.FromProto(dp); err == nil {
				out = append(out, dg)
			}
		}
	}
	return out
}

// failuresOf turns errs into failures of the entries of ds, in order,
// each message prefixed with what was being done.
func failuresOf(ds []*repb.Digest, errs map[digest.Digest]error, doing string) []blobFailure {
	var out []blobFailure
	for _, dp := range ds {
		dg, err := digest.FromProto(dp)
		if err != nil || errs[dg] == nil {
			continue
		}
		st := status.Convert(errs[dg])
		out = append(out, blobFailure{dp, status.Newf(st.Code(), "buildbox-casd (castd): %s: %s", doing, st.Message()).Proto()})
	}
	return out
}
