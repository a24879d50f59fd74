package main

import (
	"fmt"

	"github.com/coreos/go-systemd/v22/activation"
)

// systemdListeners returns the sockets systemd passed to this process
// (LISTEN_FDS/LISTEN_PID, e.g. from deploy/systemd/castd.socket), or nil when
// castd was not socket-activated. When there are any, they replace the
// configured `listen` entries: systemd owns the socket path and its mode.
// They are served plaintext; put TLS listeners in castd's own config.
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
