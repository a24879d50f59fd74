package disk_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/internal/testutil"

	"github.com/castd/castd/pkg/store/disk"
)

// TestIsFull checks that every way a write reaches a store that refuses
// it for lack of space carries the mark the fan-out looks for, and that
// other rejections do not.
func TestIsFull(t *testing.T) {
	ctx := context.Background()
	fs := testutil.MountTmpfs(t, "256m")
	dir := filepath.Join(fs, "store")
	l := openStore(t, dir, disk.Options{})
	small, sd := blob(100, 1)
	large, ld := blob(1<<20, 2)
	writes := map[string]func(*disk.Store) error{
		"Put small":        func(l *disk.Store) error { return l.Put(ctx, sd, bytes.NewReader(small)) },
		"Put large":        func(l *disk.Store) error { return l.Put(ctx, ld, bytes.NewReader(large)) },
		"PutBytes":         func(l *disk.Store) error { return l.PutBytes(ctx, sd, small, store.PutHint{}) },
		"PutVerifiedBytes": func(l *disk.Store) error { return l.PutBytes(ctx, sd, small, store.PutHint{Verified: true}) },
		"PutUncached": func(l *disk.Store) error {
			return l.PutWith(ctx, ld, bytes.NewReader(large), store.PutHint{Uncached: true})
		},
	}

	t.Run("filesystem full", func(t *testing.T) {
		t.Log("a write refused because another process filled the disk is marked full")
		if why := l.Stats().WritesRefused; why != "" {
			t.Errorf("Stats().WritesRefused = %q with space, want \"\"", why)
		}
		// Within the 100 ms a write reuses a reading of the free space for:
		// the status reads it afresh.
		disk.HoldFreeSpaceReadingForTest(l)
		free := testutil.FillFS(t, fs)
		defer free()
		if why := l.Stats().WritesRefused; why != disk.WritesRefusedFull {
			t.Errorf("Stats().WritesRefused = %q on a full disk before any write, want %q", why, disk.WritesRefusedFull)
		}
		for name, write := range writes {
			if err := write(l); err == nil || !disk.IsFull(err) {
				t.Errorf("%s on a full disk = %v, want an error IsFull reports", name, err)
			}
		}
	})
	t.Run("other rejections", func(t *testing.T) {
		t.Log("bad bytes are the writer's fault, not the disk's")
		if err := l.Put(ctx, sd, bytes.NewReader(large[:100])); err == nil || disk.IsFull(err) {
			t.Errorf("Put of bytes that do not match = %v, want an error IsFull does not report", err)
		}
		if disk.IsFull(nil) {
			t.Error("IsFull(nil) = true")
		}
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("read-only", func(t *testing.T) {
		t.Log("a store opened read-only on a full disk refuses writes with the same mark")
		if err := os.Remove(filepath.Join(dir, "ballast")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		free := testutil.FillFS(t, fs)
		defer free()
		ro, err := disk.Open(dir, disk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		if why := ro.Stats().WritesRefused; why != disk.WritesRefusedReadOnly {
			t.Errorf("Stats().WritesRefused = %q, want %q", why, disk.WritesRefusedReadOnly)
		}
		for name, write := range writes {
			if err := write(ro); err == nil || !disk.IsFull(err) || !strings.Contains(err.Error(), "read-only") {
				t.Errorf("%s on a read-only store = %v, want a read-only error IsFull reports", name, err)
			}
		}
	})
}
