package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/castd/castd/pkg/policy"
)

// boundListener is an open listener and how to describe it in the log.
type boundListener struct {
	net.Listener
	desc string // e.g. "unix:/run/user/1000/castd/castd.sock (mode 0600)"
}

// listenOptions are the settings listeners need besides their address.
type listenOptions struct {
	socketMode os.FileMode
	tls        tlsFiles
}

// openListeners opens every spec in order. On error, the listeners already
// opened are closed so that a failed start leaves no socket behind.
func openListeners(specs []policy.Listener, opts listenOptions) ([]boundListener, error) {
	var out []boundListener
	for _, s := range specs {
		l, err := openListener(s, opts)
		if err != nil {
			closeListeners(out)
			return nil, err
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, errors.New("no listeners configured: set `listen`")
	}
	return out, nil
}

func openListener(s policy.Listener, opts listenOptions) (boundListener, error) {
	switch s.Scheme {
	case "unix":
		l, err := listenUnix(s.Address, opts.socketMode)
		if err != nil {
			return boundListener{}, err
		}
		return boundListener{l, fmt.Sprintf("unix:%s (mode %04o)", s.Address, opts.socketMode.Perm())}, nil
	case "grpc":
		l, err := listenTCP(s.Address)
		if err != nil {
			return boundListener{}, err
		}
		return boundListener{l, "grpc://" + l.Addr().String()}, nil
	case "grpcs":
		l, err := listenTLS(s.Address, opts.tls)
		if err != nil {
			return boundListener{}, err
		}
		return boundListener{l, "grpcs://" + l.Addr().String()}, nil
	}
	return boundListener{}, fmt.Errorf("listen %s: unknown scheme", s)
}

func closeListeners(ls []boundListener) {
	for _, l := range ls {
		_ = l.Close()
	}
}

// describeListeners joins the log descriptions of ls with ", ".
func describeListeners(ls []boundListener) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.desc
	}
	return strings.Join(parts, ", ")
}
