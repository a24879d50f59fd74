package store_test

import (
	"context"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// countingCAS counts FindMissing calls to check they are batched.
type countingCAS struct {
	store.CAS
	findMissingCalls int
}

func (c *countingCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	c.findMissingCalls++
	return c.CAS.FindMissing(ctx, ds)
}

func TestCompletenessCheckingActionCache(t *testing.T) {
	ctx := context.Background()
	l := store.NewMemory()
	out, outD := []byte("output file"), digest.OfBytes([]byte("output file"))
	stdout, stdoutD := []byte("stdout"), digest.OfBytes([]byte("stdout"))
	leaf, leafD := []byte("file in a subdirectory"), digest.OfBytes([]byte("file in a subdirectory"))
	top, topD := []byte("top-level file"), digest.OfBytes([]byte("top-level file"))
	tree := &repb.Tree{
		Root:     &repb.Directory{Files: []*repb.FileNode{{Name: "top", Digest: topD.Proto()}}},
		Children: []*repb.Directory{{Files: []*repb.FileNode{{Name: "leaf", Digest: leafD.Proto()}}}},
	}
	treeD, treeBytes, err := digest.OfMessage(tree)
	if err != nil {
		t.Fatal(err)
	}
	result := &repb.ActionResult{
		OutputFiles:       []*repb.OutputFile{{Path: "out", Digest: outD.Proto()}},
		OutputDirectories: []*repb.OutputDirectory{{Path: "dir", TreeDigest: treeD.Proto()}},
		StdoutDigest:      stdoutD.Proto(),
	}
	all := [][]byte{out, stdout, leaf, top, treeBytes}
	for _, tc := range []struct {
		name     string
		skip     []byte // the one blob not stored; nil stores all
		wantCode codes.Code
	}{
		// Every referenced blob exists: the result is served.
		{"all present", nil, codes.OK},
		// A missing output file makes the result unusable.
		{"missing output file", out, codes.NotFound},
		// A missing stdout too.
		{"missing stdout", stdout, codes.NotFound},
		// The Tree itself is missing: its files cannot even be listed.
		{"missing tree", treeBytes, codes.NotFound},
		// A file deep in an output directory's Tree is missing.
		{"missing file in tree child", leaf, codes.NotFound},
		// A file at the root of the Tree is missing.
		{"missing file in tree root", top, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Why: an ActionResult is served only when every blob it references exists.
			cas := &countingCAS{CAS: store.NewMemory()}
			for _, b := range all {
				if tc.skip == nil || string(b) != string(tc.skip) {
					testutil.Put(t, cas, b)
				}
			}
			action := digest.OfBytes([]byte(tc.name))
			ac := store.NewCompletenessCheckingActionCache(l, cas)
			if err := ac.UpdateActionResult(ctx, action, result); err != nil {
				t.Fatal(err)
			}
			got, err := ac.GetActionResult(ctx, action)
			if status.Code(err) != tc.wantCode {
				t.Fatalf("GetActionResult = %v, want %v", err, tc.wantCode)
			}
			if tc.wantCode == codes.OK && got.GetStdoutDigest().GetHash() != stdoutD.Hash {
				t.Fatalf("served result %v, want the stored one", got)
			}
			if cas.findMissingCalls > 1 {
				t.Fatalf("FindMissing called %d times, want one batched call", cas.findMissingCalls)
			}
		})
	}
	t.Run("action cache miss", func(t *testing.T) {
		// Why: a miss in the wrapped cache passes through as NOT_FOUND.
		ac := store.NewCompletenessCheckingActionCache(l, l)
		if _, err := ac.GetActionResult(ctx, digest.OfBytes([]byte("never"))); status.Code(err) != codes.NotFound {
			t.Fatalf("GetActionResult = %v, want NOT_FOUND", err)
		}
	})
}
