package integration_test

import (
	"testing"

	"google.golang.org/grpc/credentials/insecure"
)

// TestStorageServiceWriteThrough: with cache.storage-service the remote
// CAS is the primary store (BuildStream's meaning), so a write is
// acknowledged only once the storage service has it, and outputs of local
// execution go there too. Every check below asks the upstream once, right
// after the call returned: no polling.
func TestStorageServiceWriteThrough(t *testing.T) {
	up := startPlainUpstream(t)
	l := newLayout(t)
	ws, conn, _ := startWorkstation(t, l, "cache:\n  storage-service: {url: "+up.url+", "+remoteConn+"}\n")
	upConn := dialTCP(t, up.addr, insecure.NewCredentials())
	ctx := ctxFor(t, execTimeout)
	onUpstream := func(t *testing.T, what string, b blob) {
		t.Helper()
		missing, err := findMissing(ctx, upConn, b.d)
		if err != nil || len(missing) != 0 {
			t.Fatalf("%s: the storage service lacks it right after the call returned (missing %v, %v)", what, missing, err)
		}
	}

	t.Run("bytestream write", func(t *testing.T) {
		t.Log("the 6 MB blob of the report: present upstream when Write returns")
		b := randomBlob(6 << 20)
		if err := bytestreamWrite(ctx, conn, b); err != nil {
			t.Fatal(err)
		}
		onUpstream(t, "ByteStream.Write", b)
	})
	t.Run("batch update", func(t *testing.T) {
		t.Log("small blobs take the in-memory path; they are written through as well")
		b := randomBlob(1000)
		if err := batchUpdate(ctx, conn, b); err != nil {
			t.Fatal(err)
		}
		onUpstream(t, "BatchUpdateBlobs", b)
	})
	t.Run("local execution output", func(t *testing.T) {
		t.Log("an action castd runs itself stores its outputs on the storage service before Execute returns")
		re := newREClient(t, ws.socket)
		// The output differs from every input, which were written through already.
		a := re.upload(t, testAction{script: "tr a-z A-Z < in.txt > out.txt", inputs: map[string]string{"in.txt": "output for the storage service " + l.base}, outputs: []string{"out.txt"}})
		out := re.execute(ctx, a.digest)
		out.ok(t, "local execution")
		d := out.output(t, "out.txt")
		missing, err := findMissing(ctx, upConn, d)
		if err != nil || len(missing) != 0 {
			t.Fatalf("the output %s is not on the storage service after Execute returned (missing %v, %v)", d.GetHash(), missing, err)
		}
	})
}
