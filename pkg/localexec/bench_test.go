package localexec_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/store"
)

// benchTree stores an input tree of 100 directories of 100 distinct files,
// 10,000 files totalling 100 MiB, directly in cas and returns its root.
func benchTree(b *testing.B, cas store.CAS) digest.Digest {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	const dirs, files, total = 100, 100, 100 << 20
	root := &repb.Directory{}
	for i := range dirs {
		dir := &repb.Directory{}
		for j := range files {
			data := make([]byte, total/(dirs*files)+(i*files+j)%2)
			for k := range data {
				data[k] = byte(rng.Uint32())
			}
			d := digest.OfBytes(data)
			if err := cas.Put(ctx, d, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
			dir.Files = append(dir.Files, &repb.FileNode{Name: fmt.Sprintf("f%03d", j), Digest: d.Proto(), IsExecutable: j%10 == 0})
		}
		dd, err := localexec.PutMessage(ctx, cas, dir)
		if err != nil {
			b.Fatal(err)
		}
		root.Directories = append(root.Directories, &repb.DirectoryNode{Name: fmt.Sprintf("d%03d", i), Digest: dd.Proto()})
	}
	rd, err := localexec.PutMessage(ctx, cas, root)
	if err != nil {
		b.Fatal(err)
	}
	return rd
}

// BenchmarkStage materializes the 10,000-file, 100 MiB tree (target ≤ 1 s).
func BenchmarkStage(b *testing.B) {
	cas := store.NewMemory()
	root := benchTree(b, cas)
	base := b.TempDir()
	b.SetBytes(100 << 20)
	for i := 0; b.Loop(); i++ {
		dst := filepath.Join(base, fmt.Sprint(i))
		if err := localexec.MaterializeDir(context.Background(), cas, root, dst); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(dst); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkRunNoop runs /bin/true over the same tree: fetch, stage, run,
// collect and clean up (target ≤ 2 s).
func BenchmarkRunNoop(b *testing.B) {
	f := newFixture(b, localexec.Options{})
	root := benchTree(b, f.cas)
	a, _, err := localexec.UploadAction(context.Background(), f.cas, &repb.Command{Arguments: []string{"/bin/true"}}, root, 0)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := f.runner.Run(context.Background(), a)
		if err != nil || res.GetExitCode() != 0 {
			b.Fatalf("Run = %v, %v", res, err)
		}
	}
}
