package grpcclient

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/castd/castd/internal/clock"
	"github.com/castd/castd/internal/grpcerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// tokenCredentials sends the bearer token of one remote's token file as
// per-RPC credentials of that remote's connection only. The file is re-read
// when the reload interval has passed (lazily, on the next call) and when a
// call was answered UNAUTHENTICATED. Safe for concurrent use.
type tokenCredentials struct {
	path     string
	reload   time.Duration
	clock    clock.Clock
	secure   bool // TLS: gRPC refuses to send the token otherwise
	warn     bool // plaintext over a network: warn once
	logger   *slog.Logger
	name     string
	warnOnce sync.Once

	mu       sync.Mutex
	token    string
	loadedAt time.Time
	stale    bool
}

func newTokenCredentials(path string, reload time.Duration, t target, name string, o options) *tokenCredentials {
	return &tokenCredentials{
		path: path, reload: reload, clock: o.clock, logger: o.logger, name: name, stale: true,
		secure: t.tls,
		warn:   !t.tls && !t.socket, // a unix socket keeps the token on this machine
	}
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *tokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	if c.warn {
		c.warnOnce.Do(func() {
			c.logger.Warn("sending an access token over a plaintext connection, as configured", "remote", c.name)
		})
	}
	tok, err := c.current()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. A
// plaintext remote gets the token only because the user configured one for
// it; GetRequestMetadata warns about that once.
func (c *tokenCredentials) RequireTransportSecurity() bool { return c.secure }

// invalidate makes the next call re-read the token file.
func (c *tokenCredentials) invalidate() {
	c.mu.Lock()
	c.stale = true
	c.mu.Unlock()
}

func (c *tokenCredentials) current() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if !c.stale && (c.reload <= 0 || now.Sub(c.loadedAt) < c.reload) {
		return c.token, nil
	}
	b, err := os.ReadFile(c.path)
	tok := strings.TrimSpace(string(b))
	if err == nil && tok == "" {
		err = status.Error(codes.Unauthenticated, "file is empty")
	}
	if err != nil {
		if c.token != "" {
			c.logger.Warn("keeping the previous access token", "remote", c.name, "file", c.path, "err", err)
			c.stale, c.loadedAt = false, now
			return c.token, nil
		}
		return "", grpcerr.Labelf(label(c.name), codes.Unauthenticated, "access token %s: %v", c.path, err)
	}
	c.token, c.loadedAt, c.stale = tok, now, false
	return tok, nil
}
