package casd_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
)

// stagedTree captures a small source tree and returns its root digest.
func stagedTreeRoot(t *testing.T, e *env) *repb.Digest {
	t.Helper()
	src := t.TempDir()
	writeFile(t, src, "doc.txt", "docs", 0o644)
	writeFile(t, src, "bin/tool", "#!/bin/sh\necho hi\n", 0o755)
	if err := os.Symlink("bin/tool", filepath.Join(src, "tool")); err != nil {
		t.Fatal(err)
	}
	r, _ := captureTree(t, e, &localcaspb.CaptureTreeRequest{Path: []string{src}})
	return r.RootDirectoryDigest
}

// checkStaged checks the tree of stagedTreeRoot at dir.
func checkStaged(t *testing.T, dir string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, "doc.txt")); err != nil || string(b) != "docs" {
		t.Fatalf("doc.txt: %q %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "bin/tool"))
	if err != nil || fi.Mode()&0o100 == 0 {
		t.Fatalf("bin/tool not executable: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "tool")); err != nil || target != "bin/tool" {
		t.Fatalf("symlink tool -> %q %v", target, err)
	}
}

func TestStageTreeAsBuildStreamStagesADirectory(t *testing.T) {
	// BuildStream sends one request, uses the path, then sends an empty
	// request and waits for the answer that says the tree is gone.
	e := newEnv(t)
	root := stagedTreeRoot(t, e)
	for _, tc := range []struct{ name, path string }{
		{"server chooses the path", ""},
		{"client's new path", filepath.Join(t.TempDir(), "new")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := e.local.StageTree(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&localcaspb.StageTreeRequest{RootDigest: root, Path: tc.path, AccessCredentials: &localcaspb.StageTreeRequest_Credentials{Uid: int64(os.Geteuid())}}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if tc.path != "" && resp.Path != tc.path {
				t.Fatalf("staged at %q, asked for %q", resp.Path, tc.path)
			}
			checkStaged(t, resp.Path)
			if err := stream.Send(&localcaspb.StageTreeRequest{}); err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Fatalf("no answer after clean-up: %v", err)
			}
			if _, err := os.Stat(resp.Path); !os.IsNotExist(err) {
				t.Fatalf("staged tree still there after the second request: %v", err)
			}
		})
	}
}

func TestStageTreeCleansUpWhenTheStreamEnds(t *testing.T) {
	// A client that dies (or stops) without the second request must not
	// leave the tree behind.
	e := newEnv(t)
	root := stagedTreeRoot(t, e)
	stream, err := e.local.StageTree(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&localcaspb.StageTreeRequest{RootDigest: root}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err == nil {
		t.Fatal("an answer after the client closed without a second request")
	}
	if _, err := os.Stat(resp.Path); !os.IsNotExist(err) {
		t.Fatalf("staged tree still there after the stream ended: %v", err)
	}
}

func TestStageTreeFileContents(t *testing.T) {
	e := newEnv(t)
	data := testutil.Put(t, e.store, []byte("linked"))
	mtime := &timestamppb.Timestamp{Seconds: 1234567890}
	root := putDir(t, e, &repb.Directory{Files: []*repb.FileNode{
		{Name: "a", Digest: data.Proto()},
		{Name: "b", Digest: data.Proto(), NodeProperties: &repb.NodeProperties{Mtime: mtime}},
		{Name: "e", Digest: digest.Empty.Proto()},
	}})
	path := filepath.Join(t.TempDir(), "s")
	stream, err := e.local.StageTree(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&localcaspb.StageTreeRequest{RootDigest: root.Proto(), Path: path}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	t.Run("mtime", func(t *testing.T) {
		// A file with an mtime is a copy carrying it; the shared blob file keeps its own.
		fi, err := os.Stat(filepath.Join(path, "b"))
		if err != nil || !fi.ModTime().Equal(mtime.AsTime()) {
			t.Fatalf("b: %v %v, want mtime %v", fi, err, mtime.AsTime())
		}
		if blob, _ := os.Stat(e.blobFile(data.Proto())); blob.ModTime().Equal(mtime.AsTime()) {
			t.Fatal("staging set the mtime of the blob file in the cache")
		}
	})
	t.Run("read-only files", func(t *testing.T) {
		// Staged files must not let a build write into the cache.
		for _, n := range []string{"a", "b", "e"} {
			fi, err := os.Stat(filepath.Join(path, n))
			if err != nil || fi.Mode().Perm()&0o222 != 0 {
				t.Fatalf("%s: %v %v, want a read-only file", n, fi, err)
			}
		}
	})
}

func TestStageTreeRefusals(t *testing.T) {
	e := newEnv(t)
	missing := putDir(t, e, &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: digest.OfBytes([]byte("gone")).Proto()}}})
	full := t.TempDir()
	writeFile(t, full, "x", "x", 0o644)
	bad := putDir(t, e, &repb.Directory{Files: []*repb.FileNode{{Name: "../escape", Digest: digest.Empty.Proto()}}})
	for _, tc := range []struct {
		name string
		req  *localcaspb.StageTreeRequest
		want codes.Code
	}{
		{"file blob missing", &localcaspb.StageTreeRequest{RootDigest: missing.Proto()}, codes.FailedPrecondition},
		{"root missing", &localcaspb.StageTreeRequest{RootDigest: digest.OfBytes([]byte("?")).Proto()}, codes.NotFound},
		{"path not empty", &localcaspb.StageTreeRequest{RootDigest: digest.Empty.Proto(), Path: full}, codes.InvalidArgument},
		{"name leaves the tree", &localcaspb.StageTreeRequest{RootDigest: bad.Proto()}, codes.InvalidArgument},
		{"FUSE", &localcaspb.StageTreeRequest{RootDigest: digest.Empty.Proto(), StagingMode: localcaspb.StageTreeRequest_FUSE}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := e.local.StageTree(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(tc.req); err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); codeOf(err) != tc.want {
				t.Fatalf("%v, want %v", err, tc.want)
			}
		})
	}
	entries, _ := os.ReadDir(filepath.Join(e.cacheDir, "cas", "staging"))
	if len(entries) != 0 {
		t.Fatalf("refused requests left %d staging directories", len(entries))
	}
}

func TestStageTreeEndsWhenTheDaemonStops(t *testing.T) {
	// A graceful stop must not wait for a client that still holds a
	// staged tree (BuildStream kills the daemon 15 s after SIGTERM).
	e := newEnv(t)
	c, cancel := context.WithTimeout(ctx(t), 10*time.Second) // without the fix: DEADLINE_EXCEEDED, not a hang
	defer cancel()
	stream, err := e.local.StageTree(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&localcaspb.StageTreeRequest{RootDigest: digest.Empty.Proto()}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	e.daemon.Stopping()
	if _, err := stream.Recv(); codeOf(err) != codes.Unavailable {
		t.Fatalf("after Stopping: %v, want UNAVAILABLE", err)
	}
	if _, err := os.Stat(resp.Path); !os.IsNotExist(err) {
		t.Fatalf("staged tree still there: %v", err)
	}
}
