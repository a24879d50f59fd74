package grpcservers

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/castd/castd/internal/clock"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// ListenAuth guards castd's TCP listeners when castd serves as another
// castd's upstream: with a token, every RPC from a TCP peer must carry
// "authorization: Bearer <token>" or fails UNAUTHENTICATED; Unix socket
// peers are never asked. Without a token, castd.v1.Control (status with the
// store directory, project registration, reports) is refused on TCP with
// PERMISSION_DENIED: it is meant for the local user, and a TCP listener
// without listen-auth answers anyone who can reach it. A refused request logs a warning naming the peer
// (never what it presented), at most one a minute. With LogMetadata, every RPC logs the metadata key
// names it carried and whether an authorization header was present (never
// a value) and whether the peer came over TCP. Safe for concurrent use.
type ListenAuth struct {
	token       atomic.Pointer[[]byte] // nil: no authentication; replaced by SetTokenFile
	logMetadata bool
	log         *slog.Logger
	clock       clock.Clock // the rejection log's clock; tests replace it

	mu         sync.Mutex
	lastWarn   time.Time // when the last rejection was logged
	suppressed int       // rejections since then that were not logged
}

// rejectionLogInterval is the least time between two rejection warnings: a
// client retrying with a wrong token must not flood the journal, but an
// operator must see that it happens and from where.
const rejectionLogInterval = time.Minute

// NewListenAuth reads the token from tokenFile ("" disables
// authentication; surrounding white space is ignored).
func NewListenAuth(tokenFile string, logMetadata bool, log *slog.Logger) (*ListenAuth, error) {
	a := &ListenAuth{logMetadata: logMetadata, log: log, clock: clock.Real()}
	if err := a.SetTokenFile(tokenFile); err != nil {
		return nil, err
	}
	return a, nil
}

// SetTokenFile replaces the token with the contents of tokenFile ("" turns
// authentication off) for the RPCs that start from now on; a configuration
// reload calls it. On error the old token stays. Safe for concurrent use.
func (a *ListenAuth) SetTokenFile(tokenFile string) error {
	if tokenFile == "" {
		a.token.Store(nil)
		return nil
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	tok := []byte(strings.TrimSpace(string(b)))
	a.token.Store(&tok)
	return nil
}

// check logs and authenticates one RPC.
func (a *ListenAuth) check(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	tcp := overTCP(ctx)
	if a.logMetadata {
		keys := make([]string, 0, len(md))
		for k := range md {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		a.log.Info("request metadata", "method", method, "tcp", tcp, "keys", strings.Join(keys, ","), "authorization", len(auth) > 0)
	}
	if !tcp {
		return nil
	}
	token := a.token.Load()
	if token == nil {
		return controlWithoutToken(method)
	}
	for _, v := range auth {
		if tok, ok := strings.CutPrefix(v, "Bearer "); ok && subtle.ConstantTimeCompare([]byte(tok), *token) == 1 {
			return nil
		}
	}
	a.warnRejected(ctx, method, len(auth) > 0)
	return status.Error(codes.Unauthenticated, "castd: this listener requires a bearer token (authorization: Bearer …)")
}

// controlPrefix starts every castd.v1.Control method name.
const controlPrefix = "/castd.v1.Control/"

// controlWithoutToken refuses castd.v1.Control on a TCP listener that has
// no listen-auth token: those methods reveal the store directory and
// usage and change registrations, which must not be open to the network.
func controlWithoutToken(method string) error {
	if !strings.HasPrefix(method, controlPrefix) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied,
		"castd: %s is served on TCP listeners only when listen-auth (access-token) is configured; use the Unix socket", method)
}

// warnRejected logs a refused TCP request with its peer, at most once per
// rejectionLogInterval, counting the ones it leaves out. It never logs
// what the client presented.
func (a *ListenAuth) warnRejected(ctx context.Context, method string, presented bool) {
	if a.log == nil {
		return
	}
	a.mu.Lock()
	now := a.clock.Now()
	if !a.lastWarn.IsZero() && now.Sub(a.lastWarn) < rejectionLogInterval {
		a.suppressed++
		a.mu.Unlock()
		return
	}
	suppressed := a.suppressed
	a.lastWarn, a.suppressed = now, 0
	a.mu.Unlock()
	reason := "no bearer token"
	if presented {
		reason = "wrong bearer token"
	}
	peerAddr := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		peerAddr = p.Addr.String()
	}
	a.log.Warn("listen-auth: request refused: "+reason, "peer", peerAddr, "method", method,
		"refused_since_last_warning", suppressed, "next_warning_after", rejectionLogInterval.String())
}

// overTCP reports whether the peer came in over a network (not Unix)
// socket.
func overTCP(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	return ok && p.Addr != nil && p.Addr.Network() != "unix"
}

// Unary is the unary server interceptor.
func (a *ListenAuth) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is the stream server interceptor.
func (a *ListenAuth) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// ServerOptions returns the interceptors as grpc.ServerOptions. They are
// always needed: without a token they still keep Control off TCP.
func (a *ListenAuth) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(a.Unary), grpc.ChainStreamInterceptor(a.Stream)}
}
