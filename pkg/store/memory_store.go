package store

import (
	"bytes"
	"context"
	"io"
	"sync"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
)

// Memory is an unbounded in-memory CAS and ActionCache. It verifies writes
// like every CAS must. Use it for tests of code that only needs the
// interfaces, and as a throwaway store; it never evicts. Safe for concurrent
// use.
type Memory struct {
	mu    sync.RWMutex
	blobs map[digest.Digest][]byte
	ac    map[digest.Digest][]byte
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{blobs: map[digest.Digest][]byte{}, ac: map[digest.Digest][]byte{}}
}

// FindMissing implements CAS.
func (m *Memory) FindMissing(_ context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var missing []digest.Digest
	seen := digest.NewSet()
	for _, d := range ds {
		if _, ok := m.blobs[d]; !ok && !d.IsEmpty() && !seen.Has(d) {
			seen.Add(d)
			missing = append(missing, d)
		}
	}
	return missing, nil
}

// Get implements CAS.
func (m *Memory) Get(_ context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	if offset < 0 || offset > d.Size {
		return nil, status.Errorf(codes.OutOfRange, "offset %d outside blob %s", offset, d)
	}
	if d.IsEmpty() {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	m.mu.RLock()
	b, ok := m.blobs[d]
	m.mu.RUnlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "blob %s not found", d)
	}
	return io.NopCloser(bytes.NewReader(b[offset:])), nil
}

// Put implements CAS.
func (m *Memory) Put(_ context.Context, d digest.Digest, r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, d.Size+1))
	if err != nil {
		return status.Errorf(codes.Internal, "read blob %s: %v", d, err)
	}
	if got := digest.OfBytesIn(d.Func, b); got != d {
		return status.Errorf(codes.InvalidArgument, "blob bytes hash to %s, not the declared digest %s", got, d)
	}
	m.mu.Lock()
	m.blobs[d] = b
	m.mu.Unlock()
	return nil
}

// GetWith implements CAS; the hint changes nothing for bytes in memory.
func (m *Memory) GetWith(ctx context.Context, d digest.Digest, offset int64, _ GetHint) (io.ReadCloser, error) {
	return m.Get(ctx, d, offset)
}

// GetMany implements CAS with the generic GetEach: Memory has no batch
// path faster than its Get.
func (m *Memory) GetMany(ctx context.Context, ds []digest.Digest) []BlobResult {
	return GetEach(ctx, m, ds)
}

// PutWith implements CAS; the hint changes nothing for bytes in memory.
func (m *Memory) PutWith(ctx context.Context, d digest.Digest, r io.Reader, _ PutHint) error {
	return m.Put(ctx, d, r)
}

// PutBytes implements CAS through Put, which copies data (it must not be
// retained) and verifies it whatever the hint says.
func (m *Memory) PutBytes(ctx context.Context, d digest.Digest, data []byte, _ PutHint) error {
	return m.Put(ctx, d, bytes.NewReader(data))
}

// GetActionResult implements ActionCache (one namespace for all instances).
func (m *Memory) GetActionResult(_ context.Context, action digest.Digest) (*repb.ActionResult, error) {
	m.mu.RLock()
	b, ok := m.ac[action]
	m.mu.RUnlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "action result %s not found", action)
	}
	ar := &repb.ActionResult{}
	if err := proto.Unmarshal(b, ar); err != nil {
		return nil, status.Errorf(codes.Internal, "decode action result %s: %v", action, err)
	}
	return ar, nil
}

// UpdateActionResult implements ActionCache.
func (m *Memory) UpdateActionResult(_ context.Context, action digest.Digest, result *repb.ActionResult) error {
	b, err := proto.Marshal(result)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "encode action result: %v", err)
	}
	m.mu.Lock()
	m.ac[action] = b
	m.mu.Unlock()
	return nil
}
