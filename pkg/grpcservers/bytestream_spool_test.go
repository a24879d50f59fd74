package grpcservers_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/grpcservers"
)

// inode returns the inode number of path.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// storedFile finds the file of blob d under the store's directory.
func (e *localEnv) storedFile(t *testing.T, d digest.Digest) string {
	t.Helper()
	var found string
	root := filepath.Dir(e.st.TempDir())
	err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() && strings.HasPrefix(de.Name(), d.Hash) {
			found = path
		}
		return err
	})
	if err != nil || found == "" {
		t.Fatalf("no file of %s under %s (%v)", d, root, err)
	}
	return found
}

func TestByteStreamLargeUploadWrittenOnce(t *testing.T) {
	// why: a large upload was written to a spool file and then copied into
	// the store's own file; the spool file itself must become the blob.
	e := newLocalEnv(t, grpcservers.Options{})
	data := pattern(3<<20+7, 71)
	d := digest.OfBytes(data)
	stream := startWrite(testutil.Context(t), t, e.bs, uploadName(d), data, 1<<20)
	ents, err := os.ReadDir(e.st.TempDir())
	if err != nil || len(ents) != 1 {
		t.Fatalf("temp directory during the upload: %v, %v; want one spool file", ents, err)
	}
	spooled := inode(t, filepath.Join(e.st.TempDir(), ents[0].Name()))
	if err := stream.Send(&bspb.WriteRequest{WriteOffset: 1 << 20, Data: data[1<<20:], FinishWrite: true}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.CloseAndRecv(); err != nil || resp.GetCommittedSize() != d.Size {
		t.Fatalf("CloseAndRecv = %v, %v", resp, err)
	}
	if got := inode(t, e.storedFile(t, d)); got != spooled {
		t.Errorf("the stored blob is inode %d, the spool file was %d: its bytes were copied", got, spooled)
	}
	if n := e.tempFiles(t); n != 0 {
		t.Errorf("%d temp files left after the upload", n)
	}
	if got, err := readBS(testutil.Context(t), e.bs, &bspb.ReadRequest{ResourceName: digest.ReadResourceName("main", d)}); err != nil || string(got) != string(data) {
		t.Errorf("read back %d bytes, %v", len(got), err)
	}
}

func TestByteStreamIdleUploadBytesBounded(t *testing.T) {
	// why: partial uploads waiting to be resumed hold disk space outside
	// the store's quota; past MaxIdleUploadBytes the longest idle goes.
	e := newLocalEnv(t, grpcservers.Options{UploadIdleTimeout: time.Hour, MaxIdleUploadBytes: 3 << 19})
	var names []string
	for i := range 2 {
		data := pattern(2<<20, byte(80+i))
		ctx, cancel := context.WithCancel(testutil.Context(t))
		name := uploadName(digest.OfBytes(data))
		startWrite(ctx, t, e.bs, name, data, 1<<20)
		cancel()
		names = append(names, name)
	}
	// 2 MiB idle, 1.5 MiB allowed: one of the two is dropped, the other
	// stays resumable.
	if !testutil.Poll(10*time.Second, func() bool { return e.tempFiles(t) == 1 }) {
		t.Fatalf("%d spool files with two idle uploads of 1 MiB and a bound of 1.5 MiB; want 1", e.tempFiles(t))
	}
	var kept int
	for _, name := range names {
		st, err := e.bs.QueryWriteStatus(testutil.Context(t), &bspb.QueryWriteStatusRequest{ResourceName: name})
		switch {
		case err == nil && st.GetCommittedSize() == 1<<20:
			kept++
		case err != nil:
			wantCode(t, err, codes.NotFound, "")
		default:
			t.Errorf("QueryWriteStatus(%s) = %v", name, st)
		}
	}
	if kept != 1 {
		t.Errorf("%d uploads resumable, want 1", kept)
	}
}
