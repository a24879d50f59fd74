package disk_test

import (
	"bytes"
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/castd/castd/pkg/store/disk"
)

func TestSetQuota(t *testing.T) {
	t.Log("a configuration reload changes the quota of an open store: the next write is held to it")
	l := openStore(t, t.TempDir(), disk.Options{})
	waitReady(t, l)
	if err := l.SetQuota(64<<10, 0); err != nil {
		t.Fatal(err)
	}
	if q := l.Stats().QuotaBytes; q != 64<<10 {
		t.Errorf("Stats().QuotaBytes = %d after SetQuota(64K), want %d", q, 64<<10)
	}
	b, d := blob(128<<10, 1)
	wantCode(t, "Put larger than the new quota", l.Put(context.Background(), d, bytes.NewReader(b)), codes.FailedPrecondition, "larger than the store's room")
	if err := l.SetQuota(0, 0); err != nil {
		t.Fatal(err)
	}
	put(t, l, b)
}
