package execution

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// push sends a locally produced scenario-3 result to the remote cache:
// through Config.Enqueue when set, else synchronously — the blobs it
// references plus the Action and Command to the storage service first, then
// UpdateActionResult on the remote action cache. A failure is logged and
// counted; the client's Execute still succeeds.
func (s *Server) push(ctx context.Context, j *job, res *repb.ActionResult) {
	var err error
	if s.cfg.Enqueue != nil {
		err = s.cfg.Enqueue(ctx, j.req.GetInstanceName(), j.digest, res)
	} else {
		err = s.pushNow(ctx, j, res)
	}
	if err != nil {
		s.m.pushFailures.Inc()
		s.cfg.Logger.Error("execution: cannot push action result to the remote cache", "action", j.digest, "err", err)
	}
}

func (s *Server) pushNow(ctx context.Context, j *job, res *repb.ActionResult) error {
	src := j.plan.CAS
	if j.plan.LocalCAS != nil {
		src = j.plan.LocalCAS
	}
	refs, err := resultBlobs(ctx, src, res)
	if err != nil {
		return err
	}
	cd, _ := digest.FromProto(j.action.GetCommandDigest())
	refs = append(refs, j.digest, cd)
	if err := copyMissing(ctx, src, j.plan.RemoteCAS, refs); err != nil {
		return err
	}
	return j.plan.RemoteAC.UpdateActionResult(ctx, j.digest, res)
}

// resultBlobs lists every blob res references: output files, stdout and
// stderr, each output directory's Tree and the files in it.
func resultBlobs(ctx context.Context, cas store.CAS, res *repb.ActionResult) ([]digest.Digest, error) {
	var refs []digest.Digest
	add := func(pd *repb.Digest) error {
		if pd == nil {
			return nil
		}
		d, err := digest.FromProto(pd)
		refs = append(refs, d)
		return err
	}
	for _, f := range res.GetOutputFiles() {
		if err := add(f.GetDigest()); err != nil {
			return nil, err
		}
	}
	if err := add(res.GetStdoutDigest()); err != nil {
		return nil, err
	}
	if err := add(res.GetStderrDigest()); err != nil {
		return nil, err
	}
	for _, od := range res.GetOutputDirectories() {
		files, err := treeBlobs(ctx, cas, od.GetTreeDigest())
		if err != nil {
			return nil, err
		}
		refs = append(refs, files...)
	}
	return refs, nil
}

// treeBlobs returns a Tree's own digest and the digests of all its files.
func treeBlobs(ctx context.Context, cas store.CAS, pd *repb.Digest) ([]digest.Digest, error) {
	td, err := digest.FromProto(pd)
	if err != nil {
		return nil, err
	}
	tree := &repb.Tree{}
	if err := readMessage(ctx, cas, td, tree); err != nil {
		return nil, err
	}
	refs := []digest.Digest{td}
	for _, dir := range append([]*repb.Directory{tree.GetRoot()}, tree.GetChildren()...) {
		for _, f := range dir.GetFiles() {
			d, err := digest.FromProto(f.GetDigest())
			if err != nil {
				return nil, err
			}
			refs = append(refs, d)
		}
	}
	return refs, nil
}
