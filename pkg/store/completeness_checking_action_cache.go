package store

import (
	"context"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
)

// NewCompletenessCheckingActionCache wraps ac so that GetActionResult
// answers NOT_FOUND unless every blob the result references is in cas:
// output files, stdout and stderr, each output directory's Tree blob and
// every file in every Directory of that Tree. Use it in front of any action
// cache whose results a client will act on. Cost per hit: one Get per output
// directory (the Tree must be read) and one FindMissing for all digests,
// which also marks them used so LRU eviction removes them last.
// UpdateActionResult passes through. Safe for concurrent use.
func NewCompletenessCheckingActionCache(ac ActionCache, cas CAS) ActionCache {
	return &completenessCheckingActionCache{ActionCache: ac, cas: cas}
}

type completenessCheckingActionCache struct {
	ActionCache
	cas CAS
}

func (c *completenessCheckingActionCache) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	ar, err := c.ActionCache.GetActionResult(ctx, action)
	if err != nil {
		return nil, err
	}
	refs, err := ReferencedBlobs(ctx, c.cas, action.Func, ar)
	if err != nil {
		return nil, incomplete(action, err)
	}
	missing, err := c.cas.FindMissing(ctx, refs)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, status.Errorf(codes.NotFound, "action result %s is incomplete: %d referenced blobs are missing, e.g. %s", action, len(missing), missing[0])
	}
	return ar, nil
}

// incomplete turns a failure to resolve the result's references into the
// answer: a missing or unreadable Tree, or a malformed digest in a stored
// result, means the entry cannot be used — a miss, so the client rebuilds
// and overwrites it. Other errors (a failing store) keep their code.
func incomplete(action digest.Digest, err error) error {
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument, codes.DataLoss:
		return status.Errorf(codes.NotFound, "action result %s is incomplete: %v", action, status.Convert(err).Message())
	}
	return err
}
