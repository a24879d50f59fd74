package execution_test

import (
	"context"
	"strings"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/execution"
	"github.com/castd/castd/pkg/localexec"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/store"
)

// The cluster's answers to an action it refuses.
var (
	noWindows = func(*repb.Action) error {
		return status.Error(codes.FailedPrecondition, "no worker offers OSFamily=windows on this cluster")
	}
	noOSFamily = func(*repb.Action) error {
		st, _ := status.New(codes.FailedPrecondition, "no such workers").WithDetails(&errdetails.PreconditionFailure{
			Violations: []*errdetails.PreconditionFailure_Violation{{Type: "PLATFORM", Subject: "platform:OSFamily"}}})
		return st.Err()
	}
	missingCommand = func(a *repb.Action) error {
		cd, _ := digest.FromProto(a.GetCommandDigest())
		return store.MissingBlobsError("the cluster's CAS", []digest.Digest{cd})
	}
	badArgument = func(*repb.Action) error { return status.Error(codes.InvalidArgument, "windows is not an argument") }
)

func TestLearnedPlatform(t *testing.T) {
	windows := []string{"OSFamily=windows"}
	for _, tc := range []struct {
		name, why      string
		fallback       bool
		inCommand      bool // the platform is in Command.platform (REAPI 2.0)
		refusal        func(*repb.Action) error
		first, second  []string
		advance        time.Duration
		wantCode       codes.Code // of the second Execute
		wantSubstr     []string
		wantAsked      bool // the cluster was asked the second time
		wantFallbacks  float64
		wantFirstLocal bool
	}{
		{name: "refused platform fails early", why: "a platform the cluster refused is not uploaded and asked again; the client learns why",
			refusal: noWindows, first: windows, second: windows, wantCode: codes.FailedPrecondition,
			wantSubstr: []string{"OSFamily=windows", "learned", "no worker offers OSFamily=windows"}},
		{name: "refused platform runs locally with fallback", why: "with local fallback a learned refusal runs here, counted as a platform fallback",
			fallback: true, refusal: noWindows, first: windows, second: windows, wantCode: codes.OK, wantFallbacks: 1},
		{name: "refused platform in the command fails early", why: "REAPI 2.0 clients put the platform in Command.platform only",
			inCommand: true, refusal: noWindows, first: windows, second: windows, wantCode: codes.FailedPrecondition,
			wantSubstr: []string{"OSFamily=windows", "learned"}},
		{name: "refusal naming one property narrows to it", why: "a violation naming OSFamily condemns it in any platform",
			refusal: noOSFamily, first: []string{"OSFamily=windows", "pool=a"}, second: []string{"pool=b", "OSFamily=windows"},
			wantCode: codes.FailedPrecondition, wantSubstr: []string{"platform property OSFamily=windows", "learned", "no such workers"}},
		{name: "missing blobs teach nothing", why: "a MISSING precondition is about inputs, not the platform",
			refusal: missingCommand, first: windows, second: windows, wantCode: codes.FailedPrecondition, wantAsked: true},
		{name: "other codes teach nothing", why: "only FAILED_PRECONDITION says the platform cannot be satisfied",
			refusal: badArgument, first: windows, second: windows, wantCode: codes.InvalidArgument, wantAsked: true},
		{name: "refusal forgotten after the ttl", why: "the cluster may have gained workers; it is asked again after a while",
			refusal: noWindows, first: windows, second: windows, advance: execution.LearnedPlatformTTL + time.Second,
			wantCode: codes.FailedPrecondition, wantSubstr: []string{"no worker offers"}, wantAsked: true},
		{name: "other platform unaffected", why: "only the refused platform is remembered",
			refusal: noWindows, first: windows, second: []string{"OSFamily=linux"}, wantCode: codes.OK, wantAsked: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			clock := clock.NewFake(time.Unix(1700000000, 0))
			cluster := newNode(t, setup{})
			cluster.runner.refuse = refuseWindows(tc.refusal, tc.inCommand)
			ws := newNode(t, setup{scenario: policy.ScenarioRemoteExecution, remote: cluster, clock: clock,
				tweak: func(p *execution.Plan) { p.LocalFallback = tc.fallback }})

			code, _ := outcome(t, ws, uploadWithPlatform(t, ws, "echo one > out.txt", platform(tc.first...), tc.inCommand))
			if want := status.Code(tc.refusal(&repb.Action{})); code != want {
				t.Fatalf("first Execute: %v, want the cluster's %v", code, want)
			}
			asked := cluster.runner.runs.Load()
			clock.Advance(tc.advance)
			code, msg := outcome(t, ws, uploadWithPlatform(t, ws, "echo two > out.txt", platform(tc.second...), tc.inCommand))
			if code != tc.wantCode {
				t.Fatalf("second Execute: %v (%s), want %v", code, msg, tc.wantCode)
			}
			for _, s := range tc.wantSubstr {
				if !strings.Contains(msg, s) {
					t.Errorf("second Execute's message %q does not mention %q", msg, s)
				}
			}
			if got := cluster.runner.runs.Load() > asked; got != tc.wantAsked {
				t.Errorf("cluster asked the second time: %v, want %v", got, tc.wantAsked)
			}
			if got := fallbacks(t, ws.reg, "platform"); got != tc.wantFallbacks {
				t.Errorf("platform fallbacks = %v, want %v", got, tc.wantFallbacks)
			}
		})
	}
}

// refuseWindows returns a cluster Runner hook that answers refusal for
// actions asking OSFamily=windows (every action when the platform is in
// the Command, which the hook does not read).
func refuseWindows(refusal func(*repb.Action) error, inCommand bool) func(*repb.Action) error {
	return func(a *repb.Action) error {
		for _, p := range a.GetPlatform().GetProperties() {
			if p.GetName() == "OSFamily" && p.GetValue() == "windows" {
				return refusal(a)
			}
		}
		if inCommand {
			return refusal(a)
		}
		return nil
	}
}

// platform builds a Platform from "name=value" strings.
func platform(props ...string) *repb.Platform {
	p := &repb.Platform{}
	for _, prop := range props {
		name, value, _ := strings.Cut(prop, "=")
		p.Properties = append(p.Properties, &repb.Platform_Property{Name: name, Value: value})
	}
	return p
}

// uploadWithPlatform uploads a shell action asking for p, in
// Action.platform or, like a REAPI 2.0 client, in Command.platform.
func uploadWithPlatform(t *testing.T, n *node, script string, p *repb.Platform, inCommand bool) digest.Digest {
	t.Helper()
	if !inCommand {
		return n.upload(t, script, 0, func(a *repb.Action) { a.Platform = p })
	}
	ctx := context.Background()
	root, err := localexec.UploadDir(ctx, n.mem, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cmd := &repb.Command{Arguments: []string{"/bin/sh", "-c", script}, OutputPaths: []string{"out.txt"}}
	//lint:ignore SA1019 REAPI 2.0 clients set only Command.platform.
	cmd.Platform = p
	_, ad, err := localexec.UploadAction(ctx, n.mem, cmd, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ad
}

// outcome runs ad on n and returns the code and message of the call's
// error, or else of the final response's status.
func outcome(t *testing.T, n *node, ad digest.Digest) (codes.Code, string) {
	t.Helper()
	resp, _, err := execute(t, n.client, ad, false)
	if err != nil {
		st := status.Convert(err)
		return st.Code(), st.Message()
	}
	return codes.Code(resp.GetStatus().GetCode()), resp.GetStatus().GetMessage()
}

// fallbacks reads castd_execution_local_fallback_total{reason} from reg.
func fallbacks(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "castd_execution_local_fallback_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
