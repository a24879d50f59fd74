package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/castd/castd/test/faultproxy"
)

// faultReads is how many distinct blobs one cold-read run reads.
const faultReads = 1000

// faultRig is the layout of the fault tests: upstream castd A (the first
// remote) reached only through a fault-injecting proxy, and upstream castd
// B (the second remote), healthy. Workstation castds are started per run
// with A then B as storage remotes.
type faultRig struct {
	a, b  *upstream
	proxy *faultproxy.Proxy
	// onlyB are held by B alone: A is asked first and has nothing.
	onlyB []blob
	// both are held by A and B: A serves them unless it fails.
	both []blob
	// warm is held by B alone, read to connect a workstation to A.
	warm blob
}

// newFaultRig starts A, B and the proxy in front of A, and seeds both
// blob sets.
func newFaultRig(tb testing.TB) *faultRig {
	tb.Helper()
	r := &faultRig{a: startPlainUpstream(tb), b: startPlainUpstream(tb)}
	p, err := faultproxy.New(r.a.addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	r.proxy = p
	r.onlyB, r.both, r.warm = faultBlobs(faultReads), faultBlobs(faultReads), randomBlob(1000)
	seed(tb, r.b, append([]blob{r.warm}, r.onlyB...))
	seed(tb, r.b, r.both)
	seed(tb, r.a, r.both)
	return r
}

// faultBlobs makes n random blobs of a spread of sizes: mostly small
// (100 B to 32 KiB, as most build outputs are) and one in a hundred of
// 512 KiB, which ByteStream streams in several messages.
func faultBlobs(n int) []blob {
	out := make([]blob, n)
	for i := range out {
		size := 100 + (i*7919)%(32<<10)
		if i%100 == 0 {
			size = 512<<10 + i
		}
		out[i] = randomBlob(size)
	}
	return out
}

// seed uploads blobs to u directly over its Unix socket.
func seed(tb testing.TB, u *upstream, blobs []blob) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn := u.conn(tb)
	var batch []blob
	size := 0
	flush := func() {
		if err := batchUpdate(ctx, conn, batch...); err != nil {
			tb.Fatalf("seeding upstream %s: %v", u.addr, err)
		}
		batch, size = nil, 0
	}
	for _, b := range blobs {
		if size+len(b.data) > 2<<20 {
			flush()
		}
		batch, size = append(batch, b), size+len(b.data)
	}
	flush()
}

// workstation starts a fresh (cold) castd with urls as its storage remotes
// in that order, each with fast-failing connection settings.
func faultWorkstation(tb testing.TB, urls ...string) (*castdProc, *grpc.ClientConn) {
	tb.Helper()
	yaml := "artifacts:\n  servers:\n"
	for _, u := range urls {
		yaml += fmt.Sprintf("  - {url: %s, type: storage, push: false, connection-config: {retry-limit: 1, retry-delay: 10, request-timeout: 2}}\n", u)
	}
	l := newLayout(tb)
	p := startCastd(tb, l, l.configYAML(yaml))
	return p, dialUnix(tb, p.socket)
}

// readRun is the outcome of one cold-read run.
type readRun struct {
	reads, failed, wrong int
	firstErrs            []string // the first few failures, for the report
	elapsed              time.Duration
}

func (r readRun) String() string {
	return fmt.Sprintf("%d reads in %v: %d failed, %d wrong bytes; first failures: %q", r.reads, r.elapsed.Round(time.Millisecond), r.failed, r.wrong, r.firstErrs)
}

// Cold-read parameters: clients at once, blobs per BatchReadBlobs call,
// the longest one call may take (a call that needs longer, with a healthy
// remote holding the blob, is a hang to its user), and how many failures
// end a run early so that a broken build fails in seconds, not hours.
const (
	readClients   = 8
	readBatch     = 10
	readCallLimit = 30 * time.Second
	readMaxFailed = 5
)

// coldReads reads every blob once through conn, from readClients clients:
// half (and every blob over 64 KiB) with ByteStream Read, the rest with
// BatchReadBlobs of readBatch digests, checking every byte.
func coldReads(conn *grpc.ClientConn, blobs []blob) readRun {
	jobs := readJobs(blobs)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	next := make(chan readJob)
	go func() {
		defer close(next)
		for _, j := range jobs {
			select {
			case next <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	var mu sync.Mutex
	run := readRun{}
	start := time.Now()
	var wg sync.WaitGroup
	for range readClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				if ctx.Err() != nil {
					continue // the run was ended early: count only what was read
				}
				msgs, failed, wrong := j.run(ctx, conn)
				mu.Lock()
				run.reads += len(j.blobs)
				run.failed += failed
				run.wrong += wrong
				for _, f := range msgs {
					if len(run.firstErrs) < readMaxFailed {
						run.firstErrs = append(run.firstErrs, f)
					}
				}
				if run.failed+run.wrong >= readMaxFailed {
					stop()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	run.elapsed = time.Since(start)
	return run
}

// readJob is one call of a cold-read run: a ByteStream Read of one blob
// or a BatchReadBlobs of several.
type readJob struct {
	stream bool
	blobs  []blob
}

// readJobs splits blobs into calls: every other blob, and every blob over
// 64 KiB, is read by ByteStream; the rest in batches of readBatch.
func readJobs(blobs []blob) []readJob {
	var jobs []readJob
	var batch []blob
	for i, b := range blobs {
		if i%2 == 1 || len(b.data) > 64<<10 {
			jobs = append(jobs, readJob{stream: true, blobs: []blob{b}})
			continue
		}
		if batch = append(batch, b); len(batch) == readBatch {
			jobs, batch = append(jobs, readJob{blobs: batch}), nil
		}
	}
	if len(batch) > 0 {
		jobs = append(jobs, readJob{blobs: batch})
	}
	return jobs
}

// run makes the call within readCallLimit and returns what failed, how
// many blobs failed and how many came back with wrong bytes.
func (j readJob) run(parent context.Context, conn *grpc.ClientConn) (msgs []string, failed, wrong int) {
	ctx, cancel := context.WithTimeout(parent, readCallLimit)
	defer cancel()
	start := time.Now()
	if j.stream {
		b := j.blobs[0]
		got, err := readBlob(ctx, conn, b.d)
		switch {
		case err != nil:
			return []string{fmt.Sprintf("ByteStream Read %.12s after %v: %v", b.d.GetHash(), time.Since(start).Round(time.Millisecond), err)}, 1, 0
		case !bytes.Equal(got, b.data):
			return nil, 0, 1
		}
		return nil, 0, 0
	}
	ds := make([]*repb.Digest, len(j.blobs))
	for i, b := range j.blobs {
		ds[i] = b.d
	}
	resp, err := repb.NewContentAddressableStorageClient(conn).BatchReadBlobs(ctx, &repb.BatchReadBlobsRequest{
		Digests: ds, DigestFunction: repb.DigestFunction_SHA256,
	})
	if err != nil {
		return []string{fmt.Sprintf("BatchReadBlobs of %d after %v: %v", len(j.blobs), time.Since(start).Round(time.Millisecond), err)}, len(j.blobs), 0
	}
	byHash := map[string]*repb.BatchReadBlobsResponse_Response{}
	for _, r := range resp.GetResponses() {
		byHash[r.GetDigest().GetHash()] = r
	}
	for _, b := range j.blobs {
		r := byHash[b.d.GetHash()]
		switch {
		case r == nil:
			failed++
			msgs = append(msgs, fmt.Sprintf("BatchReadBlobs: no answer for %.12s", b.d.GetHash()))
		case codes.Code(r.GetStatus().GetCode()) != codes.OK:
			failed++
			msgs = append(msgs, fmt.Sprintf("BatchReadBlobs %.12s after %v: %v %s", b.d.GetHash(), time.Since(start).Round(time.Millisecond), codes.Code(r.GetStatus().GetCode()), r.GetStatus().GetMessage()))
		case !bytes.Equal(r.GetData(), b.data):
			wrong++
		}
	}
	return msgs, failed, wrong
}
