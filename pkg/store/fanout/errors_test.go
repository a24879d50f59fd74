package fanout_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/grpcerr"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// labellingCAS is down and labels its errors the way a remote's client
// does ("upstream NAME: ...").
type labellingCAS struct {
	downCAS
	label string
}

func (c labellingCAS) Get(ctx context.Context, d digest.Digest, off int64) (io.ReadCloser, error) {
	_, err := c.downCAS.Get(ctx, d, off)
	return nil, grpcerr.Label(c.label, err)
}

func TestTierLabelReplacesTheRemotesOwn(t *testing.T) {
	// Why: the fan-out names the remote by its place in pull order; the
	// label the remote's client put on the error names the same remote and
	// is dropped by its structure, not by matching its text.
	tiers := []fanout.Tier{{Name: "r1", CAS: labellingCAS{label: "upstream r1"}}}
	c := fanout.NewCAS(store.NewMemory(), tiers, fanout.Options{ExistenceTTL: -1})
	_, err := c.Get(context.Background(), digest.OfBytes([]byte("x")), 0)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Get: %v; want UNAVAILABLE", err)
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, "upstream[1] r1: connection refused (Unavailable)") || strings.Contains(msg, "upstream r1") {
		t.Fatalf("message %q; want the remote labelled once, by its tier", msg)
	}
}
