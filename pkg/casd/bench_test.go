package casd_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
)

// sourceTree writes n small files (100 per directory, distinct contents)
// under a new directory, like a source checkout.
func sourceTree(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d.c", i))
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("int f%d(void) { return %d; }\n", i, i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkCaptureTree10k is CaptureTree of a 10,000-file source tree
// into a fresh cache (every blob new) and again (every blob present).
func BenchmarkCaptureTree10k(b *testing.B) {
	src := sourceTree(b, 10000)
	b.Run("new blobs", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			e := newEnv(b)
			b.StartTimer()
			capture(b, e, src)
		}
	})
	b.Run("blobs present", func(b *testing.B) {
		e := newEnv(b)
		capture(b, e, src)
		for b.Loop() {
			capture(b, e, src)
		}
	})
}

func capture(b *testing.B, e *env, src string) *localcaspb.CaptureTreeResponse_Response {
	resp, err := e.local.CaptureTree(b.Context(), &localcaspb.CaptureTreeRequest{Path: []string{src}})
	if err != nil || resp.Responses[0].GetStatus().GetCode() != 0 {
		b.Fatalf("CaptureTree: %v %v", resp, err)
	}
	return resp.Responses[0]
}

// BenchmarkStageTree10k stages the captured 10,000-file tree and removes
// it (StageTree, hard links), against castd's own staging of the same tree
// from the same store (localexec.MaterializeDir, copies).
func BenchmarkStageTree10k(b *testing.B) {
	src := sourceTree(b, 10000)
	e := newEnv(b)
	root := capture(b, e, src).RootDirectoryDigest
	b.Run("StageTree", func(b *testing.B) {
		for b.Loop() {
			stream, err := e.local.StageTree(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			if err := stream.Send(&localcaspb.StageTreeRequest{RootDigest: root}); err != nil {
				b.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				b.Fatal(err)
			}
			if err := stream.Send(&localcaspb.StageTreeRequest{}); err != nil {
				b.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("localexec.MaterializeDir", func(b *testing.B) {
		rd, _ := digest.FromProto(root)
		for b.Loop() {
			dst := filepath.Join(e.cacheDir, "cas", "bench-stage")
			if err := localexec.MaterializeDir(b.Context(), e.store, rd, dst); err != nil {
				b.Fatal(err)
			}
			if err := os.RemoveAll(dst); err != nil {
				b.Fatal(err)
			}
		}
	})
}
