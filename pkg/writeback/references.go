package writeback

import (
	"context"
	"fmt"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// maxTreeBytes bounds the Tree messages read into memory to list their
// files.
const maxTreeBytes = 64 << 20

// references returns every blob ar needs on a remote before the remote
// may hold ar (store.ReferencedBlobs), reading Trees from local. A bad
// digest, or a Tree missing or unreadable locally, is a permanent error:
// the result cannot be pushed complete.
func references(ctx context.Context, local store.CAS, fn digest.Function, ar *repb.ActionResult) ([]digest.Digest, error) {
	refs, err := store.ReferencedBlobs(ctx, local, fn, ar)
	switch status.Code(err) {
	case codes.OK:
		return refs, nil
	case codes.NotFound, codes.InvalidArgument, codes.DataLoss:
		return nil, permanentError{fmt.Errorf("action result cannot be pushed complete: %w", err)}
	}
	return nil, err
}
