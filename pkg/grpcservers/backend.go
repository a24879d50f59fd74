package grpcservers

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store"
)

// Backend resolves a REAPI instance_name to the storage that serves it. The
// local daemon returns the same local store for every instance; the fan-out
// will return per-project tiers. Implementations must be safe for concurrent
// use and cheap to call: every request calls one of the methods once.
type Backend interface {
	// CAS returns the blob storage for instance. An unknown instance is an
	// error fit to return to the client (e.g. INVALID_ARGUMENT).
	CAS(ctx context.Context, instance string) (store.CAS, error)
	// ActionCache returns the action cache for instance.
	ActionCache(ctx context.Context, instance string) (store.ActionCache, error)
}

// StaticBackend is a Backend that serves every instance name from one CAS
// (CAS content is shared across instances) and asks ActionCaches for the
// per-instance action cache. Use it when no fan-out is configured. Safe for
// concurrent use when ActionCaches is.
type StaticBackend struct {
	// Store serves blobs for every instance.
	Store store.CAS
	// ActionCaches returns the action cache bound to one instance name,
	// e.g. (*disk.Store).ActionCache. Nil means the server has no action
	// cache and ActionCache calls fail with UNIMPLEMENTED.
	ActionCaches func(instance string) store.ActionCache
}

// NewStaticBackend returns a StaticBackend over cas and ac.
func NewStaticBackend(cas store.CAS, ac func(instance string) store.ActionCache) *StaticBackend {
	return &StaticBackend{Store: cas, ActionCaches: ac}
}

// CAS implements Backend.
func (b *StaticBackend) CAS(context.Context, string) (store.CAS, error) {
	if b.Store == nil {
		return nil, status.Error(codes.Unimplemented, "no content-addressable storage configured")
	}
	return b.Store, nil
}

// ActionCache implements Backend.
func (b *StaticBackend) ActionCache(_ context.Context, instance string) (store.ActionCache, error) {
	if b.ActionCaches == nil {
		return nil, status.Error(codes.Unimplemented, "no action cache configured")
	}
	return b.ActionCaches(instance), nil
}
