package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

func TestParseDigestFunctions(t *testing.T) {
	content := []byte("x")
	sha, b3 := digest.OfBytes(content), digest.OfBytesIn(digest.BLAKE3, content)
	plain := b3.Hash + "/1"
	blake3Flag := functionFlag{fn: digest.BLAKE3, set: true}
	for _, c := range []struct {
		name, why string
		flag      functionFlag
		in        string
		want      digest.Digest // zero: a usage error
	}{
		{"plain in the default", "HASH/SIZE is SHA-256 without the flag", functionFlag{}, sha.String(), sha},
		{"plain in blake3", "--digest-function blake3 reads HASH/SIZE as BLAKE3", blake3Flag, plain, b3},
		{"printed blake3 form", "what bst cas put prints parses back, function included", functionFlag{}, b3.String(), b3},
		{"printed form with the flag", "naming the function twice is fine when they agree", blake3Flag, b3.String(), b3},
		{"named sha256", "sha256/HASH/SIZE is accepted too", functionFlag{}, "sha256/" + sha.String(), sha},
		{"form disagrees with the flag", "a blake3/ digest is not silently read as SHA-256", functionFlag{fn: digest.SHA256, set: true}, b3.String(), digest.Digest{}},
		{"unknown function in the form", "a misspelt function is the user's mistake", functionFlag{}, "blake2/" + plain, digest.Digest{}},
		{"sha1 length in sha256", "the hash must fit the function", functionFlag{fn: digest.SHA1, set: true}, plain, digest.Digest{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Log(c.why)
			d, err := c.flag.parseDigest(c.in)
			if c.want == (digest.Digest{}) {
				if ee, ok := err.(*exitError); !ok || ee.code != exitUsage {
					t.Fatalf("parseDigest(%q) = %v, %v; want a usage error", c.in, d, err)
				}
				return
			}
			if err != nil || d != c.want {
				t.Fatalf("parseDigest(%q) = %+v, %v; want %+v", c.in, d, err, c.want)
			}
		})
	}
}

func TestDigestFunctionFlagRefused(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{
		{"cas", "put", "--digest-function", "md4", "x"},
		{"cas", "get", "--digest-function=vso", strings.Repeat("0", 64) + "/0"},
		{"ac", "get", "--digest-function", "", strings.Repeat("0", 64) + "/0"},
		{"artifact", "pull", "--digest-function", "blake2b", "name", "dir"},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			t.Log("a bad --digest-function is a usage error naming the flag, before castd is asked")
			var out, errb bytes.Buffer
			if code := execute(append([]string{"--socket", missing}, args...), &out, &errb); code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, errb.String())
			}
			if !strings.Contains(errb.String(), "--digest-function") || !strings.Contains(errb.String(), "blake3") {
				t.Fatalf("stderr %q does not name --digest-function and the functions it takes", errb.String())
			}
			if strings.Contains(errb.String(), "not running") {
				t.Fatalf("bst tried castd: %q", errb.String())
			}
		})
	}
}

// functionRecorder notes the digest_function of every unary request.
type functionRecorder struct {
	mu  sync.Mutex
	fns map[string][]repb.DigestFunction_Value // by method name
}

func (r *functionRecorder) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if m, ok := req.(interface {
		GetDigestFunction() repb.DigestFunction_Value
	}); ok {
		r.mu.Lock()
		r.fns[filepath.Base(info.FullMethod)] = append(r.fns[filepath.Base(info.FullMethod)], m.GetDigestFunction())
		r.mu.Unlock()
	}
	return h(ctx, req)
}

func (r *functionRecorder) seen(method string) []repb.DigestFunction_Value {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]repb.DigestFunction_Value(nil), r.fns[method]...)
}

// startCastd serves REAPI and the Remote Asset API over one memory store
// on a Unix socket, as castd does for bst.
func startCastd(t *testing.T) (*testutil.REAPIServer, *store.Memory, *functionRecorder) {
	t.Helper()
	rec := &functionRecorder{fns: map[string][]repb.DigestFunction_Value{}}
	mem := store.NewMemory()
	idx := asset.NewLocalIndex(testutil.NewRecords(), asset.LocalOptions{})
	srv := testutil.StartREAPI(t, testutil.REAPIOptions{
		Listen: testutil.ListenUnix, CAS: mem, ActionCache: func(string) store.ActionCache { return mem },
		Unary: []grpc.UnaryServerInterceptor{rec.intercept},
		Register: func(s *grpc.Server) {
			asset.NewServer(func(context.Context, string) (asset.Index, store.CAS, error) { return idx, mem, nil }, asset.Options{}).Register(s)
		},
	})
	return srv, mem, rec
}

// bst runs a bst command line against srv and returns its stdout; any
// exit but 0 fails t.
func bst(t *testing.T, srv *testutil.REAPIServer, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := execute(append([]string{"--socket", srv.Addr, "--quiet"}, args...), &out, &errb); code != exitOK {
		t.Fatalf("bst %s: exit %d; stderr:\n%s", strings.Join(args, " "), code, errb.String())
	}
	return out.String()
}

func TestCASBLAKE3RoundTrip(t *testing.T) {
	srv, mem, rec := startCastd(t)
	ctx := testutil.Context(t)
	dir := t.TempDir()
	content := []byte("a blake3 blob for castd\n")
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, content, 0o644); err != nil {
		t.Fatal(err)
	}
	b3, sha := digest.OfBytesIn(digest.BLAKE3, content), digest.OfBytes(content)

	t.Run("put", func(t *testing.T) {
		t.Log("cas put --digest-function blake3 hashes with BLAKE3, stores the blob as BLAKE3 and prints blake3/HASH/SIZE")
		out := bst(t, srv, "cas", "put", "--digest-function", "blake3", in)
		if want := b3.String() + "  " + in + "\n"; out != want {
			t.Fatalf("put printed %q, want %q", out, want)
		}
		if missing, err := mem.FindMissing(ctx, []digest.Digest{b3, sha}); err != nil || len(missing) != 1 || missing[0] != sha {
			t.Fatalf("castd lacks %v (%v); want the BLAKE3 blob only", missing, err)
		}
		if fns := rec.seen("FindMissingBlobs"); len(fns) == 0 || fns[0] != repb.DigestFunction_BLAKE3 {
			t.Fatalf("FindMissingBlobs sent digest_function %v, want BLAKE3", fns)
		}
	})
	for _, tc := range []struct{ name, why string }{
		{"get with the flag", "cas get --digest-function blake3 HASH/SIZE reads the BLAKE3 blob"},
		{"get by the printed form", "the printed blake3/HASH/SIZE needs no flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			args := []string{"cas", "get", "--digest-function", "blake3", b3.Hash + "/" + "24", "-o", out}
			if tc.name == "get by the printed form" {
				args = []string{"cas", "get", b3.String(), "-o", out}
			}
			bst(t, srv, args...)
			if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("got %q, %v; want %q", got, err, content)
			}
		})
	}
	t.Run("sha256 get misses", func(t *testing.T) {
		t.Log("the same hash read as SHA-256 is another blob, which castd does not have")
		var out, errb bytes.Buffer
		code := execute([]string{"--socket", srv.Addr, "-q", "cas", "get", b3.Hash + "/24"}, &out, &errb)
		if code != exitFailed || !strings.Contains(errb.String(), "not found") {
			t.Fatalf("exit %d, stderr %q; want a miss", code, errb.String())
		}
	})
}

func TestACGetDigestFunction(t *testing.T) {
	t.Log("ac get --digest-function blake3 asks the action cache in BLAKE3")
	srv, _, rec := startCastd(t)
	d := digest.OfBytesIn(digest.BLAKE3, []byte("an action"))
	var out, errb bytes.Buffer
	execute([]string{"--socket", srv.Addr, "ac", "get", "--digest-function", "blake3", d.Hash + "/" + "9"}, &out, &errb)
	if fns := rec.seen("GetActionResult"); len(fns) != 1 || fns[0] != repb.DigestFunction_BLAKE3 {
		t.Fatalf("GetActionResult sent digest_function %v, want [BLAKE3]; stderr %q", fns, errb.String())
	}
}

func TestTreeBLAKE3RoundTrip(t *testing.T) {
	srv, _, rec := startCastd(t)
	src := t.TempDir()
	for p, data := range map[string]string{"a.txt": "file a\n", "sub/b.txt": "file b\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := digest.OfBytesIn(digest.BLAKE3, []byte("file b\n"))
	t.Run("cas put and ls", func(t *testing.T) {
		t.Log("a directory put in BLAKE3 is a BLAKE3 tree, listed with BLAKE3 digests")
		root, _, _ := strings.Cut(bst(t, srv, "cas", "put", "--digest-function", "blake3", src), " ")
		if !strings.HasPrefix(root, "blake3/") {
			t.Fatalf("root %q is not a blake3/ digest", root)
		}
		if ls := bst(t, srv, "cas", "ls", root); !strings.Contains(ls, "sub/b.txt  "+b.String()) {
			t.Fatalf("cas ls %s:\n%s\nlacks sub/b.txt with %s", root, ls, b)
		}
	})
	t.Run("artifact push and pull", func(t *testing.T) {
		t.Log("artifact push/pull --digest-function blake3 records and resolves the tree in BLAKE3")
		pushed := bst(t, srv, "artifact", "push", "--digest-function", "blake3", "proj/x", src)
		out := filepath.Join(t.TempDir(), "out")
		pulled := bst(t, srv, "artifact", "pull", "--digest-function", "blake3", "proj/x", out)
		if pushed != pulled || !strings.HasPrefix(pushed, "blake3/") {
			t.Fatalf("pushed %q, pulled %q; want the same blake3/ root", pushed, pulled)
		}
		if got, err := os.ReadFile(filepath.Join(out, "sub/b.txt")); err != nil || string(got) != "file b\n" {
			t.Fatalf("pulled sub/b.txt = %q, %v", got, err)
		}
		if fns := rec.seen("PushDirectory"); len(fns) != 1 || fns[0] != repb.DigestFunction_BLAKE3 {
			t.Fatalf("PushDirectory sent digest_function %v, want [BLAKE3]", fns)
		}
		var errb bytes.Buffer
		if code := execute([]string{"--socket", srv.Addr, "-q", "artifact", "pull", "proj/x", filepath.Join(t.TempDir(), "sha")}, new(bytes.Buffer), &errb); code != exitFailed {
			t.Fatalf("a SHA-256 pull of a BLAKE3 artifact: exit %d, stderr %q; want a miss", code, errb.String())
		}
	})
}
