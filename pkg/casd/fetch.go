package casd

import (
	"context"
	"fmt"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// FetchMissingBlobs implements LocalCAS. For a remote instance, blobs not
// in the local cache are fetched into it through the instance's route
// (the castd daemon, else BuildStream's remote), verified before they are
// stored; for the local instance a blob present locally succeeds and any
// other is NOT_FOUND. The response lists only the blobs that failed:
// BuildStream reads a `data` field that does not exist from any other
// entry, and crashes.
func (d *Daemon) FetchMissingBlobs(ctx context.Context, req *localcaspb.FetchMissingBlobsRequest) (*localcaspb.FetchMissingBlobsResponse, error) {
	failed, err := d.blobFailures(ctx, req.GetInstanceName(), req.GetBlobDigests(), d.fetchFromRemote,
		"blob %s is not in the local cache and no remote is configured")
	if err != nil {
		return nil, err
	}
	resp := &localcaspb.FetchMissingBlobsResponse{}
	for _, f := range failed {
		resp.Responses = append(resp.Responses, &localcaspb.FetchMissingBlobsResponse_Response{Digest: f.digest, Status: f.status})
	}
	return resp, nil
}

// UploadMissingBlobs implements LocalCAS: blobs missing locally are
// NOT_FOUND; for a remote instance the others are uploaded through its
// route (the castd daemon, whose policy decides where they go, else
// BuildStream's remote unless it is read_only); for the local instance
// there is nothing to upload to and present blobs succeed. Only failures
// are listed (see FetchMissingBlobs).
func (d *Daemon) UploadMissingBlobs(ctx context.Context, req *localcaspb.UploadMissingBlobsRequest) (*localcaspb.UploadMissingBlobsResponse, error) {
	failed, err := d.blobFailures(ctx, req.GetInstanceName(), req.GetBlobDigests(), d.uploadToRemote,
		"blob %s is not in the local cache")
	if err != nil {
		return nil, err
	}
	resp := &localcaspb.UploadMissingBlobsResponse{}
	for _, f := range failed {
		resp.Responses = append(resp.Responses, &localcaspb.UploadMissingBlobsResponse_Response{Digest: f.digest, Status: f.status})
	}
	return resp, nil
}

// blobFailures is the shared body of Fetch/UploadMissingBlobs: for a
// remote instance, viaRemote over the instance's route; for the local
// instance, NOT_FOUND (localMissing, formatted with the digest) for each
// blob not in the local cache. It returns the failures only.
func (d *Daemon) blobFailures(ctx context.Context, instance string, ds []*repb.Digest,
	viaRemote func(context.Context, *route, []*repb.Digest) ([]blobFailure, error), localMissing string) ([]blobFailure, error) {
	remote, err := d.instance(instance)
	if err != nil {
		return nil, err
	}
	if remote == nil {
		return d.missingLocally(ctx, ds, func(dg digest.Digest) string { return fmt.Sprintf(localMissing, dg) })
	}
	rt, err := d.routeOf(remote)
	if err != nil {
		return nil, err
	}
	return viaRemote(ctx, rt, ds)
}

// blobFailure is one entry of a Fetch/UploadMissingBlobs answer.
type blobFailure struct {
	digest *repb.Digest
	status *spb.Status
}

// presentFailed makes a failure of err for every digest of ds that has no
// failure in failed yet.
func presentFailed(ds []*repb.Digest, failed []blobFailure, err error) []blobFailure {
	done := map[*repb.Digest]bool{}
	for _, f := range failed {
		done[f.digest] = true
	}
	var out []blobFailure
	for _, dp := range ds {
		if !done[dp] {
			out = append(out, blobFailure{dp, status.Convert(err).Proto()})
		}
	}
	return out
}

// missingLocally checks ds against the local store and returns a failure
// for each invalid digest (INVALID_ARGUMENT) and each missing one
// (NOT_FOUND, with why's message), in the order of ds.
func (d *Daemon) missingLocally(ctx context.Context, ds []*repb.Digest, why func(digest.Digest) string) ([]blobFailure, error) {
	failed, valid := splitInvalid(ds)
	missing, err := d.store.FindMissing(ctx, valid)
	if err != nil {
		return nil, err
	}
	gone := digest.NewSet(missing...)
	for _, dp := range ds {
		if dg, err := digest.FromProto(dp); err == nil && gone.Has(dg) {
			failed = append(failed, blobFailure{dp, status.New(codes.NotFound, why(dg)).Proto()})
		}
	}
	return failed, nil
}

// FetchTree implements LocalCAS. For a remote instance it first reads the
// tree's Directory blobs (and with fetch_file_blobs its files) through the
// instance's route into the local cache. Then, as for the local instance,
// it checks that they are all in the local cache: NOT_FOUND naming the
// first missing blob otherwise.
func (d *Daemon) FetchTree(ctx context.Context, req *localcaspb.FetchTreeRequest) (*localcaspb.FetchTreeResponse, error) {
	remote, err := d.instance(req.GetInstanceName())
	if err != nil {
		return nil, err
	}
	root, err := digest.FromProto(req.GetRootDigest())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "buildbox-casd (castd): root_digest: %v", err)
	}
	if remote != nil {
		rt, err := d.routeOf(remote)
		if err != nil {
			return nil, err
		}
		if err := d.pullTree(ctx, rt, root, req.GetFetchFileBlobs()); err != nil {
			return nil, err
		}
	}
	if err := d.checkTree(ctx, root, req.GetFetchFileBlobs()); err != nil {
		return nil, err
	}
	return &localcaspb.FetchTreeResponse{}, nil
}

// pullTree reads the tree under root through rt into the local cache:
// every Directory, and with files every file blob.
func (d *Daemon) pullTree(ctx context.Context, rt *route, root digest.Digest, files bool) error {
	t, err := readTree(ctx, rt.read, root)
	if err != nil {
		st := status.Convert(err)
		return status.Errorf(st.Code(), "%s (via %s)", st.Message(), rt.via)
	}
	if !files {
		return nil
	}
	missing, err := d.store.FindMissing(ctx, t.files.Sorted())
	if err != nil {
		return err
	}
	errs := fetchInto(ctx, rt.read, missing)
	for _, dg := range missing {
		if e := errs.errs[dg]; e != nil {
			st := status.Convert(e)
			return status.Errorf(st.Code(), "buildbox-casd (castd): tree %s: file blob %s from %s: %s", root, dg, rt.via, st.Message())
		}
	}
	return nil
}

// checkTree reads the tree under root from the local store and, with
// files, checks that every file blob is there too.
func (d *Daemon) checkTree(ctx context.Context, root digest.Digest, files bool) error {
	t, err := readTree(ctx, d.store, root)
	if err != nil {
		return err
	}
	if !files {
		return nil
	}
	missing, err := d.store.FindMissing(ctx, t.files.Sorted())
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return status.Errorf(codes.NotFound, "tree %s is incomplete: %d file blob(s) missing from the local cache, first %s", root, len(missing), missing[0])
	}
	return nil
}

// tree is a Directory tree read from a CAS: every distinct Directory by
// digest and every file digest.
type tree struct {
	root  digest.Digest
	dirs  map[digest.Digest]*repb.Directory
	files digest.Set
}

// readTree reads every Directory under root from cas, each distinct one
// once. A missing Directory is NOT_FOUND naming it.
func readTree(ctx context.Context, cas store.CAS, root digest.Digest) (*tree, error) {
	t := &tree{root: root, dirs: map[digest.Digest]*repb.Directory{}, files: digest.NewSet()}
	queue := []digest.Digest{root}
	for len(queue) > 0 {
		dg := queue[0]
		queue = queue[1:]
		if _, seen := t.dirs[dg]; seen {
			continue
		}
		dir := &repb.Directory{}
		if err := store.ReadMessage(ctx, cas, dg, dir); err != nil {
			if status.Code(err) == codes.NotFound {
				return nil, status.Errorf(codes.NotFound, "tree %s is incomplete: Directory %s is missing from the local cache", root, dg)
			}
			return nil, err
		}
		t.dirs[dg] = dir
		next, err := t.addChildren(dir)
		if err != nil {
			return nil, err
		}
		queue = append(queue, next...)
	}
	return t, nil
}

// addChildren records dir's files and returns its subdirectories.
func (t *tree) addChildren(dir *repb.Directory) ([]digest.Digest, error) {
	for _, f := range dir.GetFiles() {
		fd, err := digest.FromProto(f.GetDigest())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "tree %s: file %q: %v", t.root, f.GetName(), err)
		}
		t.files.Add(fd)
	}
	subs := make([]digest.Digest, 0, len(dir.GetDirectories()))
	for _, sub := range dir.GetDirectories() {
		sd, err := digest.FromProto(sub.GetDigest())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "tree %s: directory %q: %v", t.root, sub.GetName(), err)
		}
		subs = append(subs, sd)
	}
	return subs, nil
}
