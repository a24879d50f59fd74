package grpcservers_test

import (
	"io"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/grpcservers"
)

// putDir stores dir and returns its digest.
func (e *env) putDir(t *testing.T, dir *repb.Directory) *repb.Digest {
	t.Helper()
	d, b, err := digest.OfMessage(dir)
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, b)
	return d.Proto()
}

func leaf(name string) *repb.Directory {
	return &repb.Directory{Files: []*repb.FileNode{{Name: name, Digest: digest.Empty.Proto()}}}
}

func TestGetTree(t *testing.T) {
	e := newEnv(t, grpcservers.Options{})
	// root → a, b; a → c, f (f is not stored); b → c (shared), d, e.
	c, d, ee := leaf("c"), leaf("d"), leaf("e")
	cd, dd, ed := e.putDir(t, c), e.putDir(t, d), e.putDir(t, ee)
	fd := digest.OfBytes([]byte("never stored")).Proto()
	a := &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "c", Digest: cd}, {Name: "f", Digest: fd}}}
	b := &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "c", Digest: cd}, {Name: "d", Digest: dd}, {Name: "e", Digest: ed}}}
	ad, bd := e.putDir(t, a), e.putDir(t, b)
	root := &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "a", Digest: ad}, {Name: "b", Digest: bd}}}
	rd := e.putDir(t, root)

	type page struct {
		dirs  []*repb.Directory
		token string
	}
	tests := []struct {
		name  string
		why   string
		req   *repb.GetTreeRequest
		pages []page
	}{
		{"pages of two", "breadth-first, each directory once, missing ones left out",
			&repb.GetTreeRequest{RootDigest: rd, PageSize: 2},
			[]page{{[]*repb.Directory{root, a}, "2"}, {[]*repb.Directory{b, c}, "4"}, {[]*repb.Directory{d, ee}, ""}}},
		{"resume from a token", "a token from an earlier call continues there",
			&repb.GetTreeRequest{RootDigest: rd, PageSize: 2, PageToken: "4"},
			[]page{{[]*repb.Directory{d, ee}, ""}}},
		{"default page size", "page_size 0 lets the server choose",
			&repb.GetTreeRequest{RootDigest: rd},
			[]page{{[]*repb.Directory{root, a, b, c, d, ee}, ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// why: see tc.why
			stream, err := e.cas.GetTree(testutil.Context(t), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			var got []page
			for {
				resp, err := stream.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page{resp.GetDirectories(), resp.GetNextPageToken()})
			}
			if len(got) != len(tc.pages) {
				t.Fatalf("got %d pages, want %d", len(got), len(tc.pages))
			}
			for i := range got {
				if got[i].token != tc.pages[i].token || len(got[i].dirs) != len(tc.pages[i].dirs) {
					t.Fatalf("page %d: token %q, %d dirs; want %q, %d", i, got[i].token, len(got[i].dirs), tc.pages[i].token, len(tc.pages[i].dirs))
				}
				for j := range got[i].dirs {
					if !proto.Equal(got[i].dirs[j], tc.pages[i].dirs[j]) {
						t.Fatalf("page %d dir %d = %v, want %v", i, j, got[i].dirs[j], tc.pages[i].dirs[j])
					}
				}
			}
		})
	}
	errTests := []struct {
		name string
		why  string
		req  *repb.GetTreeRequest
		code codes.Code
	}{
		{"missing root", "a tree without its root is a miss", &repb.GetTreeRequest{RootDigest: fd}, codes.NotFound},
		{"bad token", "tokens are opaque and validated", &repb.GetTreeRequest{RootDigest: rd, PageToken: "x"}, codes.InvalidArgument},
		{"negative page size", "page_size is validated", &repb.GetTreeRequest{RootDigest: rd, PageSize: -1}, codes.InvalidArgument},
		{"bad root digest", "the root digest is validated", &repb.GetTreeRequest{RootDigest: &repb.Digest{Hash: "x"}}, codes.InvalidArgument},
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			// why: see tc.why
			stream, err := e.cas.GetTree(testutil.Context(t), tc.req)
			if err == nil {
				_, err = stream.Recv()
			}
			wantCode(t, err, tc.code, "")
		})
	}
}
