package execution_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/store"
)

func TestLocalOutputsToPrimaryCAS(t *testing.T) {
	t.Run("stored before Execute returns", func(t *testing.T) {
		// Why: with cache.storage-service the outputs of a local run are acknowledged like client writes.
		primary := store.NewMemory()
		ws := newNode(t, setup{tweak: func(p *execution.Plan) { p.PrimaryCAS = primary }})
		ad := ws.upload(t, "echo to the primary store > out.txt", 0)
		resp, _, err := execute(t, ws.client, ad, false)
		mustSucceed(t, resp, err)
		ds := resultDigests(t, ws, ad)
		if m, err := primary.FindMissing(context.Background(), ds); err != nil || len(m) != 0 {
			t.Fatalf("outputs missing on the primary store: %v, %v", m, err)
		}
	})
	t.Run("primary refuses", func(t *testing.T) {
		// Why: an output the primary store did not take fails the Execute with its code, and is not cached.
		ws := newNode(t, setup{tweak: func(p *execution.Plan) { p.PrimaryCAS = store.WithGenericFastPaths(refusingCAS{store.NewMemory()}) }})
		ad := ws.upload(t, "echo refused > out.txt", 0)
		resp, _, err := execute(t, ws.client, ad, false)
		if err != nil {
			t.Fatal(err)
		}
		if st := resp.GetStatus(); codes.Code(st.GetCode()) != codes.PermissionDenied || !strings.Contains(st.GetMessage(), "storage service") {
			t.Errorf("status = %v, want PERMISSION_DENIED naming the storage service", st)
		}
		if resp.GetResult().GetExitCode() != 0 || len(resp.GetResult().GetOutputFiles()) != 1 {
			t.Errorf("the result should still come back: %v", resp.GetResult())
		}
		if _, err := ws.mem.GetActionResult(context.Background(), ad); status.Code(err) != codes.NotFound {
			t.Errorf("local action cache: %v, want NOT_FOUND (not cached)", err)
		}
	})
}

// refusingCAS refuses every write, like a remote the credentials may only read.
type refusingCAS struct{ store.BasicCAS }

func (refusingCAS) Put(context.Context, digest.Digest, io.Reader) error {
	return status.Error(codes.PermissionDenied, "read-only remote")
}
