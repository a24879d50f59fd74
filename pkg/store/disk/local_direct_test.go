package disk_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

// residentFraction is the share of path's pages in the page cache.
func residentFraction(t *testing.T, path string) float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	pages := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&pages[0]))); errno != 0 {
		t.Fatal(errno)
	}
	in := 0
	for _, p := range pages {
		in += int(p & 1)
	}
	return float64(in) / float64(len(pages))
}

func TestPutUncached(t *testing.T) {
	l := openStore(t, t.TempDir(), disk.Options{})
	waitReady(t, l)
	ctx := context.Background()
	tests := []struct {
		name, why string
		size      int
		put       func(d store.CAS, data []byte) error
		cached    bool // the file's pages are in the page cache after the put
	}{
		{"large, whole blocks", "a blob fetched for a reader is written around the page cache",
			disk.DirectMin, nil, false},
		{"large, ragged tail", "the last block is padded for O_DIRECT and the padding cut off again",
			disk.DirectMin + 12345, nil, false},
		{"plain Put", "an upload is written through the page cache: it is often read back at once (write-back, execution)",
			disk.DirectMin + 1, func(c store.CAS, data []byte) error {
				return c.Put(ctx, digest.OfBytes(data), bytes.NewReader(data))
			}, true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			data, d := blob(tc.size, uint64(100+i))
			put := tc.put
			if put == nil {
				put = func(c store.CAS, data []byte) error {
					return c.PutWith(ctx, d, bytes.NewReader(data), store.PutHint{Uncached: true})
				}
			}
			if err := put(l, data); err != nil {
				t.Fatal(err)
			}
			path := disk.BlobPathForTest(l, d)
			fi, err := os.Stat(path)
			if err != nil || fi.Size() != int64(tc.size) {
				t.Fatalf("blob file: %v, %v; want %d bytes", fi, err, tc.size)
			}
			if got := residentFraction(t, path); (got > 0.5) != tc.cached {
				t.Fatalf("%.0f%% of the file is in the page cache; want cached=%v", 100*got, tc.cached)
			}
			got, err := store.ReadBytes(ctx, l, d)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, %v; want the %d put", len(got), err, len(data))
			}
		})
	}
}

func TestPutUncachedRejectsBadBytes(t *testing.T) {
	t.Log("O_DIRECT changes how a blob is written, not what is accepted: bad bytes are refused and leave nothing behind")
	dir := t.TempDir()
	l := openStore(t, dir, disk.Options{})
	waitReady(t, l)
	ctx := context.Background()
	data, d := blob(disk.DirectMin+100, 7)
	bad := bytes.Clone(data)
	bad[len(bad)-1] ^= 1
	for name, r := range map[string]io.Reader{
		"wrong bytes": bytes.NewReader(bad),
		"too short":   bytes.NewReader(data[:len(data)-1]),
		"too long":    io.MultiReader(bytes.NewReader(data), bytes.NewReader([]byte{0})),
	} {
		err := l.PutWith(ctx, d, r, store.PutHint{Uncached: true})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: PutUncached = %v; want INVALID_ARGUMENT", name, err)
		}
	}
	if missing, err := l.FindMissing(ctx, []digest.Digest{d}); err != nil || len(missing) != 1 {
		t.Fatalf("FindMissing after rejected puts = %v, %v; want the blob missing", missing, err)
	}
	if _, err := os.Stat(disk.BlobPathForTest(l, d)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a blob file exists after rejected puts: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "tmp", "*"))
	if len(leftovers) != 0 {
		t.Fatalf("temp files left behind: %v", leftovers)
	}
}

func TestDirectWriterFallsBack(t *testing.T) {
	aligned := func(n int) []byte { // page-aligned: Go allocates large objects on page boundaries
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b[:n]
	}
	dir := t.TempDir()
	tests := []struct {
		name, why  string
		chunks     [][]byte
		wantDirect bool
	}{
		{"aligned chunks", "whole aligned blocks go with O_DIRECT, a short last one padded", [][]byte{aligned(1 << 20), aligned(1000)}, true},
		{"unaligned buffer", "a buffer O_DIRECT cannot take switches the file to the page cache for good", [][]byte{aligned(1 << 20), aligned(1 << 20)[1:], aligned(4096)}, false},
		{"empty chunk", "an empty write neither fails nor gives up O_DIRECT", [][]byte{aligned(1 << 20), aligned(0), aligned(100)}, true},
		{"small first chunk", "a chunk without room for padding goes through the page cache", [][]byte{make([]byte, 10)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			path := filepath.Join(dir, tc.name)
			direct, err := disk.DirectWriteForTest(path, tc.chunks)
			if err != nil {
				t.Fatal(err)
			}
			if direct != tc.wantDirect {
				t.Errorf("O_DIRECT at the end = %v; want %v", direct, tc.wantDirect)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, bytes.Join(tc.chunks, nil)) {
				t.Fatalf("file holds %d bytes (%v); want the %d written, exactly", len(got), err, len(bytes.Join(tc.chunks, nil)))
			}
		})
	}
}
