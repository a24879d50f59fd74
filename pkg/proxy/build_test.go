package proxy_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/proxy"
	"github.com/castd/castd/pkg/store"
)

func TestRemoteDecoratorsAreSharedByInstances(t *testing.T) {
	t.Log("a remote's existence cache is the remote's, not one per instance: a blob the remote said it holds, asked about through another instance that reads the same remote, costs no second FindMissing")
	remote := store.NewMemory()
	d := testutil.Put(t, remote, []byte("on the shared remote"))
	srv := testutil.StartREAPI(t, testutil.REAPIOptions{CAS: remote})
	reg := prometheus.NewRegistry()
	set, _ := newSetWith(t, t.TempDir(), fmt.Sprintf(`
artifacts:
  servers:
  - {url: %[1]s, push: false}
projects:
  demo:
    artifacts:
      servers:
      - {url: %[1]s, push: false}
`, srv.URL()), proxy.Options{Registerer: reg})
	for _, instance := range []string{"", "demo"} {
		cas, err := set.CAS(context.Background(), instance)
		if err != nil {
			t.Fatalf("instance %q: %v", instance, err)
		}
		missing, err := cas.FindMissing(context.Background(), []digest.Digest{d})
		if err != nil || len(missing) != 0 {
			t.Fatalf("instance %q: FindMissing = %v, %v; want the remote's blob present", instance, missing, err)
		}
	}
	if n := attempts(t, reg, "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs"); n != 1 {
		t.Errorf("%d FindMissingBlobs calls to the remote for two instances; want 1 (one existence cache per remote)", n)
	}
	if rs := set.Remotes(); len(rs) != 1 {
		t.Errorf("%d remotes in status; want the one both instances share", len(rs))
	}
}
