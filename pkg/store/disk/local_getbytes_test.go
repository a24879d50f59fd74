package disk_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalGetBytes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		stored   bool
		corrupt  func(t *testing.T, l *disk.Store, d digest.Digest)
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
		{"inline corrupt", 100, true, func(t *testing.T, l *disk.Store, d digest.Digest) {
			if err := disk.CorruptInlineForTest(l, d, make([]byte, 104)); err != nil {
				t.Fatal(err)
			}
		}, codes.NotFound},
		// A corrupt file is deleted, not returned: nothing was handed
		// out, so it is a miss (the fan-out goes on to the remotes).
		{"file corrupt", 200 << 10, true, func(t *testing.T, l *disk.Store, d digest.Digest) {
			rewrite(t, disk.BlobPathForTest(l, d), func(b []byte) []byte { b[10] ^= 1; return b })
		}, codes.NotFound},
		// A file removed behind the store's back.
		{"file deleted", 200 << 10, true, func(t *testing.T, l *disk.Store, d digest.Digest) {
			if err := os.Remove(disk.BlobPathForTest(l, d)); err != nil {
				t.Fatal(err)
			}
		}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: the batch-read fast path verifies and misses exactly like Get.
			l := openStore(t, t.TempDir(), disk.Options{})
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

var _ store.CAS = (*disk.Store)(nil)

func TestLocalPutBytes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		mangle   func(b []byte) []byte // what is sent instead of the blob
		wantCode codes.Code
	}{
		// Small: verified and handed to the index without a copy.
		{"inline", 5000, nil, codes.OK},
		// Large: falls back to Put's streaming path.
		{"file", 200 << 10, nil, codes.OK},
		// A flipped byte is rejected and nothing is stored.
		{"wrong bytes", 5000, func(b []byte) []byte { b[7] ^= 1; return b }, codes.InvalidArgument},
		// Too few bytes for the digest.
		{"short", 5000, func(b []byte) []byte { return b[:len(b)-1] }, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: the batch-upload fast path verifies exactly like Put.
			l := openStore(t, t.TempDir(), disk.Options{})
			b, d := blob(tc.size, 11)
			send := bytes.Clone(b)
			if tc.mangle != nil {
				send = tc.mangle(send)
			}
			err := l.PutBytes(context.Background(), d, send, store.PutHint{})
			if status.Code(err) != tc.wantCode {
				t.Fatalf("PutBytes = %v, want %v", err, tc.wantCode)
			}
			if got := present(t, l, d); got != (err == nil) {
				t.Fatalf("present = %v after PutBytes = %v", got, err)
			}
			if err == nil {
				clear(send) // the store must not have kept the caller's slice
				if got, err := l.GetBytes(context.Background(), d); err != nil || !bytes.Equal(got, b) {
					t.Fatalf("GetBytes after PutBytes: %d bytes, %v", len(got), err)
				}
			}
		})
	}
}

func TestLocalReadsEarlierInlineLayouts(t *testing.T) {
	// Why: stores written before pack files kept small blobs in badger,
	// first as CRC-32C then the bytes, later as the bytes alone; both
	// still serve their blobs, also after a restart, and can be evicted.
	data := []byte("an inline blob in an earlier layout")
	crc := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	for name, val := range map[string][]byte{
		"crc first":  append(binary.BigEndian.AppendUint32(nil, crc), data...),
		"bytes only": data,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openStore(t, dir, disk.Options{})
			b := digest.OfBytes(data)
			if err := disk.PutEarlierInlineForTest(l, b, val, crc); err != nil {
				t.Fatal(err)
			}
			if got, err := l.GetBytes(context.Background(), b); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("GetBytes = %q, %v", got, err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openStore(t, dir, disk.Options{})
			if got, err := l.GetBytes(context.Background(), b); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("GetBytes after restart = %q, %v", got, err)
			}
		})
	}
}

func TestLocalPutVerifiedBytes(t *testing.T) {
	// Why: bytes the caller already checked against the digest are stored
	// without hashing again, but a wrong size is still refused and nothing
	// is stored; a large blob takes the verifying path.
	l := openStore(t, t.TempDir(), disk.Options{})
	small, d := blob(3000, 1)
	if err := l.PutBytes(context.Background(), d, small, store.PutHint{Verified: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := l.GetBytes(context.Background(), d); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("GetBytes = %d bytes, %v", len(got), err)
	}
	other, d2 := blob(3000, 2)
	if err := l.PutBytes(context.Background(), d2, other[:2999], store.PutHint{Verified: true}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("PutVerifiedBytes with a short blob = %v, want InvalidArgument", err)
	}
	large, d3 := blob(100<<10, 3)
	large[0] ^= 1 // not what d3 says: the large path verifies
	if err := l.PutBytes(context.Background(), d3, large, store.PutHint{Verified: true}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("PutVerifiedBytes of a wrong large blob = %v, want InvalidArgument", err)
	}
	if present(t, l, d2) || present(t, l, d3) {
		t.Fatal("a refused blob is present")
	}
}
