package fanout

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// unsupportedMiss is what the upstream client answers a read of a digest
// function its remote does not take: NOT_FOUND, without a call.
type unsupportedMiss struct {
	*store.UnsupportedFunctionError
}

func (e unsupportedMiss) Unwrap() error { return e.UnsupportedFunctionError }
func (e unsupportedMiss) GRPCStatus() *status.Status {
	return status.New(codes.NotFound, e.Error())
}

// gatedTier answers every read NOT_FOUND as unsupportedMiss.
type gatedTier struct{ store.CAS }

func (gatedTier) GetMany(_ context.Context, ds []digest.Digest) []store.BlobResult {
	out := make([]store.BlobResult, len(ds))
	for i, d := range ds {
		out[i].Err = unsupportedMiss{&store.UnsupportedFunctionError{Func: d.Func, Store: "r1"}}
	}
	return out
}

func TestUnsupportedAnswersDoNotCountAsAnswerTimes(t *testing.T) {
	t.Log("a tier that answers a function it does not take without a call says nothing about how fast it answers: its hedging average is untouched")
	clk := clock.NewFake(time.Unix(0, 0))
	d := digest.OfBytesIn(digest.BLAKE3, []byte("x"))
	miss := unsupportedMiss{&store.UnsupportedFunctionError{Func: digest.BLAKE3, Store: "r1"}}

	f := newCASFailover(time.Second, 2, clk)
	call := f.begin(context.Background(), 0)
	clk.Advance(time.Millisecond)
	call.observe(true, miss)
	call.release()
	if got := f.lat[0].get(); got != 0 {
		t.Errorf("after an unsupported Get, the tier's average is %v; want none", got)
	}

	c := NewCAS(store.NewMemory(), []Tier{{Name: "r1", CAS: gatedTier{store.NewMemory()}}, {Name: "r2", CAS: store.NewMemory()}}, Options{Clock: clk}).(*fanoutCAS)
	c.getManyFrom(context.Background(), 0, []digest.Digest{d})
	if got := c.failover.lat[0].get(); got != 0 {
		t.Errorf("after an unsupported GetMany, the tier's average is %v; want none", got)
	}
}
