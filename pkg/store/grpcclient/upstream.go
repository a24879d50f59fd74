// Package grpcclient is castd's client for one REAPI remote: a gRPC
// connection with its own TLS, client certificate and bearer token, and the
// CAS and ActionCache of that remote exposed as store.CAS and
// store.ActionCache so that the ordered fan-out can treat it like any other
// tier.
//
// Every call carries the remote's own instance name. Unary calls are retried
// on transient codes with exponential backoff and jitter and bounded by a
// request timeout; streams are bounded by an idle (no-progress) timeout
// only, so a large transfer that keeps moving is never cut off. A circuit
// breaker makes a remote that keeps failing fail fast until a probe after a
// cool-down succeeds. Errors are gRPC statuses prefixed with the remote's
// name; the code is kept, and NOT_FOUND is the only miss.
//
// Requests name the digest function of the digests they carry (left unset
// for SHA-256, as before REAPI 2.3), one function per request, and a
// digest of a function the remote does not advertise in its Capabilities
// is never sent to it (see Remote.Functions and Remote.BreakerCAS).
//
// It is used for every remote castd reads from or pushes to, and by bst to
// reach castd's own socket. It holds no policy: which remote is asked, in
// which order, and what is pushed where is decided by its callers.
package grpcclient

import (
	"log/slog"
	"time"

	"github.com/castd/castd/internal/clock"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/castd/castd/internal/defaults"
)

// Config describes one upstream remote. The daemon's builder fills it from
// the resolved configuration; zero durations and limits take the defaults
// documented on each field.
type Config struct {
	// URL is grpc://HOST:PORT or http://HOST:PORT (plaintext),
	// grpcs://HOST:PORT or https://HOST:PORT (TLS), or unix:PATH.
	URL string
	// InstanceName is sent on every request to this remote.
	InstanceName string
	// ServerCert is a PEM file of CA certificates that the server's
	// certificate must chain to; empty means the system roots.
	ServerCert string
	// ClientCert and ClientKey are PEM files for mutual TLS. Both or neither.
	ClientCert, ClientKey string
	// AccessTokenFile holds a bearer token sent as "authorization: Bearer
	// <token>" to this remote only.
	AccessTokenFile string
	// AccessTokenReload is how often the token file is re-read. Zero means
	// it is read once, and again only after an UNAUTHENTICATED answer.
	AccessTokenReload time.Duration
	// Keepalive is the interval of HTTP/2 keepalive pings; zero disables
	// them. gRPC raises values under 10s to 10s.
	Keepalive time.Duration
	// RetryLimit is how many times a call failing with a transient code is
	// retried. Zero means no retries; negative means defaults.RetryLimit
	// (retry-limit unset; see package defaults for why zero differs here).
	// A call made for a fan-out tier with a later tier behind it
	// (store.WithFallback) is never retried, whatever the limit.
	RetryLimit int
	// RetryDelay is the first backoff delay; it doubles on every retry.
	// Zero means defaults.RetryDelay.
	RetryDelay time.Duration
	// RequestTimeout bounds each attempt of a unary call. Zero means
	// defaults.RequestTimeout.
	RequestTimeout time.Duration
	// IdleTimeout cuts a stream that makes no progress (no message sent or
	// received) for this long. Zero means defaults.StreamIdleTimeout.
	IdleTimeout time.Duration
	// Name labels logs, errors and metrics. Empty means HOST:PORT (or the
	// socket path).
	Name string
}

func (c Config) withDefaults() Config {
	if c.RetryLimit < 0 {
		c.RetryLimit = defaults.RetryLimit
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = defaults.RetryDelay
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = defaults.RequestTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = defaults.StreamIdleTimeout
	}
	return c
}

// Option tunes Dial beyond what Config carries: things the daemon injects
// rather than the user configures.
type Option func(*options)

type options struct {
	clock           clock.Clock
	registerer      prometheus.Registerer
	logger          *slog.Logger
	breakerFailures int
	breakerCoolDown time.Duration
	logEvery        time.Duration // defaults.LogInterval; not configurable
	dial            []grpc.DialOption
	identityOnly    bool // WithCompression(false)
}

func newOptions(opts []Option) options {
	o := options{
		clock:      clock.Real(),
		registerer: prometheus.NewRegistry(),
		logger:     slog.Default(),
		logEvery:   defaults.LogInterval,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.breakerFailures == 0 {
		o.breakerFailures = defaults.BreakerFailures
	}
	if o.breakerCoolDown <= 0 {
		o.breakerCoolDown = defaults.BreakerCoolDown
	}
	o.clock = clock.OrReal(o.clock)
	return o
}

// WithClock sets the clock used by the breaker, the token reload, the
// stream idle timeout and retry backoff; nil means the wall clock. Tests
// pass a clock.Fake.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithRegisterer exports the castd_upstream_* metrics on reg. Several remotes
// may share one registerer. Without it metrics go to a private registry.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.registerer = reg }
}

// WithLogger sets where warnings (state changes of the remote, rate-limited)
// and debug lines (one per upstream RPC) go; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithBreaker sets how many consecutive failures open each of the remote's
// circuit breakers (one per Role) and how long one stays open before a
// probe is let through. Zero means defaults.BreakerFailures and
// defaults.BreakerCoolDown; negative failures disable the breakers.
func WithBreaker(failures int, coolDown time.Duration) Option {
	return func(o *options) { o.breakerFailures, o.breakerCoolDown = failures, coolDown }
}

// WithDialOptions adds gRPC dial options after the client's own, for
// what the daemon adds to every call to a remote (castd's loop-guard
// marks, see internal/loopguard). Interceptors given here run inside the
// retry loop, once per attempt. bst, which dials castd itself, adds none.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, opts...) }
}

// WithCompression false makes every transfer to the remote identity
// (uncompressed), even when its Capabilities list ZSTD: for a remote on a
// fast link where zstd costs more CPU than the bandwidth it saves is worth
// (cache.remotes.compression: off). true, the default, transfers zstd to
// a remote that advertises it, except over a Unix socket.
func WithCompression(enabled bool) Option { return func(o *options) { o.identityOnly = !enabled } }
