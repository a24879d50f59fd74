package localexec_test

import (
	"context"
	"io"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/proto"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/localexec"
)

// blobIn reads d, a digest of fn, from the fixture's CAS: it must be
// stored under fn.
func (f *fixture) blobIn(t testing.TB, fn digest.Function, d *repb.Digest) []byte {
	t.Helper()
	dg, err := digest.FromProtoIn(fn, d)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.cas.Get(context.Background(), dg, 0)
	if err != nil {
		t.Fatalf("blob %s: %v", dg, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantDigestOf fails unless d is the fn digest of b.
func wantDigestOf(t testing.TB, what string, fn digest.Function, d *repb.Digest, b []byte) {
	t.Helper()
	if want := digest.OfBytesIn(fn, b); d.GetHash() != want.Hash || d.GetSizeBytes() != want.Size {
		t.Errorf("%s digest %s/%d, want the %s digest %s", what, d.GetHash(), d.GetSizeBytes(), fn, want)
	}
}

func TestRunInBLAKE3(t *testing.T) {
	// Why: a BLAKE3 client's action has BLAKE3 digests all the way down and
	// reads its outputs by BLAKE3 digests; an output hashed with SHA-256
	// would be a blob the client can never find (or verify).
	const fn = digest.BLAKE3
	ctx := context.Background()
	f := newFixture(t, localexec.Options{})
	dir := t.TempDir()
	writeTree(t, dir, map[string]node{"src/in.txt": {content: "hello"}, "src/deep/more.txt": {content: "more"}})
	root, err := localexec.UploadDirIn(ctx, f.cas, fn, dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := outputs(shell(`cat src/in.txt > out.txt && mkdir -p gen/sub && cp src/deep/more.txt gen/sub/m.txt && echo out; echo err >&2`), "out.txt", "gen")
	a, ad, err := localexec.UploadAction(ctx, f.cas, cmd, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	if root.Func != fn || ad.Func != fn {
		t.Fatalf("input root %v, action %v: want both %s (the input root's function)", root, ad, fn)
	}

	res, err := f.runner.RunIn(ctx, fn, a, nil, nil)
	if err != nil || res.GetExitCode() != 0 {
		t.Fatalf("RunIn: exit %d, %v", res.GetExitCode(), err)
	}
	if o := res.GetOutputFiles(); len(o) != 1 || string(f.blobIn(t, fn, o[0].GetDigest())) != "hello" {
		t.Fatalf("output files %v, want out.txt holding the input", o)
	}
	wantDigestOf(t, "out.txt", fn, res.GetOutputFiles()[0].GetDigest(), []byte("hello"))
	wantDigestOf(t, "stdout", fn, res.GetStdoutDigest(), f.blobIn(t, fn, res.GetStdoutDigest()))
	wantDigestOf(t, "stderr", fn, res.GetStderrDigest(), f.blobIn(t, fn, res.GetStderrDigest()))
	if got := string(f.blobIn(t, fn, res.GetStdoutDigest())); got != "out\n" {
		t.Errorf("stdout %q", got)
	}

	if len(res.GetOutputDirectories()) != 1 {
		t.Fatalf("output directories %v, want gen", res.GetOutputDirectories())
	}
	td := res.GetOutputDirectories()[0].GetTreeDigest()
	tb := f.blobIn(t, fn, td)
	wantDigestOf(t, "tree", fn, td, tb)
	tree := &repb.Tree{}
	if err := proto.Unmarshal(tb, tree); err != nil {
		t.Fatal(err)
	}
	sub := tree.GetRoot().GetDirectories()
	if len(sub) != 1 || len(tree.GetChildren()) != 1 {
		t.Fatalf("tree %v, want gen/sub", tree)
	}
	child, err := proto.MarshalOptions{Deterministic: true}.Marshal(tree.GetChildren()[0])
	if err != nil {
		t.Fatal(err)
	}
	wantDigestOf(t, "tree directory sub", fn, sub[0].GetDigest(), child)
	wantDigestOf(t, "directory sub, as stored", fn, sub[0].GetDigest(), f.blobIn(t, fn, sub[0].GetDigest()))
	m := tree.GetChildren()[0].GetFiles()
	if len(m) != 1 || string(f.blobIn(t, fn, m[0].GetDigest())) != "more" {
		t.Fatalf("gen/sub files %v, want m.txt holding the nested input", m)
	}
	wantDigestOf(t, "gen/sub/m.txt", fn, m[0].GetDigest(), []byte("more"))
	f.assertWorkDirEmpty(t)
}

func TestRunInRefusesDigestsOfAnotherFunction(t *testing.T) {
	// Why: a SHA-1 action's 40-character hashes are not SHA-256 digests; a
	// run must read them as the request's function says, and a mismatch is
	// the client's error, not a silent SHA-256 reading.
	ctx := context.Background()
	f := newFixture(t, localexec.Options{})
	root, err := localexec.UploadDirIn(ctx, f.cas, digest.SHA1, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := localexec.UploadAction(ctx, f.cas, shell("true"), root, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.runner.RunIn(ctx, digest.SHA1, a, nil, nil); err != nil {
		t.Fatalf("RunIn(SHA1): %v", err)
	}
	if _, err := f.runner.Run(ctx, a); err == nil {
		t.Fatal("Run (SHA-256) of a SHA-1 action succeeded")
	}
}
