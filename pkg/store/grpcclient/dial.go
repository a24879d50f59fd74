package grpcclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"math"
	"os"
	"sync"
	"sync/atomic"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"golang.org/x/sync/singleflight"

	"github.com/castd/castd/internal/bufpool"
	"github.com/castd/castd/internal/compression"
	"github.com/castd/castd/pkg/store"
)

// Remote is one upstream REAPI remote behind one gRPC connection. Its
// credentials (client certificate, bearer token) belong to this connection
// only. Safe for concurrent use.
type Remote struct {
	name     string
	instance string
	conn     *grpc.ClientConn
	cas      repb.ContentAddressableStorageClient
	bs       bspb.ByteStreamClient
	ac       repb.ActionCacheClient
	caps     repb.CapabilitiesClient
	retry    *retrier
	breakers map[Role]*breaker // one per Role, fixed at Dial
	metrics  *metrics

	// compressors are those castd uses toward this remote when the remote
	// offers them, in order of preference: none over a Unix socket, where
	// there is no link whose bandwidth compression would save (bst to
	// castd, castd to a sidecar), or with WithCompression(false), and
	// compression.Supported otherwise.
	compressors []repb.Compressor_Value

	capsFlight singleflight.Group // the GetCapabilities call in flight, if any
	capsMu     sync.Mutex         // guards capsV only; never held across a call
	capsV      *repb.ServerCapabilities
	fnsV       atomic.Uint32 // the digest.FunctionSet the remote takes, once known; 0 until then
}

// Dial sets up the connection to the remote cfg describes. The connection is
// made lazily, so Dial fails only on a bad configuration (an unparsable URL
// or unreadable certificates): INVALID_ARGUMENT naming the remote. ctx is not
// retained.
func Dial(ctx context.Context, cfg Config, opts ...Option) (*Remote, error) {
	cfg = cfg.withDefaults()
	o := newOptions(opts)
	t, err := parseTarget(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = t.name
	}
	creds, err := transportCredentials(cfg, t)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "upstream %s: %v", cfg.Name, err)
	}
	r := &Remote{name: cfg.Name, instance: cfg.InstanceName, metrics: newMetrics(o.registerer, cfg.Name, o.logger), breakers: map[Role]*breaker{}}
	if !t.socket && !o.identityOnly {
		r.compressors = compression.Supported()
	}
	for _, role := range Roles {
		r.breakers[role] = newBreaker(cfg.Name, cfg.URL, role, o, r.metrics)
	}
	r.retry = &retrier{limit: cfg.RetryLimit, delay: cfg.RetryDelay, timeout: cfg.RequestTimeout, sleep: o.clock.Sleep}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
		grpc.WithChainUnaryInterceptor(r.retry.unaryInterceptor, r.metrics.unaryInterceptor),
		grpc.WithChainStreamInterceptor(r.metrics.streamInterceptor, idleTimeout{cfg.IdleTimeout, o.clock}.streamInterceptor),
		experimental.WithBufferPool(bufpool.Pool),
	}
	if cfg.AccessTokenFile != "" {
		tc := newTokenCredentials(cfg.AccessTokenFile, cfg.AccessTokenReload, t, cfg.Name, o)
		r.retry.reauth = tc.invalidate
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(tc))
	}
	if cfg.Keepalive > 0 {
		dialOpts = append(dialOpts, grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: cfg.Keepalive, Timeout: cfg.Keepalive}))
	}
	dialOpts = append(dialOpts, o.dial...)
	conn, err := grpc.NewClient(t.dial, dialOpts...)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "upstream %s: %v", cfg.Name, err)
	}
	r.conn = conn
	r.cas = repb.NewContentAddressableStorageClient(conn)
	r.bs = bspb.NewByteStreamClient(conn)
	r.ac = repb.NewActionCacheClient(conn)
	r.caps = repb.NewCapabilitiesClient(conn)
	return r, nil
}

// transportCredentials builds TLS (with the configured CA and client
// certificate) for grpcs/https remotes and insecure credentials otherwise.
func transportCredentials(cfg Config, t target) (credentials.TransportCredentials, error) {
	if (cfg.ClientCert == "") != (cfg.ClientKey == "") {
		return nil, status.Error(codes.InvalidArgument, "client-cert and client-key must be given together")
	}
	if !t.tls {
		if cfg.ClientCert != "" || cfg.ServerCert != "" {
			return nil, status.Errorf(codes.InvalidArgument, "certificates are configured but %s is not a TLS url (use grpcs:// or https://)", cfg.URL)
		}
		return insecure.NewCredentials(), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.ServerCert != "" {
		pem, err := os.ReadFile(cfg.ServerCert)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, status.Errorf(codes.InvalidArgument, "server-cert %s: no PEM certificate found", cfg.ServerCert)
		}
	}
	if cfg.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.ClientCert, cfg.ClientKey)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(tc), nil
}

// Name returns the remote's label (Config.Name, or HOST:PORT).
func (r *Remote) Name() string { return r.name }

// CAS returns the remote's content-addressable storage behind the circuit
// breaker of its CAS role: BreakerCAS(ClientCAS()).
func (r *Remote) CAS() store.CAS { return r.BreakerCAS(r.ClientCAS()) }

// ActionCache returns the remote's action cache for its own instance name,
// behind the circuit breaker of its action-cache role:
// BreakerActionCache(ClientActionCache()).
func (r *Remote) ActionCache() store.ActionCache {
	return r.BreakerActionCache(r.ClientActionCache())
}

// ClientCAS is the remote's content-addressable storage as plain calls,
// without the breaker or the digest-function gate (a digest the remote
// does not take is sent, and refused by the remote). Its GetMany makes one BatchReadBlobs call per batch
// of small blobs.
func (r *Remote) ClientCAS() store.CAS { return &casClient{r} }

// ClientActionCache is the remote's action cache for its own instance
// name, as plain calls without the breaker or the digest-function gate.
func (r *Remote) ClientActionCache() store.ActionCache { return &acClient{r} }

// BreakerCAS puts cas behind the remote's circuit breaker of its CAS role:
// while it is open every call fails fast with UNAVAILABLE, and the
// outcome of every call (fast paths included) counts toward it. The
// breaker is the remote's own, shared by every CAS wrapped with it.
//
// In front of the breaker stands the remote's digest-function gate: a
// digest of a function the remote does not take (see Functions) is never
// sent to it. Reading one is NOT_FOUND, FindMissing reports it missing,
// writing one fails with *store.UnsupportedFunctionError; none of these
// makes a call or counts toward the breaker.
func (r *Remote) BreakerCAS(cas store.CAS) store.CAS {
	b := r.breakers[RoleCAS]
	return &gatedCAS{gate: gate{r, b}, base: &breakerCAS{base: cas, b: b}}
}

// BreakerActionCache puts ac behind the remote's circuit breaker of its
// action-cache role and its digest-function gate, as BreakerCAS does for
// the CAS: GetActionResult of an action digest of a function the remote
// does not take is NOT_FOUND, UpdateActionResult of one fails with
// *store.UnsupportedFunctionError.
func (r *Remote) BreakerActionCache(ac store.ActionCache) store.ActionCache {
	b := r.breakers[RoleActionCache]
	return &gatedAC{gate: gate{r, b}, base: &breakerAC{base: ac, b: b}}
}

// BreakerState returns "closed", "open" or "half-open" for role.
func (r *Remote) BreakerState(role Role) string { return r.breakers[role].State() }

// Health returns the health of each role, in the order of Roles. Cost: two
// short mutexes per role.
func (r *Remote) Health() []RoleHealth {
	out := make([]RoleHealth, 0, len(Roles))
	for _, role := range Roles {
		out = append(out, r.breakers[role].roleHealth())
	}
	return out
}

// Close closes the connection; calls in flight fail with CANCELED.
func (r *Remote) Close() error { return r.conn.Close() }

// Capabilities returns the remote's capabilities for its instance name. The
// first successful answer is cached for the life of the Remote. Concurrent
// callers share one GetCapabilities call, and each waits for it only as
// long as its own ctx lets it: no lock is held while the call (with its
// retries) is on the network, so a remote that is down or stalled cannot
// queue callers behind one another. The shared call runs detached from the
// caller that started it (with its values, e.g. store.WithFallback), so
// that caller giving up does not fail the others.
func (r *Remote) Capabilities(ctx context.Context) (*repb.ServerCapabilities, error) {
	r.capsMu.Lock()
	c := r.capsV
	r.capsMu.Unlock()
	if c != nil {
		return c, nil
	}
	fctx := context.WithoutCancel(ctx)
	ch := r.capsFlight.DoChan("", func() (any, error) { return r.fetchCapabilities(fctx) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*repb.ServerCapabilities), nil
	case <-ctx.Done():
		return nil, wrap(r.name, ctx.Err())
	}
}

// fetchCapabilities makes the GetCapabilities call and caches a success.
func (r *Remote) fetchCapabilities(ctx context.Context) (*repb.ServerCapabilities, error) {
	c, err := r.caps.GetCapabilities(ctx, &repb.GetCapabilitiesRequest{InstanceName: r.instance})
	if err != nil {
		return nil, wrap(r.name, err)
	}
	r.fnsV.Store(uint32(functionsOf(c)))
	r.capsMu.Lock()
	r.capsV = c
	r.capsMu.Unlock()
	return c, nil
}
