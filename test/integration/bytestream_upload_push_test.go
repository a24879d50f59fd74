package integration_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestByteStreamUploadPushed: a large ByteStream upload is taken into the
// local store by renaming its spool file, then passed through the CAS
// chain; the write-back queue must still see it and push it.
func TestByteStreamUploadPushed(t *testing.T) {
	user := startPlainUpstream(t)
	l := newLayout(t)
	_, conn, ctl := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", user.serverYAML("all", true)))
	ctx := ctxFor(t, time.Minute)
	b := randomBlob(3<<20 + 5) // many write requests: the spooled path
	if err := bytestreamWrite(ctx, conn, b); err != nil {
		t.Fatal(err)
	}
	drained(t, ctl, 1)
	if !user.has(t, b.d) {
		t.Error("the push remote lacks the uploaded blob after the queue drained")
	}
	if got, err := readBlob(ctx, conn, b.d); err != nil || !bytes.Equal(got, b.data) {
		t.Errorf("reading the uploaded blob back: %d bytes, %v", len(got), err)
	}
}
