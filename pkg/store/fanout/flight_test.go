package fanout_test

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

func TestConcurrentGetsShareOneFetch(t *testing.T) {
	t.Log("a burst of misses for one blob costs one download, not one per client")
	d, _ := blob("popular")
	blocking := newBlockingCAS(memoryWith(t, "popular"))
	remote := &countingCAS{BasicCAS: blocking, name: "r1", log: &callLog{}}
	c := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(remote)}}, fanout.Options{})
	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			got, err := readAll(context.Background(), c, d, 0)
			if err == nil && got != "popular" {
				err = status.Errorf(codes.DataLoss, "got %q", got)
			}
			errs[i] = err
		})
	}
	<-blocking.entered
	testutil.Eventually(t, "all Gets to wait on the fetch", func() bool { return fanout.Waiting(c, d) == n })
	close(blocking.release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Get %d: %v", i, err)
		}
	}
	if got := remote.gets.Load(); got != 1 {
		t.Errorf("remote Gets = %d, want 1", got)
	}
}

func TestFetchOutlivesOneWaiter(t *testing.T) {
	for _, tc := range []struct {
		name, why    string
		cancelLeader bool
	}{
		{"leader cancels", "the client that started the fetch giving up must not fail the others", true},
		{"joiner cancels", "a client that joined giving up must not fail the others", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			d, _ := blob("shared")
			blocking := newBlockingCAS(memoryWith(t, "shared"))
			remote := &countingCAS{BasicCAS: blocking, name: "r1", log: &callLog{}}
			c := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(remote)}}, fanout.Options{})
			leaderCtx, cancelLeader := context.WithCancel(context.Background())
			joinerCtx, cancelJoiner := context.WithCancel(context.Background())
			defer cancelJoiner()
			leader, joiner := make(chan error, 1), make(chan error, 1)
			go func() { _, err := readAll(leaderCtx, c, d, 0); leader <- err }()
			<-blocking.entered
			go func() { _, err := readAll(joinerCtx, c, d, 0); joiner <- err }()
			testutil.Eventually(t, "the joiner to wait on the fetch", func() bool { return fanout.Waiting(c, d) == 2 })
			quitter, stayer := leader, joiner
			if tc.cancelLeader {
				cancelLeader()
			} else {
				cancelJoiner()
				quitter, stayer = joiner, leader
			}
			if err := <-quitter; status.Code(err) != codes.Canceled {
				t.Errorf("cancelled Get: %v, want CANCELED", err)
			}
			close(blocking.release)
			if err := <-stayer; err != nil {
				t.Errorf("remaining Get: %v", err)
			}
			cancelLeader()
			if got := remote.gets.Load(); got != 1 {
				t.Errorf("remote Gets = %d, want 1", got)
			}
		})
	}
}

func TestLastWaiterCancelsFetch(t *testing.T) {
	t.Log("when every client gave up, the download stops instead of running on")
	d, _ := blob("abandoned")
	blocking := newBlockingCAS(memoryWith(t, "abandoned"))
	c := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(blocking)}}, fanout.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := readAll(ctx, c, d, 0); errc <- err }()
	<-blocking.entered
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("Get: %v, want CANCELED", err)
	}
	// The fetch's own context is cancelled, so the blocked remote Get
	// returns without release; a new Get then starts a new fetch.
	next := make(chan error, 1)
	go func() { _, err := readAll(context.Background(), c, d, 0); next <- err }()
	<-blocking.entered
	close(blocking.release)
	if err := <-next; err != nil {
		t.Errorf("Get after the abandoned fetch: %v", err)
	}
}

func TestLeaderFailureWaitersRetry(t *testing.T) {
	t.Log("a joiner does not inherit the failure of a fetch it did not start: it retries")
	d, _ := blob("retry me")
	blocking := newBlockingCAS(memoryWith(t, "retry me"))
	remote := &countingCAS{BasicCAS: blocking, name: "r1", log: &callLog{}}
	local := &flakyPutCAS{BasicCAS: store.NewMemory()}
	local.failures.Store(1)
	c := fanout.NewCAS(store.WithGenericFastPaths(local), []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(remote)}}, fanout.Options{})
	leader, joiner := make(chan error, 1), make(chan error, 1)
	go func() { _, err := readAll(context.Background(), c, d, 0); leader <- err }()
	<-blocking.entered
	go func() { got, err := readAll(context.Background(), c, d, 0); joiner <- wrong(got, "retry me", err) }()
	testutil.Eventually(t, "the joiner to wait on the fetch", func() bool { return fanout.Waiting(c, d) == 2 })
	close(blocking.release)
	if err := <-leader; status.Code(err) != codes.Internal {
		t.Errorf("leader Get: %v, want its own INTERNAL", err)
	}
	if err := <-joiner; err != nil {
		t.Errorf("joiner Get: %v, want success after a retry", err)
	}
	if got := remote.gets.Load(); got != 2 {
		t.Errorf("remote Gets = %d, want 2 (the failed fetch and the retry)", got)
	}
}

func TestMissIsShared(t *testing.T) {
	t.Log("NOT_FOUND everywhere is an answer, not a failure: joiners do not retry it")
	d, _ := blob("absent")
	blocking := newBlockingCAS(store.NewMemory())
	remote := &countingCAS{BasicCAS: blocking, name: "r1", log: &callLog{}}
	c := fanout.NewCAS(store.NewMemory(), []fanout.Tier{{Name: "r1", CAS: store.WithGenericFastPaths(remote)}}, fanout.Options{})
	errs := make(chan error, 2)
	go func() { _, err := readAll(context.Background(), c, d, 0); errs <- err }()
	<-blocking.entered
	go func() { _, err := readAll(context.Background(), c, d, 0); errs <- err }()
	testutil.Eventually(t, "the joiner to wait on the fetch", func() bool { return fanout.Waiting(c, d) == 2 })
	close(blocking.release)
	for range 2 {
		if err := <-errs; status.Code(err) != codes.NotFound {
			t.Errorf("Get: %v, want NOT_FOUND", err)
		}
	}
	if got := remote.gets.Load(); got != 1 {
		t.Errorf("remote Gets = %d, want 1", got)
	}
}

// wrong turns a successful read of the wrong bytes into an error.
func wrong(got, want string, err error) error {
	if err == nil && got != want {
		return status.Errorf(codes.DataLoss, "got %q, want %q", got, want)
	}
	return err
}
