package main

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/castd/castd/pkg/policy"
)

// startListeners opens what castd serves on. Without socket activation that
// is every configured `listen` entry. With it, the sockets systemd passed
// are served, and every configured entry systemd did not pass (same unix
// path, or same TCP address for grpc://) is opened by castd itself, so that
// a unit whose .socket holds only the Unix socket still gets the configured
// loopback TCP listener. The built-in default `listen` (the user set none)
// is replaced by systemd's sockets: nothing was asked for beyond them.
func startListeners(cfg daemonConfig) ([]boundListener, error) {
	opts := listenOptions{socketMode: cfg.socketMode, tls: cfg.tls}
	passed, err := systemdListeners()
	if err != nil {
		return nil, err
	}
	if len(passed) == 0 {
		return openListeners(cfg.listen, opts)
	}
	if cfg.listenIsDefault {
		return passed, nil
	}
	var rest []policy.Listener
	for _, s := range cfg.listen {
		if !slices.ContainsFunc(passed, func(l boundListener) bool { return sameAddress(s, l.Addr()) }) {
			rest = append(rest, s)
		}
	}
	if len(rest) == 0 {
		return passed, nil
	}
	own, err := openListeners(rest, opts)
	if err != nil {
		closeListeners(passed)
		return nil, fmt.Errorf("%w (a configured listener systemd did not pass; castd opens those itself)", err)
	}
	return append(passed, own...), nil
}

// systemdListeners returns the sockets systemd passed to this process
// (LISTEN_FDS/LISTEN_PID, e.g. from deploy/systemd/castd.socket), or nil when
// castd was not socket-activated. systemd owns their path and mode. They are
// served plaintext; put TLS listeners in castd's own config.
func systemdListeners() ([]boundListener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("systemd socket activation: %w", err)
	}
	var out []boundListener
	for _, l := range ls {
		if l == nil { // a passed fd that is not a stream socket
			continue
		}
		a := l.Addr()
		out = append(out, boundListener{l, fmt.Sprintf("%s:%s (from systemd)", a.Network(), a.String())})
	}
	return out, nil
}

// sameAddress reports whether the passed socket's address a is the one
// the configured listener s names. grpcs:// never matches: passed sockets
// are served plaintext, so castd binds a TLS address itself (and fails
// naming it when systemd holds the port).
func sameAddress(s policy.Listener, a net.Addr) bool {
	switch s.Scheme {
	case "unix":
		ua, ok := a.(*net.UnixAddr)
		return ok && filepath.Clean(ua.Name) == filepath.Clean(s.Address)
	case "grpc":
		ta, ok := a.(*net.TCPAddr)
		if !ok {
			return false
		}
		want, err := net.ResolveTCPAddr("tcp", s.Address)
		return err == nil && want.Port == ta.Port && want.IP.Equal(ta.IP)
	}
	return false
}
