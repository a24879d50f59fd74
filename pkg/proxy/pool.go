package proxy

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/castd/castd/pkg/policy"

	"github.com/castd/castd/pkg/store/grpcclient"
)

// remoteKey identifies one upstream connection: the same url and instance
// with other credentials or connection settings is another remote, so
// credentials never travel to a remote they were not configured for.
type remoteKey struct {
	url, instance string
	auth          policy.Auth
	conn          policy.ConnectionConfig // RetryLimit cleared: a pointer compares by address
	retryLimit    int                     // grpcclient.Config's meaning: negative for unset
}

func keyOf(r policy.Remote) remoteKey {
	conn := r.ConnectionConfig
	conn.RetryLimit = nil
	return remoteKey{url: r.URL, instance: r.InstanceName, auth: r.Auth, conn: conn, retryLimit: retryLimit(r.ConnectionConfig)}
}

// retryLimit is the configured retry-limit in grpcclient.Config's terms:
// unset is negative (the client's default), 0 is no retries.
func retryLimit(c policy.ConnectionConfig) int {
	if c.RetryLimit == nil {
		return -1
	}
	return *c.RetryLimit
}

// pool dials each distinct remote once and hands out the same client to
// every instance that uses it. Safe for concurrent use.
type pool struct {
	opts   Options
	tuning policy.RemoteTuning

	mu     sync.Mutex
	byKey  map[remoteKey]*remote
	byName map[string]*remote
	order  []*remote // in first-use order, for status
}

func newPool(opts Options, tuning policy.RemoteTuning) *pool {
	return &pool{opts: opts, tuning: tuning, byKey: map[remoteKey]*remote{}, byName: map[string]*remote{}}
}

// get returns the client for r, dialing it on first use. Dial is lazy (no
// network I/O), so a remote that is down does not fail this; a bad
// configuration (unreadable certificate) does.
func (p *pool) get(ctx context.Context, r policy.Remote) (*remote, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := keyOf(r)
	if rem, ok := p.byKey[k]; ok {
		usedBy(ctx).add(rem)
		return rem, nil
	}
	name := p.uniqueName(r)
	up, err := grpcclient.Dial(ctx, upstreamConfig(r, name, p.tuning), p.dialOptions()...)
	if err != nil {
		return nil, err
	}
	rem := newRemote(name, r, up, p.tuning, p.opts.Clock)
	p.byKey[k], p.byName[name] = rem, rem
	p.order = append(p.order, rem)
	usedBy(ctx).add(rem)
	return rem, nil
}

// retain keeps the remotes in live and removes the others, which it
// returns: they leave status, and a later get dials them afresh.
func (p *pool) retain(live map[*remote][]useMark) []*remote {
	p.mu.Lock()
	defer p.mu.Unlock()
	var kept, gone []*remote
	for _, r := range p.order {
		if _, ok := live[r]; ok || r.executes() {
			kept = append(kept, r)
			continue
		}
		gone = append(gone, r)
		delete(p.byKey, keyOf(r.cfg))
		delete(p.byName, r.name)
	}
	p.order = kept
	return gone
}

// remoteUse collects the remotes that building one instance gets from
// the pool, so that a reload knows which remotes are still in use.
type remoteUse struct {
	mu   sync.Mutex
	used map[*remote][]useMark
}

type remoteUseKey struct{}

// withRemoteUse returns ctx carrying a fresh collector, and the collector.
func withRemoteUse(ctx context.Context) (context.Context, *remoteUse) {
	u := &remoteUse{used: map[*remote][]useMark{}}
	return context.WithValue(ctx, remoteUseKey{}, u), u
}

// usedBy is ctx's collector, nil when there is none.
func usedBy(ctx context.Context) *remoteUse {
	u, _ := ctx.Value(remoteUseKey{}).(*remoteUse)
	return u
}

func (u *remoteUse) add(r *remote) {
	if u == nil {
		return
	}
	u.mu.Lock()
	if _, ok := u.used[r]; !ok {
		u.used[r] = nil
	}
	u.mu.Unlock()
}

// mark records how r was used.
func (u *remoteUse) mark(r *remote, m useMark) {
	if u == nil {
		return
	}
	u.mu.Lock()
	u.used[r] = append(u.used[r], m)
	u.mu.Unlock()
}

func (p *pool) dialOptions() []grpcclient.Option {
	opts := []grpcclient.Option{
		grpcclient.WithLogger(p.opts.Logger),
		breakerOption(p.tuning),
		compressionOption(p.tuning),
	}
	if p.opts.Registerer != nil {
		opts = append(opts, grpcclient.WithRegisterer(p.opts.Registerer))
	}
	return append(opts, p.opts.Dial...)
}

// uniqueName labels r by HOST:PORT (or socket path) and instance name,
// with "#N" added when another remote already has that label (same
// server, other credentials). The caller holds mu.
func (p *pool) uniqueName(r policy.Remote) string {
	base := hostOf(r.URL)
	if r.InstanceName != "" {
		base += "/" + r.InstanceName
	}
	name := base
	for n := 2; p.byName[name] != nil; n++ {
		name = fmt.Sprintf("%s#%d", base, n)
	}
	return name
}

// hostOf is the URL without its scheme: HOST:PORT or the socket path.
func hostOf(raw string) string {
	if rest, ok := strings.CutPrefix(raw, "unix:"); ok {
		return strings.TrimPrefix(rest, "//")
	}
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return raw
}

// upstreamConfig converts a resolved remote (policy has already turned
// the file's units into durations) into the client's configuration. Zero
// means the same in both (see internal/defaults): retry-limit 0 is no
// retries, an unset one the client's default. The stream idle timeout is
// cache.remotes.stream-idle-timeout, the same for every remote.
func upstreamConfig(r policy.Remote, name string, t policy.RemoteTuning) grpcclient.Config {
	return grpcclient.Config{
		URL:               r.URL,
		InstanceName:      r.InstanceName,
		ServerCert:        r.Auth.ServerCert,
		ClientCert:        r.Auth.ClientCert,
		ClientKey:         r.Auth.ClientKey,
		AccessTokenFile:   r.Auth.AccessToken,
		AccessTokenReload: r.Auth.AccessTokenReloadInterval,
		Keepalive:         r.ConnectionConfig.KeepaliveTime,
		RetryLimit:        retryLimit(r.ConnectionConfig),
		RetryDelay:        r.ConnectionConfig.RetryDelay,
		RequestTimeout:    r.ConnectionConfig.RequestTimeout,
		IdleTimeout:       t.StreamIdleTimeout,
		Name:              name,
	}
}

// all returns the remotes in first-use order.
func (p *pool) all() []*remote {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*remote(nil), p.order...)
}

// close closes every connection.
func (p *pool) close() {
	for _, r := range p.all() {
		_ = r.up.Close()
	}
}
