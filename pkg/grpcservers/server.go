package grpcservers

import (
	"log/slog"
	"os"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/castd/castd/internal/bufpool"
	"github.com/castd/castd/internal/defaults"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store/disk"
)

// Options tune the services. The zero value is usable.
type Options struct {
	// MaxBatchTotalSizeBytes is the total blob payload a BatchUpdateBlobs or
	// BatchReadBlobs call may carry; it is advertised in Capabilities.
	// Zero means defaults.MaxBatchTotalSizeBytes.
	MaxBatchTotalSizeBytes int64
	// OutputPathsOnly advertises low_api_version 2.1 instead of 2.0: set it
	// when the Execution server refuses REAPI 2.0 Commands (see
	// execution.Config.OutputPathsOnly), so clients learn it up front.
	OutputPathsOnly bool
	// DigestFunctions are the digest functions clients may use; they are
	// advertised in Capabilities. Zero means digest.AllFunctions.
	DigestFunctions digest.FunctionSet
	// Logger receives errors that are not returned to a client. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Registerer receives the castd_grpc_* and castd_bytes_* metrics. Nil
	// means a private registry (metrics are collected but not exported).
	Registerer prometheus.Registerer
	// UploadIdleTimeout bounds how long a ByteStream upload may make no
	// progress: a Write stream that sends nothing for this long is closed
	// (DEADLINE_EXCEEDED) and its upload dropped, and an upload whose
	// stream broke waits this long for the client to resume it
	// (QueryWriteStatus, then Write from committed_size) before it is
	// dropped. A dropped upload's spool file is removed; nothing is stored.
	// Zero means defaults.UploadIdleTimeout.
	UploadIdleTimeout time.Duration
	// MaxIdleUploads bounds the uploads kept for resumption at once; past
	// it the longest idle is dropped. Each costs its spool file on disk
	// (no fd, no memory beyond bookkeeping). Zero means
	// defaults.MaxIdleUploads.
	MaxIdleUploads int
	// MaxIdleUploadBytes bounds the bytes the spool files of uploads kept
	// for resumption hold in total (the local store counts them against
	// its quota, so without a bound abandoned uploads could push out the
	// cache); past it the longest idle is dropped, and an upload alone
	// larger than it is not kept. Zero means defaults.MaxIdleUploadBytes.
	MaxIdleUploadBytes int64
	// ReadBufferLimit bounds the memory ByteStream Read buffers hold in
	// total, counted from the read of a chunk until gRPC has written it to
	// the connection (so it covers clients that stopped reading); readers
	// wait for room past it. Zero means defaults.ReadBufferLimit.
	ReadBufferLimit int64
	// Spooler receives ByteStream uploads in progress. castd passes the
	// local store, which spools into its temp directory (emptied when it
	// opens, so a crash leaves nothing behind) and takes a finished upload
	// in by rename, so its bytes are written once. Nil means
	// store.TempSpooler(UploadDir): plain files, stored with Put.
	Spooler disk.Spooler
	// UploadDir holds the spool files of ByteStream uploads when Spooler
	// is nil. Empty means os.TempDir().
	UploadDir string
	// Execution serves the Execution service. Nil leaves it unregistered
	// (clients get UNIMPLEMENTED) and Capabilities reports exec_enabled
	// false; the execution issue plugs its server in here.
	Execution repb.ExecutionServer
	// Logs, optional, serves ByteStream reads of log stream names (an
	// operation's stdout and stderr while it runs); every other name is
	// read as a blob. castd plugs its execution server in here.
	Logs LogStreams
	// Health, optional, is the gRPC health service to register, with every
	// service set SERVING; the caller keeps it to report a drain
	// (Shutdown: NOT_SERVING, which also ends every Watch, so watchers do
	// not hold the drain open). Nil makes a private one.
	Health *health.Server
}

func (o Options) withDefaults() Options {
	if o.MaxBatchTotalSizeBytes <= 0 {
		o.MaxBatchTotalSizeBytes = defaults.MaxBatchTotalSizeBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.UploadIdleTimeout <= 0 {
		o.UploadIdleTimeout = defaults.UploadIdleTimeout
	}
	if o.MaxIdleUploads <= 0 {
		o.MaxIdleUploads = defaults.MaxIdleUploads
	}
	if o.ReadBufferLimit <= 0 {
		o.ReadBufferLimit = defaults.ReadBufferLimit
	}
	if o.MaxIdleUploadBytes <= 0 {
		o.MaxIdleUploadBytes = defaults.MaxIdleUploadBytes
	}
	if o.UploadDir == "" {
		o.UploadDir = os.TempDir()
	}
	if o.Spooler == nil {
		o.Spooler = disk.TempSpooler(o.UploadDir)
	}
	return o
}

// NewServer returns a grpc.Server serving b with every castd service
// registered (see register), metrics interceptors installed, castd's
// ByteStream read codec, a receive limit of the batch limit plus 1 MiB of
// framing, and keepalive enforcement lax enough for Bazel's pings. extra
// options are appended and win over these. It panics if the metrics
// collide with foreign collectors on opts.Registerer.
func NewServer(b Backend, opts Options, extra ...grpc.ServerOption) *grpc.Server {
	opts = opts.withDefaults()
	m := newMetrics(opts.Registerer)
	base := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(opts.MaxBatchTotalSizeBytes) + 1<<20),
		grpc.MaxSendMsgSize(int(opts.MaxBatchTotalSizeBytes) + 1<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             5 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.InitialWindowSize(4 << 20),
		grpc.InitialConnWindowSize(16 << 20),
		grpc.ReadBufferSize(256 << 10),
		grpc.WriteBufferSize(256 << 10),
		grpc.ChainUnaryInterceptor(m.unaryInterceptor),
		grpc.ChainStreamInterceptor(m.streamInterceptor),
		experimental.BufferPool(bufpool.Pool),
		grpc.ForceServerCodecV2(newReadCodec()),
	}
	s := grpc.NewServer(append(base, extra...)...)
	register(s, b, opts, m)
	return s
}

// register adds Capabilities, ContentAddressableStorage, ByteStream,
// ActionCache (and Execution when opts.Execution is set), gRPC health with
// every service SERVING, and server reflection to s.
func register(s *grpc.Server, b Backend, opts Options, m *metrics) {
	repb.RegisterCapabilitiesServer(s, &capabilitiesServer{backend: b, opts: opts})
	repb.RegisterContentAddressableStorageServer(s, &casServer{backend: b, opts: opts, metrics: m})
	bspb.RegisterByteStreamServer(s, newByteStreamServer(b, opts, m))
	repb.RegisterActionCacheServer(s, &actionCacheServer{backend: b, opts: opts})
	names := []string{
		repb.Capabilities_ServiceDesc.ServiceName,
		repb.ContentAddressableStorage_ServiceDesc.ServiceName,
		"google.bytestream.ByteStream",
		repb.ActionCache_ServiceDesc.ServiceName,
	}
	if opts.Execution != nil {
		repb.RegisterExecutionServer(s, opts.Execution)
		names = append(names, repb.Execution_ServiceDesc.ServiceName)
	}
	hs := opts.Health
	if hs == nil {
		hs = health.NewServer()
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, n := range names {
		hs.SetServingStatus(n, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(s, drainingHealth{hs})
	reflection.Register(s)
}
