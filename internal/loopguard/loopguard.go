// Package loopguard keeps a request from going round a loop of castd
// daemons: a remote that is castd itself (a symlink to its socket, a TCP
// forward) or two castds that name each other as remotes. Configuration
// catches the loops it can see (policy refuses a remote url that names
// castd's own listener); this package catches the rest at run time, the way
// HTTP proxies use the Via header.
//
// Every call castd makes to a remote carries the metadata entry Key: the
// daemon ids of the castds the request has passed through, ending with the
// caller's own. A castd refuses a request whose entry already holds its own
// id with FAILED_PRECONDITION, before any handler runs and without
// forwarding it. castd's REAPI client does not retry that code
// (grpcclient.Permanent), so the castd that asked counts that remote as
// failed and moves on to its next tier instead of waiting on itself.
//
// The entry holds random ids made at start and nothing else: no
// credentials, no host names. It must not import castd's other packages.
package loopguard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Key is the metadata entry that carries the ids of the castds a request
// has passed through, comma-separated, oldest first.
const Key = "castd-via"

// maxMarks bounds how many ids a request carries on: a chain of castds is
// short, and a client must not be able to grow the entry without limit.
const maxMarks = 32

// idLen is the length of an id: 16 random bytes in hex.
const idLen = 32

// Guard is one castd daemon's identity and the interceptors that mark its
// outgoing calls and refuse requests that come back to it. Safe for
// concurrent use; it never changes after New.
type Guard struct {
	id string
}

// New returns a Guard with a fresh random id. Make one per daemon process,
// at start, and use it for both its server and every remote it dials.
func New() *Guard {
	var b [idLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes instead)
	return &Guard{id: hex.EncodeToString(b[:])}
}

// ID returns the daemon id this Guard marks calls with.
func (g *Guard) ID() string { return g.id }

// Marks returns the castd ids that the request served in ctx came
// through, oldest first: the valid ids of its Key entries, at most
// maxMarks of them. Anything that is not an id is dropped, so that
// nothing a client sends is forwarded to a remote under Key.
func Marks(ctx context.Context) []string {
	md, _ := metadata.FromIncomingContext(ctx)
	var out []string
	for _, v := range md.Get(Key) {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); validID(id) && len(out) < maxMarks {
				out = append(out, id)
			}
		}
	}
	return out
}

func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// mark returns ctx whose outgoing metadata carries Key: the marks of the
// request being served in ctx, if any, then g's id. It replaces any Key
// already set, so that retries do not stack marks.
func (g *Guard) mark(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(Key, strings.Join(append(Marks(ctx), g.id), ","))
	return metadata.NewOutgoingContext(ctx, md)
}

// DialOptions are the client interceptors that mark every call made on a
// connection to a remote. Cost: one metadata copy per call.
func (g *Guard) DialOptions() []grpc.DialOption {
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(g.mark(ctx), method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(g.mark(ctx), desc, cc, method, opts...)
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}
}

// ServerOptions are the server interceptors that refuse a request that
// has already passed through this castd (see check). Cost: one metadata
// lookup per call.
func (g *Guard) ServerOptions() []grpc.ServerOption {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := g.check(ctx); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := g.check(ss.Context()); err != nil {
			return err
		}
		return h(srv, ss)
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}
}

// check returns FAILED_PRECONDITION when the request in ctx carries g's
// own id: serving it would forward it round the same loop again (or wait
// on the very fetch that sent it). FAILED_PRECONDITION is a deterministic
// refusal that neither castd's client nor Bazel retries.
func (g *Guard) check(ctx context.Context) error {
	marks := Marks(ctx)
	for _, id := range marks {
		if id == g.id {
			return status.Errorf(codes.FailedPrecondition,
				"this request has already passed through this castd (id %s; %s: %s): a remote loops back to castd itself; check the remote urls of the castds on the way",
				g.id, Key, strings.Join(marks, ","))
		}
	}
	return nil
}
