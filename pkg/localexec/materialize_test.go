package localexec_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/store"
)

var sampleTree = map[string]node{
	"bin/tool":        {content: "#!/bin/sh\n", exec: true},
	"lib/data.txt":    {content: "data"},
	"lib/same.txt":    {content: "data"},
	"lib/empty-file":  {},
	"lib/link":        {link: "data.txt"},
	"lib/up":          {link: "../bin/tool"},
	"empty/dir":       {dir: true},
	"deep/a/b/c/leaf": {content: "leaf"},
}

func TestUploadAndMaterialize(t *testing.T) {
	tests := []struct {
		name string
		why  string
		run  func(t *testing.T, src string)
	}{{
		name: "round trip keeps files, exec bits, symlinks and empty dirs",
		why:  "staging must recreate exactly the tree a client uploaded",
		run: func(t *testing.T, src string) {
			cas := store.NewMemory()
			root := mustUpload(t, cas, src)
			dst := filepath.Join(t.TempDir(), "out")
			if err := localexec.MaterializeDir(context.Background(), cas, root, dst); err != nil {
				t.Fatal(err)
			}
			if got, want := listTree(t, dst), listTree(t, src); got != want {
				t.Errorf("materialized tree:\n%s\nwant:\n%s", got, want)
			}
			if again := mustUpload(t, cas, dst); again != root {
				t.Errorf("re-uploading the materialized tree gives %s, want %s", again, root)
			}
		},
	}, {
		name: "second upload stores nothing",
		why:  "only blobs FindMissing reports absent are uploaded",
		run: func(t *testing.T, src string) {
			cas := &countingCAS{BasicCAS: store.NewMemory()}
			mustUpload(t, store.WithGenericFastPaths(cas), src)
			first := cas.puts.Load()
			mustUpload(t, store.WithGenericFastPaths(cas), src)
			if first == 0 || cas.puts.Load() != first {
				t.Errorf("puts: first upload %d, after second %d; want >0 and unchanged", first, cas.puts.Load())
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			src := t.TempDir()
			writeTree(t, src, sampleTree)
			tc.run(t, src)
		})
	}
}

func mustUpload(t *testing.T, cas store.CAS, dir string) digest.Digest {
	t.Helper()
	root, err := localexec.UploadDir(context.Background(), cas, dir)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// listTree renders every entry under dir with its type, exec bit and
// content or target, one per line, sorted.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			lines = append(lines, fmt.Sprintf("%s -> %s", rel, target))
			return err
		case d.IsDir():
			lines = append(lines, rel+"/")
		default:
			b, err := os.ReadFile(p)
			lines = append(lines, fmt.Sprintf("%s exec=%v %q", rel, info.Mode()&0o100 != 0, b))
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// countingCAS counts Put calls (through store.WithGenericFastPaths, the
// calls of every write method).
type countingCAS struct {
	store.BasicCAS
	puts atomic.Int64
}

func (c *countingCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	c.puts.Add(1)
	return c.BasicCAS.Put(ctx, d, r)
}
