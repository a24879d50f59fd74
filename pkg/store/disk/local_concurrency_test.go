package disk_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalConcurrentPutsOfOneDigest(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		// Inline: one badger write, the rest see it present.
		{"inline", 8 << 10},
		// File: one temp file renamed into place, the rest wait for it.
		{"file", 2 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: many clients uploading the same blob all succeed, one copy is kept.
			l := openStore(t, t.TempDir(), disk.Options{})
			b, d := blob(tc.size, 5)
			var g errgroup.Group
			for range 16 {
				g.Go(func() error { return l.Put(context.Background(), d, bytes.NewReader(b)) })
			}
			if err := g.Wait(); err != nil {
				t.Fatalf("concurrent Put: %v", err)
			}
			if st := l.Stats(); st.Objects != 1 || st.UsedBytes != int64(tc.size) {
				t.Fatalf("Stats = %+v, want one copy", st)
			}
			if got, err := read(l, d, 0); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("read back: %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestLocalConcurrentReadWriteEvict(t *testing.T) {
	// Why: reads racing eviction either succeed with the right bytes or miss.
	l := openStore(t, t.TempDir(), disk.Options{QuotaBytes: 1 << 20})
	var ds []digest.Digest
	var blobs [][]byte
	for i := range 64 {
		b, d := blob(20<<10+i, uint64(i))
		ds, blobs = append(ds, d), append(blobs, b)
	}
	var g errgroup.Group
	for w := range 4 {
		g.Go(func() error {
			for i := range 200 {
				j := (i*7 + w) % len(ds)
				if err := l.Put(context.Background(), ds[j], bytes.NewReader(blobs[j])); err != nil {
					return err
				}
				if rc, err := l.Get(context.Background(), ds[(j+1)%len(ds)], 0); err == nil {
					got, rerr := io.ReadAll(rc)
					_ = rc.Close()
					if rerr != nil || !bytes.Equal(got, blobs[(j+1)%len(ds)]) {
						t.Errorf("read during eviction: %d bytes, %v", len(got), rerr)
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.UsedBytes > 1<<20 || st.Evictions == 0 {
		t.Fatalf("Stats = %+v, want evictions and usage within quota", st)
	}
}

var _ store.CAS = (*disk.Store)(nil)
