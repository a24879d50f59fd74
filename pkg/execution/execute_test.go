package execution_test

import (
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/execution"
)

func TestExecuteRejects(t *testing.T) {
	n := newNode(t, setup{})
	absent := digest.OfBytes([]byte("no such action"))
	for _, tc := range []struct {
		name, why string
		req       *repb.ExecuteRequest
		code      codes.Code
		substr    string
	}{
		{"bad action digest", "a malformed digest is the client's error, named by field",
			&repb.ExecuteRequest{ActionDigest: &repb.Digest{Hash: "xyz", SizeBytes: 3}}, codes.InvalidArgument, "action_digest"},
		{"no action digest", "a missing digest is named by field too",
			&repb.ExecuteRequest{}, codes.InvalidArgument, "action_digest"},
		{"missing action blob", "REAPI: an absent Action is FAILED_PRECONDITION so the client uploads it",
			&repb.ExecuteRequest{ActionDigest: absent.Proto()}, codes.FailedPrecondition, absent.Hash},
		{"unsupported digest function", "a function castd cannot verify is the client's error, named by field",
			&repb.ExecuteRequest{ActionDigest: absent.Proto(), DigestFunction: repb.DigestFunction_VSO}, codes.InvalidArgument, "digest_function"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			stream, err := n.client.Execute(testutil.Context(t), tc.req)
			if err == nil {
				_, err = stream.Recv()
			}
			wantCode(t, err, tc.code, tc.substr)
			if tc.code == codes.FailedPrecondition && !hasMissingViolation(err, absent) {
				t.Errorf("no MISSING violation for %s in %v", absent, status.Convert(err).Details())
			}
		})
	}
}

func hasMissingViolation(err error, d digest.Digest) bool {
	for _, det := range status.Convert(err).Details() {
		if pf, ok := det.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				if v.GetType() == "MISSING" && v.GetSubject() == "blobs/"+d.String() {
					return true
				}
			}
		}
	}
	return false
}

func TestCaching(t *testing.T) {
	for _, tc := range []struct {
		name, why     string
		script        string
		timeout       time.Duration
		cacheFailures bool
		doNotCache    bool
		wantCode      codes.Code
		wantRuns      int64
	}{
		{"success cached", "a successful result is recorded and served next time", "echo ok > out.txt", 0, false, false, codes.OK, 1},
		{"exit 1 not cached", "failures are rebuilt by default", "exit 1", 0, false, false, codes.OK, 2},
		{"exit 1 cached with cache-failures", "cache-failures records non-zero exits", "exit 1", 0, true, false, codes.OK, 1},
		{"do_not_cache honoured", "Action.do_not_cache forbids recording", "echo ok > out.txt", 0, false, true, codes.OK, 2},
		{"timeout not cached", "a timed-out action reports DEADLINE_EXCEEDED and is never cached", "sleep 30", 200 * time.Millisecond, true, false, codes.DeadlineExceeded, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			n := newNode(t, setup{tweak: func(p *execution.Plan) { p.CacheFailures = tc.cacheFailures }})
			ad := n.upload(t, tc.script, tc.timeout, func(a *repb.Action) {
				a.DoNotCache = tc.doNotCache
				if tc.timeout > 0 {
					a.Timeout = durationpb.New(tc.timeout)
				}
			})
			for range 2 {
				resp, _, err := execute(t, n.client, ad, false)
				if err != nil {
					t.Fatal(err)
				}
				if got := codes.Code(resp.GetStatus().GetCode()); got != tc.wantCode {
					t.Fatalf("status %v, want %v", got, tc.wantCode)
				}
			}
			if got := n.runner.runs.Load(); got != tc.wantRuns {
				t.Errorf("runs = %d, want %d", got, tc.wantRuns)
			}
		})
	}
}

func TestSkipCacheLookupRunsAgain(t *testing.T) {
	// Why: skip_cache_lookup must bypass a recorded result.
	n := newNode(t, setup{})
	ad := n.upload(t, "echo ok > out.txt", 0)
	for _, skip := range []bool{false, true} {
		resp, _, err := execute(t, n.client, ad, skip)
		mustSucceed(t, resp, err)
		if resp.GetCachedResult() {
			t.Errorf("skip=%v: served from cache", skip)
		}
	}
	if n.runner.runs.Load() != 2 {
		t.Errorf("runs = %d, want 2", n.runner.runs.Load())
	}
}

func TestMessageSaysHowTheResultWasObtained(t *testing.T) {
	// Why: bst and people read ExecuteResponse.message to know whether an
	// action ran or came from the local cache.
	n := newNode(t, setup{})
	ad := n.upload(t, "echo ok > out.txt", 0)
	for _, want := range []string{execution.MessageLocalExecution, execution.MessageLocalCacheHit} {
		resp, _, err := execute(t, n.client, ad, false)
		mustSucceed(t, resp, err)
		wantMessage(t, resp, want)
	}
}
