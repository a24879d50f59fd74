package casdir_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store/casdir"
)

// clock is a manual clock shared by the stores of one test, as the wall
// clock is shared by processes.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by a minute, well beyond the sessions' slack.
func (c *clock) Advance() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Minute)
}

func open(t testing.TB, dir string, opts casdir.Options) *casdir.Store {
	t.Helper()
	s, err := casdir.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// blob returns n bytes distinct for each i, and their digest.
func blob(i, n int) ([]byte, digest.Digest) {
	b := bytes.Repeat([]byte(fmt.Sprintf("blob %08d;", i)), n/14+1)[:n]
	return b, digest.OfBytes(b)
}

func put(t testing.TB, s *casdir.Store, b []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytes(b)
	if err := s.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatalf("Put(%s): %v", d, err)
	}
	return d
}

// read reads d through Get from offset to the end.
func read(s *casdir.Store, d digest.Digest, offset int64) ([]byte, error) {
	rc, err := s.Get(context.Background(), d, offset)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// objectPath is where BuildStream looks for d under cacheDir.
func objectPath(cacheDir string, d digest.Digest) string {
	return filepath.Join(cacheDir, "cas", "objects", d.Hash[:2], d.Hash[2:])
}

func exists(t testing.TB, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

func missing(t testing.TB, s *casdir.Store, ds ...digest.Digest) digest.Set {
	t.Helper()
	m, err := s.FindMissing(context.Background(), ds)
	if err != nil {
		t.Fatalf("FindMissing: %v", err)
	}
	return digest.NewSet(m...)
}

func wantCode(t testing.TB, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("error %v, want %v", err, code)
	}
}

// onDisk sums the sizes of the blob files under cacheDir, as a walk by
// another program would.
func onDisk(t testing.TB, cacheDir string) int64 {
	t.Helper()
	var total int64
	err := filepath.Walk(filepath.Join(cacheDir, "cas", "objects"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

func usage(t testing.TB, s *casdir.Store) int64 {
	t.Helper()
	u, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
