package testutil

import (
	"context"
	"io"
	"sync"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// HintLog is a CAS that notes the hint of every read and write call and
// passes the call on to its base: Get and Put are noted as the zero hint,
// GetMany not at all. Tests use it to check that a hint reaches the store
// through the layers above it. Safe for concurrent use.
type HintLog struct {
	base store.CAS
	mu   sync.Mutex
	gets []store.GetHint
	puts []store.PutHint
}

// NewHintLog returns a HintLog over base.
func NewHintLog(base store.CAS) *HintLog { return &HintLog{base: base} }

// GetHints returns the hints of the reads so far, in call order.
func (l *HintLog) GetHints() []store.GetHint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]store.GetHint(nil), l.gets...)
}

// PutHints returns the hints of the writes so far, in call order.
func (l *HintLog) PutHints() []store.PutHint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]store.PutHint(nil), l.puts...)
}

func (l *HintLog) noteGet(h store.GetHint) {
	l.mu.Lock()
	l.gets = append(l.gets, h)
	l.mu.Unlock()
}

func (l *HintLog) notePut(h store.PutHint) {
	l.mu.Lock()
	l.puts = append(l.puts, h)
	l.mu.Unlock()
}

// FindMissing implements store.CAS.
func (l *HintLog) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	return l.base.FindMissing(ctx, ds)
}

// Get implements store.CAS.
func (l *HintLog) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	l.noteGet(store.GetHint{})
	return l.base.Get(ctx, d, offset)
}

// GetWith implements store.CAS.
func (l *HintLog) GetWith(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	l.noteGet(hint)
	return l.base.GetWith(ctx, d, offset, hint)
}

// GetMany implements store.CAS.
func (l *HintLog) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	return l.base.GetMany(ctx, ds)
}

// Put implements store.CAS.
func (l *HintLog) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	l.notePut(store.PutHint{})
	return l.base.Put(ctx, d, r)
}

// PutWith implements store.CAS.
func (l *HintLog) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint store.PutHint) error {
	l.notePut(hint)
	return l.base.PutWith(ctx, d, r, hint)
}

// PutBytes implements store.CAS.
func (l *HintLog) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint store.PutHint) error {
	l.notePut(hint)
	return l.base.PutBytes(ctx, d, data, hint)
}
