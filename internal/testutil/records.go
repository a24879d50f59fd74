package testutil

import (
	"bytes"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Records is an in-memory key-value namespace with the contract of the
// local store's Records (asset.Records): values are copied in and out, and
// Get of a missing key is NOT_FOUND. Safe for concurrent use.
type Records struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewRecords returns an empty Records.
func NewRecords() *Records { return &Records{m: map[string][]byte{}} }

// Put stores a copy of v under k.
func (r *Records) Put(k, v []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[string(k)] = bytes.Clone(v)
	return nil
}

// Get returns a copy of the value under k, or NOT_FOUND.
func (r *Records) Get(k []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[string(k)]
	if !ok {
		return nil, status.Error(codes.NotFound, "no record")
	}
	return bytes.Clone(v), nil
}

// Delete removes k; a missing key is no error.
func (r *Records) Delete(k []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, string(k))
	return nil
}
