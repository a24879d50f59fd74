package integration_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	localcaspb "github.com/castd/castd/api/build/buildgrid"
	"github.com/castd/castd/pkg/digest"
)

// casdBin returns castd under the name BuildStream looks for on PATH: a
// buildbox-casd symlink to the castd binary in a temporary directory.
func casdBin(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	link := filepath.Join(dir, "buildbox-casd")
	if err := os.Symlink(castdBin, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// casdProc is one buildbox-casd process started as BuildStream starts it.
type casdProc struct {
	*castdProc
	cacheDir, socket string
	conn             *grpc.ClientConn
	local            localcaspb.LocalContentAddressableStorageClient
	cas              repb.ContentAddressableStorageClient
}

// startCasd starts castd as buildbox-casd on cacheDir with BuildStream
// 2.8's command line (BUILDSTREAM.md), cwd the cache directory and its own
// process group, and waits for the socket file as BuildStream does.
func startCasd(t testing.TB, bin, cacheDir string, poll ...time.Duration) *casdProc {
	t.Helper()
	return startCasdEnv(t, bin, cacheDir, cleanEnv(), poll...)
}

// startCasdEnv is startCasd with the process environment env (where the
// casd looks for the user's castd daemon).
func startCasdEnv(t testing.TB, bin, cacheDir string, env []string, poll ...time.Duration) *casdProc {
	t.Helper()
	return startCasdArgs(t, bin, cacheDir, env, nil, poll...)
}

// startCasdArgs is startCasdEnv with extra flags after BuildStream's
// usual ones (the --cas-* flags of `cache: storage-service`).
func startCasdArgs(t testing.TB, bin, cacheDir string, env, extra []string, poll ...time.Duration) *casdProc {
	t.Helper()
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(cacheDir, "casserver-"+filepath.Base(t.TempDir())+".sock")
	args := append([]string{"--bind=unix:" + sock, "--log-level=info", "--cache-failures=false",
		"--quota-low=80%", "--reserved=1000000", "--protect-session-blobs", "--buildbox-run=/nonexistent/buildbox-run", "--jobs=2"}, extra...)
	cmd := exec.Command(bin, append(args, cacheDir)...)
	cmd.Dir = cacheDir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &casdProc{castdProc: startProc(t, cmd), cacheDir: cacheDir, socket: sock}
	if b, ok := t.(*testing.B); ok {
		defer b.StopTimer() // the client set-up is not start-up
	}
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(pollInterval(poll))
	defer tick.Stop()
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if p.exitedNow() || time.Now().After(deadline) {
			t.Fatalf("buildbox-casd did not create %s:\n%s", sock, p.logs.String())
		}
		<-tick.C
	}
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p.conn, p.local, p.cas = conn, localcaspb.NewLocalContentAddressableStorageClient(conn), repb.NewContentAddressableStorageClient(conn)
	return p
}

// pollInterval is BuildStream's own interval (10 ms) unless a benchmark
// asks for a finer one.
func pollInterval(poll []time.Duration) time.Duration {
	if len(poll) > 0 {
		return poll[0]
	}
	return 10 * time.Millisecond
}

// stop sends sig and checks BuildStream's expectations: exit 0 within the
// 15 s it allows, and the socket file gone.
func (p *casdProc) stop(t testing.TB, sig syscall.Signal) {
	t.Helper()
	p.signal(sig)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("buildbox-casd exited %d after %v, want 0:\n%s", code, sig, p.logs.String())
	}
	if _, err := os.Lstat(p.socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket %s still there after exit: %v", p.socket, err)
	}
}

// objectFile is where BuildStream opens blob d.
func objectFile(cacheDir string, d *repb.Digest) string {
	return filepath.Join(cacheDir, "cas", "objects", d.GetHash()[:2], d.GetHash()[2:])
}

func callCtx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestCasdBstBuildSequence(t *testing.T) {
	// The RPCs of `bst build` of an element with a local source, in order,
	// against the real binary started as buildbox-casd; BuildStream reads
	// the blobs it is told about from disk.
	base := shortTempDir(t)
	cacheDir := filepath.Join(base, "cache")
	p := startCasd(t, casdBin(t), cacheDir)
	c := callCtx(t)

	usage, err := p.local.GetLocalDiskUsage(c, &localcaspb.GetLocalDiskUsageRequest{})
	if err != nil {
		t.Fatalf("GetLocalDiskUsage: %v", err)
	}
	// Local source: CaptureTree of the source directory.
	src := filepath.Join(base, "src")
	mustWrite(t, filepath.Join(src, "hello.sh"), "#!/bin/sh\necho hello\n", 0o755)
	mustWrite(t, filepath.Join(src, "data/readme"), "read me\n", 0o644)
	ct, err := p.local.CaptureTree(c, &localcaspb.CaptureTreeRequest{Path: []string{src}, NodeProperties: []string{"mtime"}})
	if err != nil || ct.Responses[0].GetStatus().GetCode() != 0 {
		t.Fatalf("CaptureTree: %v %v", ct, err)
	}
	tree := &repb.Tree{}
	if err := proto.Unmarshal(mustRead(t, objectFile(cacheDir, ct.Responses[0].TreeDigest)), tree); err != nil {
		t.Fatal(err)
	}
	rootBytes, _ := proto.Marshal(tree.Root)
	rootDigest := digest.OfBytes(rootBytes).Proto()
	if !bytes.Equal(mustRead(t, objectFile(cacheDir, rootDigest)), rootBytes) {
		t.Fatal("the re-encoded tree.root is not in the cache under its digest")
	}
	// Protos BuildStream writes to <cachedir>/tmp and captures.
	var protos []string
	for i, content := range []string{"source proto", "artifact proto", "build log"} {
		protos = append(protos, filepath.Join(cacheDir, "tmp", "obj"+string(rune('a'+i))))
		mustWrite(t, protos[i], content, 0o644)
	}
	cf, err := p.local.CaptureFiles(c, &localcaspb.CaptureFilesRequest{Path: protos})
	if err != nil || len(cf.Responses) != len(protos) {
		t.Fatalf("CaptureFiles: %v %v", cf, err)
	}
	for i, r := range cf.Responses {
		if r.GetStatus().GetCode() != 0 || string(mustRead(t, objectFile(cacheDir, r.Digest))) != string(mustRead(t, protos[i])) {
			t.Fatalf("CaptureFiles %s: %v", protos[i], r)
		}
	}
	// FindMissingBlobs, FetchTree with instance "", StageTree.
	fm, err := p.cas.FindMissingBlobs(c, &repb.FindMissingBlobsRequest{BlobDigests: []*repb.Digest{rootDigest, cf.Responses[0].Digest, digest.OfBytes([]byte("never")).Proto()}})
	if err != nil || len(fm.MissingBlobDigests) != 1 {
		t.Fatalf("FindMissingBlobs: %v %v", fm, err)
	}
	if _, err := p.local.FetchTree(c, &localcaspb.FetchTreeRequest{RootDigest: rootDigest, FetchFileBlobs: true}); err != nil {
		t.Fatalf("FetchTree: %v", err)
	}
	staged := stageAndRead(t, c, p, rootDigest, "hello.sh")
	if staged != "#!/bin/sh\necho hello\n" {
		t.Fatalf("staged hello.sh: %q", staged)
	}
	after, err := p.local.GetLocalDiskUsage(c, &localcaspb.GetLocalDiskUsageRequest{})
	if err != nil || after.SizeBytes <= usage.SizeBytes {
		t.Fatalf("GetLocalDiskUsage after capturing: %v (before %v) %v", after, usage, err)
	}
	p.stop(t, syscall.SIGTERM)
}

// stageAndRead stages root through StageTree as BuildStream does, reads
// name from it, and unstages it.
func stageAndRead(t *testing.T, c context.Context, p *casdProc, root *repb.Digest, name string) string {
	t.Helper()
	stream, err := p.local.StageTree(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&localcaspb.StageTreeRequest{RootDigest: root, AccessCredentials: &localcaspb.StageTreeRequest_Credentials{Uid: int64(os.Geteuid())}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("StageTree: %v", err)
	}
	data := string(mustRead(t, filepath.Join(resp.Path, name)))
	if err := stream.Send(&localcaspb.StageTreeRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("StageTree clean-up answer: %v", err)
	}
	if _, err := os.Stat(resp.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staged tree %s not removed: %v", resp.Path, err)
	}
	return data
}

func TestCasdStopsCleanly(t *testing.T) {
	// BuildStream sends SIGTERM and reports a non-zero exit, or one after
	// 15 s, as a bug; a person at a shell uses Ctrl-C.
	bin := casdBin(t)
	t.Run("SIGINT", func(t *testing.T) {
		p := startCasd(t, bin, filepath.Join(shortTempDir(t), "cache"))
		p.stop(t, syscall.SIGINT)
	})
	t.Run("SIGTERM with a tree still staged", func(t *testing.T) {
		// A StageTree stream left open must neither hold the exit nor leave its tree.
		p := startCasd(t, bin, filepath.Join(shortTempDir(t), "cache"))
		stream, err := p.local.StageTree(callCtx(t))
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
		p.stop(t, syscall.SIGTERM)
		if _, err := os.Stat(resp.Path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("staged tree %s left behind: %v", resp.Path, err)
		}
	})
}

func TestCasdTwoProcessesOnOneCacheDirectory(t *testing.T) {
	// Two bst commands on one cache run two daemons at once: each sees the
	// other's blobs, and one stopping does not disturb the other.
	cacheDir := filepath.Join(shortTempDir(t), "cache")
	bin := casdBin(t)
	a := startCasd(t, bin, cacheDir)
	b := startCasd(t, bin, cacheDir)
	c := callCtx(t)
	f := filepath.Join(cacheDir, "tmp", "from-a")
	mustWrite(t, f, "written through a", 0o644)
	cf, err := a.local.CaptureFiles(c, &localcaspb.CaptureFilesRequest{Path: []string{f}})
	if err != nil || cf.Responses[0].GetStatus().GetCode() != 0 {
		t.Fatalf("CaptureFiles on a: %v %v", cf, err)
	}
	a.stop(t, syscall.SIGTERM)
	fm, err := b.cas.FindMissingBlobs(c, &repb.FindMissingBlobsRequest{BlobDigests: []*repb.Digest{cf.Responses[0].Digest}})
	if err != nil || len(fm.MissingBlobDigests) != 0 {
		t.Fatalf("b does not see a's blob: %v %v", fm, err)
	}
	fetched, err := b.local.FetchMissingBlobs(c, &localcaspb.FetchMissingBlobsRequest{BlobDigests: []*repb.Digest{cf.Responses[0].Digest}})
	if err != nil || len(fetched.Responses) != 0 {
		t.Fatalf("FetchMissingBlobs on b: %v %v", fetched, err)
	}
	// The usage count is shared too: b counts what a wrote.
	if u, err := b.local.GetLocalDiskUsage(c, &localcaspb.GetLocalDiskUsageRequest{}); err != nil || u.SizeBytes < cf.Responses[0].Digest.SizeBytes {
		t.Fatalf("GetLocalDiskUsage on b: %v %v, want at least a's %d bytes", u, err, cf.Responses[0].Digest.SizeBytes)
	}
	b.stop(t, syscall.SIGTERM)
}

func TestCasdCommandLine(t *testing.T) {
	bin := casdBin(t)
	run := func(t *testing.T, name string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = cleanEnv()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
	}
	t.Run("version as BuildStream checks it", func(t *testing.T) {
		// _casdprocessmanager: `buildbox-casd --version /`, exit 0, first line matched.
		for _, args := range [][]string{{bin, "--version", "/"}, {castdBin, "casd", "--version"}} {
			out, errOut, code := run(t, args[0], args[1:]...)
			if code != 0 || !regexp.MustCompile(`^.*buildbox-casd (\d+).(\d+).(\d+)`).MatchString(out) {
				t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
			}
		}
	})
	t.Run("help", func(t *testing.T) {
		// --help and -h print the usage to stdout and exit 0, without a
		// cache directory.
		for _, args := range [][]string{{bin, "--help"}, {bin, "-h"}, {castdBin, "casd", "--help"}} {
			out, errOut, code := run(t, args[0], args[1:]...)
			if code != 0 || !strings.HasPrefix(out, "usage: buildbox-casd") || !strings.Contains(out, "--cas-remote") || errOut != "" {
				t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
			}
		}
	})
	t.Run("unknown flag", func(t *testing.T) {
		// A newer BuildStream's flag must fail loudly, naming the flag.
		_, errOut, code := run(t, bin, "--bind=unix:/nonexistent/s", "--fuse-mount=/x", "/nonexistent/cache")
		if code == 0 || !strings.Contains(errOut, "--fuse-mount") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
}

// shortTempDir is a temporary directory with a short path (socket paths
// must stay under ~100 bytes), removed when t ends.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "casd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func mustWrite(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkCasdStartToReady is the time from starting buildbox-casd (castd)
// with BuildStream's command line until its socket file exists, which is
// when BuildStream starts using it; every bst command pays it. The socket
// is polled every millisecond; stopping is not timed.
func BenchmarkCasdStartToReady(b *testing.B) {
	bin := casdBin(b)
	cacheDir := filepath.Join(shortTempDir(b), "cache")
	for b.Loop() {
		p := startCasd(b, bin, cacheDir, time.Millisecond)
		b.StopTimer()
		p.stop(b, syscall.SIGTERM)
		b.StartTimer()
	}
}
