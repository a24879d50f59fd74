package fanout_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/defaults"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// walkTrace is what a walk's asks and hooks saw.
type walkTrace struct {
	asked    []int
	fallback []bool
	hit      int
	skipped  []string
	missed   int
}

func (w *walkTrace) hooks() fanout.Hooks {
	return fanout.Hooks{
		Hit:     func(i int) { w.hit = i },
		Skipped: func(err error) { w.skipped = append(w.skipped, status.Convert(err).Message()) },
		Missed:  func() { w.missed++ },
	}
}

func TestWalk(t *testing.T) {
	notFound := status.Error(codes.NotFound, "not here")
	down := status.Error(codes.Unavailable, "connection refused")
	tests := []struct {
		name     string
		why      string
		answers  []error // per tier; nil serves the tier's index
		wantCode codes.Code
		wantTier int
		wantMsg  string
		skipped  int
		missed   int
	}{
		{"second tier hit", "NOT_FOUND moves on to the next tier", []error{notFound, nil, nil}, codes.OK, 1, "", 0, 0},
		{"first tier down", "a failing tier is skipped and reported, the next one serves", []error{down, nil}, codes.OK, 1, "", 1, 0},
		{"found nowhere", "a miss everywhere reachable is NOT_FOUND listing each tier's reason", []error{down, notFound}, codes.NotFound,
			-1, "thing found nowhere reachable: upstream[1] r0: connection refused (Unavailable); upstream[2] r1: not here (NotFound)", 1, 1},
		{"no tier could answer", "when no tier answered the failure keeps its code and is not a miss", []error{down, down}, codes.Unavailable,
			-1, "thing: no remote could answer", 2, 0},
		{"no tiers", "without tiers the walk is a miss", nil, codes.NotFound, -1, "no remote is configured", 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			var tr walkTrace
			o := fanout.Order{}
			for i := range tc.answers {
				o.Names = append(o.Names, "r"+string(rune('0'+i)))
			}
			v, i, err := fanout.Walk(context.Background(), o, "thing", tr.hooks(), func(_ context.Context, i int, call *fanout.Call) (int, error) {
				tr.asked = append(tr.asked, i)
				tr.fallback = append(tr.fallback, store.HasFallback(call.Context()))
				return i, tc.answers[i]
			})
			if status.Code(err) != tc.wantCode || !strings.Contains(status.Convert(err).Message(), tc.wantMsg) {
				t.Fatalf("Walk error %v; want %v containing %q", err, tc.wantCode, tc.wantMsg)
			}
			if err == nil && (v != tc.wantTier || i != tc.wantTier || tr.hit != tc.wantTier) {
				t.Fatalf("Walk = %d from tier %d (hit hook %d); want tier %d", v, i, tr.hit, tc.wantTier)
			}
			if len(tr.skipped) != tc.skipped || tr.missed != tc.missed {
				t.Fatalf("skipped %q, missed %d times; want %d skipped, %d missed", tr.skipped, tr.missed, tc.skipped, tc.missed)
			}
			for k, fb := range tr.fallback {
				if fb != (k < len(tc.answers)-1) {
					t.Fatalf("tier %d asked with fallback %v; want it on every tier but the last (%v)", k, fb, tr.fallback)
				}
			}
		})
	}
}

func TestWalkStalledTier(t *testing.T) {
	t.Log("a tier with a later one behind it that does not answer within the failover delay is cut off as stalled, and the next one serves")
	var tr walkTrace
	o := fanout.Order{Names: []string{"slow", "fast"}, FailoverDelay: defaults.FailoverDelay / 100}
	v, _, err := fanout.Walk(context.Background(), o, "thing", tr.hooks(), func(_ context.Context, i int, call *fanout.Call) (string, error) {
		if i == 0 {
			<-call.Context().Done()
			if !store.Stalled(call.Context()) {
				t.Errorf("the cut-off tier's context was not cancelled with store.ErrStalled")
			}
			return "", call.Context().Err()
		}
		return "fast", nil
	})
	if err != nil || v != "fast" {
		t.Fatalf("Walk = %q, %v; want the second tier's answer", v, err)
	}
	if len(tr.skipped) != 1 || !strings.Contains(tr.skipped[0], "upstream[1] slow: no answer within the failover delay") {
		t.Fatalf("skipped %q; want the first tier reported as stalled", tr.skipped)
	}
}

func TestWalkCallerGone(t *testing.T) {
	t.Log("a caller that gives up ends the walk with its cancellation, never a miss, and no later tier is asked")
	ctx, cancel := context.WithCancel(context.Background())
	var tr walkTrace
	_, _, err := fanout.Walk(ctx, fanout.Order{Names: []string{"a", "b"}}, "thing", tr.hooks(), func(_ context.Context, i int, _ *fanout.Call) (int, error) {
		tr.asked = append(tr.asked, i)
		cancel()
		return 0, status.Error(codes.NotFound, "not here")
	})
	if status.Code(err) != codes.Canceled || len(tr.asked) != 1 || tr.missed != 0 {
		t.Fatalf("Walk = %v after asking %v, missed %d; want CANCELED after asking only the first", err, tr.asked, tr.missed)
	}
}
