package store_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

func TestLocalGetBytes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		stored   bool
		corrupt  func(t *testing.T, l *store.Local, d digest.Digest)
		wantCode codes.Code
	}{
		// Inline blob: read straight from the index.
		{"inline hit", 5000, true, nil, codes.OK},
		// File blob: read whole through its verifying reader.
		{"file hit", 200 << 10, true, nil, codes.OK},
		// The empty blob is always present.
		{"empty", 0, false, nil, codes.OK},
		// Never stored: the one miss signal.
		{"missing", 100, false, nil, codes.NotFound},
		// Corrupt inline bytes are deleted, not returned.
		{"inline corrupt", 100, true, func(t *testing.T, l *store.Local, d digest.Digest) {
			if err := store.CorruptInlineForTest(l, d, make([]byte, 104)); err != nil {
				t.Fatal(err)
			}
		}, codes.NotFound},
		// A corrupt file fails its read and is deleted.
		{"file corrupt", 200 << 10, true, func(t *testing.T, l *store.Local, d digest.Digest) {
			rewrite(t, store.BlobPathForTest(l, d), func(b []byte) []byte { b[10] ^= 1; return b })
		}, codes.DataLoss},
		// A file removed behind the store's back.
		{"file deleted", 200 << 10, true, func(t *testing.T, l *store.Local, d digest.Digest) {
			if err := os.Remove(store.BlobPathForTest(l, d)); err != nil {
				t.Fatal(err)
			}
		}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: the batch-read fast path verifies and misses exactly like Get.
			l := openStore(t, t.TempDir(), store.Options{})
			b, d := blob(tc.size, 9)
			if tc.stored {
				put(t, l, b)
			}
			if tc.corrupt != nil {
				tc.corrupt(t, l, d)
			}
			got, err := l.GetBytes(context.Background(), d)
			if status.Code(err) != tc.wantCode {
				t.Fatalf("GetBytes = %d bytes, %v; want %v", len(got), err, tc.wantCode)
			}
			if err == nil && !bytes.Equal(got, b) {
				t.Fatalf("GetBytes returned %d wrong bytes", len(got))
			}
			if tc.corrupt != nil && present(t, l, d) {
				t.Fatal("corrupt blob still reported present")
			}
		})
	}
}

var _ store.BytesGetter = (*store.Local)(nil)
