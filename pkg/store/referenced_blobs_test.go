package store_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

func TestReferencedBlobs(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory()
	put := func(b []byte) digest.Digest {
		d := digest.OfBytes(b)
		if err := mem.Put(ctx, d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		return d
	}
	out, stdout, inRoot, inChild := put([]byte("out")), put([]byte("stdout")), put([]byte("root file")), put([]byte("child file"))
	tree := &repb.Tree{
		Root:     &repb.Directory{Files: []*repb.FileNode{{Name: "a", Digest: inRoot.Proto()}}},
		Children: []*repb.Directory{{Files: []*repb.FileNode{{Name: "b", Digest: inChild.Proto()}, {Name: "dup", Digest: out.Proto()}}}},
	}
	td, tb, err := digest.OfMessage(tree)
	if err != nil {
		t.Fatal(err)
	}
	put(tb)
	missingTree := digest.OfBytes([]byte("no such tree"))
	garbageTree := put([]byte{0xff, 0xff, 0xff})
	cases := []struct {
		name string
		ar   *repb.ActionResult
		want []digest.Digest
		code codes.Code
	}{
		// Everything a client would fetch, each once, including files inside output trees.
		{"files stdout and tree", &repb.ActionResult{
			OutputFiles:       []*repb.OutputFile{{Path: "o", Digest: out.Proto()}},
			StdoutDigest:      stdout.Proto(),
			OutputDirectories: []*repb.OutputDirectory{{Path: "d", TreeDigest: td.Proto()}},
		}, digest.NewSet(out, stdout, td, inRoot, inChild).Sorted(), codes.OK},
		// An empty result references nothing.
		{"empty", &repb.ActionResult{}, []digest.Digest{}, codes.OK},
		// A stored result with a malformed digest cannot be complete.
		{"bad digest", &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "o", Digest: &repb.Digest{Hash: "x"}}}}, nil, codes.InvalidArgument},
		{"missing tree", &repb.ActionResult{OutputDirectories: []*repb.OutputDirectory{{TreeDigest: missingTree.Proto()}}}, nil, codes.NotFound},
		{"unparsable tree", &repb.ActionResult{OutputDirectories: []*repb.OutputDirectory{{TreeDigest: garbageTree.Proto()}}}, nil, codes.DataLoss},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := store.ReferencedBlobs(ctx, mem, digest.SHA256, tc.ar)
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
			if tc.code == codes.OK && !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMissingBlobsErrorRoundTrip(t *testing.T) {
	// Clients and castd's own retry logic read the MISSING violations back.
	a, b := digest.OfBytes([]byte("a")), digest.OfBytes([]byte("b"))
	err := store.MissingBlobsError("the CAS", []digest.Digest{b, a, b})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("code %v", status.Code(err))
	}
	if got := store.MissingBlobsIn(err); !slices.Equal(got, digest.NewSet(a, b).Sorted()) {
		t.Fatalf("MissingBlobsIn = %v", got)
	}
	if store.MissingBlobsIn(status.Error(codes.NotFound, "x")) != nil {
		t.Fatal("violations read from a non-precondition error")
	}
}
