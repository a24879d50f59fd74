package grpcservers_test

import (
	"maps"
	"slices"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/grpcservers"
)

func TestCapabilities(t *testing.T) {
	// why: Bazel decides what to send from these fields.
	e := newEnv(t, grpcservers.Options{MaxBatchTotalSizeBytes: 1234})
	c, err := e.caps.GetCapabilities(testutil.Context(t), &repb.GetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	cc := c.GetCacheCapabilities()
	switch {
	case !slices.Equal(cc.GetDigestFunctions(), []repb.DigestFunction_Value{repb.DigestFunction_SHA256, repb.DigestFunction_SHA1,
		repb.DigestFunction_MD5, repb.DigestFunction_SHA384, repb.DigestFunction_SHA512, repb.DigestFunction_BLAKE3}):
		t.Errorf("digest_functions = %v", cc.GetDigestFunctions())
	case cc.GetMaxBatchTotalSizeBytes() != 1234:
		t.Errorf("max_batch_total_size_bytes = %d", cc.GetMaxBatchTotalSizeBytes())
	case !cc.GetActionCacheUpdateCapabilities().GetUpdateEnabled():
		t.Error("update_enabled is false")
	case cc.GetSymlinkAbsolutePathStrategy() != repb.SymlinkAbsolutePathStrategy_DISALLOWED:
		t.Errorf("symlink strategy = %v", cc.GetSymlinkAbsolutePathStrategy())
	case c.GetLowApiVersion().GetMajor() != 2 || c.GetLowApiVersion().GetMinor() != 0:
		t.Errorf("low_api_version = %v", c.GetLowApiVersion())
	case c.GetHighApiVersion().GetMajor() != 2 || c.GetHighApiVersion().GetMinor() != 13:
		t.Errorf("high_api_version = %v", c.GetHighApiVersion())
	case c.GetExecutionCapabilities().GetExecEnabled():
		t.Error("exec_enabled without an Execution server")
	}
}

func TestCapabilitiesOutputPathsOnly(t *testing.T) {
	// why: a REAPI 2.1+ only execution service must say so up front, so a
	// bridging castd in front of it (and clients) can tell.
	e := newEnv(t, grpcservers.Options{OutputPathsOnly: true})
	c, err := e.caps.GetCapabilities(testutil.Context(t), &repb.GetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if lo := c.GetLowApiVersion(); lo.GetMajor() != 2 || lo.GetMinor() != 1 {
		t.Errorf("low_api_version = %v, want 2.1", lo)
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t, grpcservers.Options{})
	hc := healthpb.NewHealthClient(e.conn)
	for _, svc := range []string{"", "build.bazel.remote.execution.v2.ContentAddressableStorage", "google.bytestream.ByteStream"} {
		t.Run("service "+svc, func(t *testing.T) {
			// why: systemd readiness probes and load balancers ask per service.
			resp, err := hc.Check(testutil.Context(t), &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Check(%q) = %v, %v", svc, resp, err)
			}
		})
	}
}

func TestReflectionListsServices(t *testing.T) {
	// why: `grpcurl -unix castd.sock list` must work without proto files.
	e := newEnv(t, grpcservers.Options{})
	stream, err := rpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(testutil.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"build.bazel.remote.execution.v2.ContentAddressableStorage", "build.bazel.remote.execution.v2.ActionCache",
		"build.bazel.remote.execution.v2.Capabilities", "google.bytestream.ByteStream", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	// why: requests and payload bytes are counted on the configured registry.
	reg := prometheus.NewRegistry()
	e := newEnv(t, grpcservers.Options{Registerer: reg})
	if _, err := e.caps.GetCapabilities(testutil.Context(t), &repb.GetCapabilitiesRequest{}); err != nil {
		t.Fatal(err)
	}
	data := []byte("metered")
	if _, err := e.cas.BatchUpdateBlobs(testutil.Context(t), &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
		{Digest: e.digestOf(data), Data: data}}}); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"castd_bytes_received_total", map[string]string{"service": "cas"}, 7},
		{"castd_grpc_requests_total", map[string]string{"code": "OK", "method": "/build.bazel.remote.execution.v2.Capabilities/GetCapabilities"}, 1},
		{"castd_grpc_requests_total", map[string]string{"code": "OK", "method": "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs"}, 1},
	}
	for _, c := range checks {
		if got := metricValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// metricValue returns the counter value of name with exactly labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if maps.Equal(got, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}
