package proxy_test

import (
	"context"
	"fmt"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
)

func TestActionResultBlobsGoToStorageService(t *testing.T) {
	// Scenario 3 with separate servers: the action-cache-service gets the
	// result, but the blobs it references belong in the storage-service,
	// where readers of that action cache will look for them.
	acSvc, storageSvc := newUpstream(t), newUpstream(t)
	set, local := newSet(t, t.TempDir(), fmt.Sprintf(`
remote-execution:
  action-cache-service: {url: %s, push: true}
  storage-service: {url: %s}
`, acSvc.url, storageSvc.url))
	_, out := putBlob(t, local, 300) // an output, as local execution stores it
	action := digest.OfBytes([]byte("action"))
	ar := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "o", Digest: out.Proto()}}}
	ac, err := set.ActionCache(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := ac.UpdateActionResult(context.Background(), action, ar); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the result on the action-cache-service", func() bool {
		_, err := acSvc.mem.GetActionResult(context.Background(), action)
		return err == nil
	})
	if !storageSvc.has(out) {
		t.Error("the output is not on the storage-service")
	}
	if acSvc.has(out) {
		t.Error("the output was pushed to the action-cache-service's own CAS")
	}
}
