package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// putBlob stores b in cas and returns its digest.
func putBlob(t *testing.T, cas store.CAS, b []byte) digest.Digest {
	t.Helper()
	d := digest.OfBytes(b)
	if err := cas.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestWriteOutputs(t *testing.T) {
	// bst run must rebuild outputs exactly: Trees whose child Directories are
	// only inside the Tree blob, exec bits, symlinks, inline contents.
	ctx := context.Background()
	cas := store.NewMemory()
	tool := putBlob(t, cas, []byte("#!/bin/sh\n"))
	child := &repb.Directory{Files: []*repb.FileNode{{Name: "tool", Digest: tool.Proto(), IsExecutable: true}},
		Symlinks: []*repb.SymlinkNode{{Name: "alias", Target: "tool"}}}
	childDigest, _, _ := digest.OfMessage(child)
	tree := &repb.Tree{
		Root:     &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "sub", Digest: childDigest.Proto()}, {Name: "empty", Digest: digest.OfBytes(nil).Proto()}}},
		Children: []*repb.Directory{child, {}},
	}
	treeBytes, _ := proto.MarshalOptions{Deterministic: true}.Marshal(tree)
	treeDigest := putBlob(t, cas, treeBytes)
	res := &repb.ActionResult{
		OutputFiles:       []*repb.OutputFile{{Path: "a/inline.txt", Digest: digest.OfBytes([]byte("hi")).Proto(), Contents: []byte("hi")}},
		OutputDirectories: []*repb.OutputDirectory{{Path: "gen", TreeDigest: treeDigest.Proto()}},
		OutputSymlinks:    []*repb.OutputSymlink{{Path: "latest", Target: "gen/sub"}},
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "gen", "stale"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeOutputs(ctx, cas, res, dir); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ok   func() bool
	}{
		{"inline file", func() bool { b, _ := os.ReadFile(filepath.Join(dir, "a", "inline.txt")); return string(b) == "hi" }},
		{"exec bit from tree", func() bool {
			fi, err := os.Stat(filepath.Join(dir, "gen", "sub", "tool"))
			return err == nil && fi.Mode().Perm()&0o100 != 0
		}},
		{"symlink in tree", func() bool { l, _ := os.Readlink(filepath.Join(dir, "gen", "sub", "alias")); return l == "tool" }},
		{"empty dir in tree", func() bool { fi, err := os.Stat(filepath.Join(dir, "gen", "empty")); return err == nil && fi.IsDir() }},
		{"old output replaced", func() bool { _, err := os.Stat(filepath.Join(dir, "gen", "stale")); return os.IsNotExist(err) }},
		{"output symlink", func() bool { l, _ := os.Readlink(filepath.Join(dir, "latest")); return l == "gen/sub" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok() {
				t.Error("output not written as expected")
			}
		})
	}
	t.Run("escaping path refused", func(t *testing.T) {
		// A server must not make bst write outside the working directory.
		bad := &repb.ActionResult{OutputSymlinks: []*repb.OutputSymlink{{Path: "../x", Target: "y"}}}
		if err := writeOutputs(ctx, cas, bad, dir); err == nil {
			t.Error("accepted ../x")
		}
	})
}

func TestTreeOverlayAndMeterServeBatchReads(t *testing.T) {
	// why: a Tree's directories are read with GetMany (store.ReadMessage); the overlay must serve them from the Tree and the meter count them, as for Get.
	ctx := context.Background()
	base := store.NewMemory()
	file := putBlob(t, base, []byte("file"))
	tree := &repb.Tree{Root: &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: file.Proto()}}}}
	overlay, root, err := treeCAS(base, tree)
	if err != nil {
		t.Fatal(err)
	}
	m := &meter{verb: "downloaded", quiet: true, total: -1}
	cas := withMeter(overlay, m)
	var dir repb.Directory
	if err := store.ReadMessage(ctx, cas, root, &dir); err != nil || len(dir.GetFiles()) != 1 {
		t.Fatalf("root directory through the overlay: %v, %v", &dir, err)
	}
	rs := cas.GetMany(ctx, []digest.Digest{root, file})
	if rs[0].Err != nil || rs[1].Err != nil || string(rs[1].Data) != "file" {
		t.Fatalf("GetMany of the overlay's root and the base's file: %v, %v", rs[0].Err, rs[1].Err)
	}
	if got, want := m.done.Load(), 2*root.Size+file.Size; got != want {
		t.Errorf("meter counted %d bytes; want %d (the root twice, the file once)", got, want)
	}
}
