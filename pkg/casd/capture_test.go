package casd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/pkg/store/casdir"
)

func TestCaptureFilesAsBuildStreamAddsObjects(t *testing.T) {
	// BuildStream writes each proto to <cachedir>/tmp, captures it and
	// then opens <cachedir>/cas/objects/xx/yyyy itself.
	e := newEnv(t)
	tmp := filepath.Join(e.cacheDir, "tmp")
	a := writeFile(t, tmp, "a", "artifact proto", 0o644)
	x := writeFile(t, tmp, "x", "#!/bin/sh\n", 0o755)
	resp, err := e.local.CaptureFiles(ctx(t), &localcaspb.CaptureFilesRequest{Path: []string{a, x, filepath.Join(tmp, "absent")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Responses) != 3 {
		t.Fatalf("got %d responses for 3 paths", len(resp.Responses))
	}
	for i, want := range []struct {
		data string
		exec bool
	}{{"artifact proto", false}, {"#!/bin/sh\n", true}} {
		r := resp.Responses[i]
		if r.GetStatus().GetCode() != 0 || !sameDigest(r.Digest, []byte(want.data)) || r.IsExecutable != want.exec {
			t.Fatalf("response %d: %v, want digest of %q, executable %v", i, r, want.data, want.exec)
		}
		if got := string(e.readBlob(t, r.Digest)); got != want.data {
			t.Fatalf("blob file holds %q, want %q", got, want.data)
		}
		if fi, _ := os.Stat(e.blobFile(r.Digest)); fi.Mode().Perm()&0o222 != 0 {
			t.Fatalf("blob file mode %v is writable; BuildStream hardlinks it", fi.Mode())
		}
	}
	if r := resp.Responses[2]; codes.Code(r.GetStatus().GetCode()) != codes.NotFound || r.Path != filepath.Join(tmp, "absent") {
		t.Fatalf("missing path answered %v, want its own NOT_FOUND", r)
	}
	if _, err := os.Stat(a); err != nil {
		t.Fatalf("source removed without move_files: %v", err)
	}
}

func TestCaptureFilesOptions(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	p := writeFile(t, dir, "f", "data", os.ModeSetuid|0o755)
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	t.Run("node properties with a mask", func(t *testing.T) {
		// unix_mode is masked; mtime keeps its nanoseconds.
		resp, err := e.local.CaptureFiles(ctx(t), &localcaspb.CaptureFilesRequest{
			Path: []string{p}, NodeProperties: []string{"mtime", "unix_mode"}, UnixModeMask: wrapperspb.UInt32(0o222),
		})
		if err != nil {
			t.Fatal(err)
		}
		np := resp.Responses[0].GetNodeProperties()
		if !np.GetMtime().AsTime().Equal(mtime) || np.GetUnixMode().GetValue() != 0o4555 {
			t.Fatalf("node properties %v, want mtime %v and mode 04555", np, mtime)
		}
	})
	t.Run("root", func(t *testing.T) {
		// path resolves inside root; a path leaving it is refused.
		resp, err := e.local.CaptureFiles(ctx(t), &localcaspb.CaptureFilesRequest{Root: dir, Path: []string{"f", "../f"}})
		if err != nil {
			t.Fatal(err)
		}
		if !sameDigest(resp.Responses[0].Digest, []byte("data")) || codes.Code(resp.Responses[1].GetStatus().GetCode()) != codes.InvalidArgument {
			t.Fatalf("responses %v", resp.Responses)
		}
	})
	t.Run("exclusive hints", func(t *testing.T) {
		_, err := e.local.CaptureFiles(ctx(t), &localcaspb.CaptureFilesRequest{Path: []string{p}, BypassLocalCache: true, SkipUpload: true})
		if codeOf(err) != codes.InvalidArgument {
			t.Fatalf("bypass_local_cache with skip_upload: %v, want INVALID_ARGUMENT", err)
		}
	})
	t.Run("move_files", func(t *testing.T) {
		// The file is moved into the cache: stored, and gone from its place.
		m := writeFile(t, dir, "moved", "moved data", 0o644)
		resp, err := e.local.CaptureFiles(ctx(t), &localcaspb.CaptureFilesRequest{Path: []string{m}, MoveFiles: true})
		if err != nil {
			t.Fatal(err)
		}
		if string(e.readBlob(t, resp.Responses[0].Digest)) != "moved data" {
			t.Fatal("moved file not stored")
		}
		if _, err := os.Stat(m); !os.IsNotExist(err) {
			t.Fatalf("source still there after move_files: %v", err)
		}
	})
}

// captureTree captures dir and returns the response and the Tree
// BuildStream reads from disk.
func captureTree(t *testing.T, e *env, req *localcaspb.CaptureTreeRequest) (*localcaspb.CaptureTreeResponse_Response, *repb.Tree) {
	t.Helper()
	resp, err := e.local.CaptureTree(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Responses[0]
	if r.GetStatus().GetCode() != 0 {
		t.Fatalf("CaptureTree: %v", r.Status)
	}
	tree := &repb.Tree{}
	if err := proto.Unmarshal(e.readBlob(t, r.TreeDigest), tree); err != nil {
		t.Fatal(err)
	}
	return r, tree
}

func TestCaptureTreeAsBuildStreamImportsADirectory(t *testing.T) {
	// BuildStream reads the Tree blob from disk, re-encodes tree.root and
	// uses the digest of those bytes as the directory: that blob must be
	// in the cache, and be the root_directory_digest.
	e := newEnv(t)
	src := t.TempDir()
	writeFile(t, src, "b.txt", "bee", 0o644)
	writeFile(t, src, "a.sh", "#!/bin/sh\n", 0o755)
	writeFile(t, src, "sub/c", "sea", 0o644)
	writeFile(t, src, "sub2/c", "sea", 0o644) // same Directory as sub: one Tree child
	if err := os.Mkdir(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/c", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	r, tree := captureTree(t, e, &localcaspb.CaptureTreeRequest{Path: []string{src}})
	reencoded, err := proto.Marshal(tree.Root) // what Python's SerializeToString gives, see encoding_test.go
	if err != nil {
		t.Fatal(err)
	}
	if !sameDigest(r.RootDirectoryDigest, reencoded) {
		t.Fatalf("root_directory_digest %v is not the digest of the re-encoded tree.root", r.RootDirectoryDigest)
	}
	if string(e.readBlob(t, r.RootDirectoryDigest)) != string(reencoded) {
		t.Fatal("root Directory blob differs from the re-encoded tree.root")
	}
	root := tree.Root
	names := func(n int, get func(int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = get(i)
		}
		return out
	}
	files := names(len(root.Files), func(i int) string { return root.Files[i].Name })
	dirs := names(len(root.Directories), func(i int) string { return root.Directories[i].Name })
	if got := append(append(files, dirs...), root.Symlinks[0].Name+"->"+root.Symlinks[0].Target); !equal(got, []string{"a.sh", "b.txt", "empty", "sub", "sub2", "link->sub/c"}) {
		t.Fatalf("root entries %v", got)
	}
	if !root.Files[0].IsExecutable || root.Files[1].IsExecutable {
		t.Fatalf("executable bits: %v", root.Files)
	}
	if len(tree.Children) != 2 { // empty and sub (sub2 is the same Directory)
		t.Fatalf("tree has %d children, want 2 distinct", len(tree.Children))
	}
	for _, dn := range root.Directories {
		sub := &repb.Directory{}
		if err := proto.Unmarshal(e.readBlob(t, dn.Digest), sub); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range root.Files {
		e.readBlob(t, f.Digest)
	}
}

func TestCaptureTreeOptions(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	f := writeFile(t, src, "d/f", "x", 0o644)
	mtime := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := os.Chtimes(f, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	t.Run("mtime", func(t *testing.T) {
		// BuildStream asks for mtime for sources whose times matter.
		_, tree := captureTree(t, e, &localcaspb.CaptureTreeRequest{Path: []string{src}, NodeProperties: []string{"mtime"}})
		got := tree.Children[0].Files[0].GetNodeProperties().GetMtime()
		if !got.AsTime().Equal(mtime) || tree.Root.GetNodeProperties().GetMtime() == nil {
			t.Fatalf("file mtime %v (want %v), root directory properties %v", got, mtime, tree.Root.GetNodeProperties())
		}
	})
	t.Run("no properties unless asked", func(t *testing.T) {
		_, tree := captureTree(t, e, &localcaspb.CaptureTreeRequest{Path: []string{src}})
		if tree.Children[0].Files[0].NodeProperties != nil || tree.Root.NodeProperties != nil {
			t.Fatalf("properties recorded without being asked for: %v", tree)
		}
	})
	t.Run("move_files", func(t *testing.T) {
		_, tree := captureTree(t, e, &localcaspb.CaptureTreeRequest{Path: []string{src}, MoveFiles: true})
		e.readBlob(t, tree.Children[0].Files[0].Digest)
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Fatalf("file still there after move_files: %v", err)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		resp, err := e.local.CaptureTree(ctx(t), &localcaspb.CaptureTreeRequest{Path: []string{filepath.Join(src, "nope")}})
		if err != nil || codes.Code(resp.Responses[0].GetStatus().GetCode()) != codes.NotFound {
			t.Fatalf("missing directory: %v %v", resp, err)
		}
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCaptureWhenTheCacheIsFull(t *testing.T) {
	// When only this session's blobs fill the quota, BuildStream must get
	// RESOURCE_EXHAUSTED on the path (it reports "cache too full"); the
	// other paths of the call still get their answers.
	e := newEnvWith(t, casdir.Options{QuotaHigh: 100, ProtectSessionBlobs: true})
	dir := t.TempDir()
	first := writeFile(t, dir, "first", strings.Repeat("a", 80), 0o644)
	second := writeFile(t, dir, "second", strings.Repeat("b", 50), 0o644)
	resp, err := e.local.CaptureFiles(ctx(t), &localcaspb.CaptureFilesRequest{Path: []string{first, second}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Responses[0].GetStatus().GetCode() != 0 || codes.Code(resp.Responses[1].GetStatus().GetCode()) != codes.ResourceExhausted {
		t.Fatalf("responses %v, want OK then RESOURCE_EXHAUSTED", resp.Responses)
	}
	tree, err := e.local.CaptureTree(ctx(t), &localcaspb.CaptureTreeRequest{Path: []string{dir}})
	if err != nil || codes.Code(tree.Responses[0].GetStatus().GetCode()) != codes.ResourceExhausted {
		t.Fatalf("CaptureTree: %v %v, want RESOURCE_EXHAUSTED", tree, err)
	}
}
