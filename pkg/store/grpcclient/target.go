package grpcclient

import (
	"net"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// target is a parsed remote URL.
type target struct {
	dial   string // what grpc.NewClient dials
	name   string // default Config.Name
	tls    bool
	socket bool // unix socket: local, no network exposure
}

// parseTarget turns a configured URL into a gRPC target. The error is
// INVALID_ARGUMENT naming what is expected.
func parseTarget(raw string) (target, error) {
	if path, ok := strings.CutPrefix(raw, "unix:"); ok {
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return target{}, status.Errorf(codes.InvalidArgument, "remote url %q: expected unix:PATH", raw)
		}
		return target{dial: "unix:" + path, name: path, socket: true}, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return target{}, status.Errorf(codes.InvalidArgument, "remote url %q: expected grpc://, grpcs://, http://, https://HOST[:PORT] or unix:PATH", raw)
	}
	var t target
	port := "80"
	switch u.Scheme {
	case "grpc", "http":
	case "grpcs", "https":
		t.tls, port = true, "443"
	default:
		return target{}, status.Errorf(codes.InvalidArgument, "remote url %q: scheme %q is not one of grpc, grpcs, http, https, unix", raw, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return target{}, status.Errorf(codes.InvalidArgument, "remote url %q: a path is not supported; use instance-name", raw)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), port)
	}
	t.dial, t.name = "dns:///"+host, host
	return t, nil
}
