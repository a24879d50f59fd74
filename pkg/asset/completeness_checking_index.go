package asset

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store"
)

// NewCompletenessCheckingIndex wraps base so that Lookup answers NOT_FOUND
// unless the referenced content is in cas: the blob, or every Directory and
// file blob of the tree. Put it around each tier of a fan-out (with the
// instance's fan-out CAS, which also asks the storage remotes) so that a
// reference to content gone everywhere falls through to the next tier
// instead of ending the lookup. Cost per hit: one FindMissing for a blob;
// for a tree one FindMissing and one Get per level of Directories plus
// batched FindMissing for the files. Record passes through. Safe for
// concurrent use.
func NewCompletenessCheckingIndex(base Index, cas store.CAS) Index {
	return &completenessCheckingIndex{Index: base, cas: cas}
}

type completenessCheckingIndex struct {
	Index
	cas store.CAS
}

func (c *completenessCheckingIndex) Lookup(ctx context.Context, a Asset, oldest time.Time) (Ref, error) {
	ref, err := c.Index.Lookup(ctx, a, oldest)
	if err != nil {
		return Ref{}, err
	}
	return ref, checkComplete(ctx, c.cas, a, ref)
}

// checkComplete is NOT_FOUND when content ref points to is missing or not a
// valid tree, and the CAS's error if it could not tell.
func checkComplete(ctx context.Context, cas store.CAS, a Asset, ref Ref) error {
	missing, err := missingContent(ctx, cas, a.Kind, ref.Digest)
	if status.Code(err) == codes.FailedPrecondition {
		return status.Errorf(codes.NotFound, "%s refers to unusable content: %v", a, status.Convert(err).Message())
	}
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return status.Errorf(codes.NotFound, "%s refers to %s whose content is gone: %d blobs missing, e.g. %s", a, ref.Digest, len(missing), missing[0])
	}
	return nil
}
