package casd

import (
	"net"
	"os"
	"strings"
	"time"

	"github.com/castd/castd/pkg/policy"
)

// NoCastd is the --castd-socket value that turns the castd daemon off: the
// casd then talks to BuildStream's remotes itself.
const NoCastd = "none"

// castdProbeTimeout bounds the connect that tells whether a castd daemon
// answers on its socket; a local socket answers or refuses at once.
const castdProbeTimeout = time.Second

// castdSocket is where the user's castd daemon would listen, found the
// way bst finds it: flag (--castd-socket), else $CASTD_SOCKET, else the
// first unix listener of castd's own configuration (the user's castd.yaml
// and CASTD_* variables), else castd's default socket. NoCastd (as flag or
// variable) means none: "" is returned.
func castdSocket(flag string) string {
	if flag == "" {
		flag = os.Getenv("CASTD_SOCKET")
	}
	if flag == NoCastd {
		return ""
	}
	if flag != "" {
		return strings.TrimPrefix(strings.TrimPrefix(flag, "unix:"), "//")
	}
	return policy.ConfiguredSocket()
}

// castdAnswers reports whether something accepts connections on socket.
func castdAnswers(socket string) bool {
	if socket == "" {
		return false
	}
	c, err := net.DialTimeout("unix", socket, castdProbeTimeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
