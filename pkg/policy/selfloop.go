package policy

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
)

// ownListeners is what the user configuration's remotes are checked
// against: castd's own listen addresses, and whether `listen:` was
// configured (else they are the built-in default).
type ownListeners struct {
	list []Listener
	set  bool
}

// checkSelfLoop reports a remote url (at key path p) that names one of
// castd's own listeners: castd would forward every miss to itself, and
// the forwarded request would wait on the fetch it belongs to. Only the
// user configuration knows the listeners; a project.conf is not checked.
// Loops the configuration cannot show (two daemons naming each other, a
// symlinked socket, a TCP forward) are refused at run time instead.
func (d *decoder) checkSelfLoop(p, rawURL string) {
	for i, l := range d.own.list {
		if !loopsTo(rawURL, l) {
			continue
		}
		d.errorf(p, "remote %s is castd's own listener %s: castd would ask itself for every blob it lacks; point the url at another server", rawURL, d.listenerName(i, l))
		return
	}
}

// listenerName says which listener i is and where it was configured:
// "listen[0] (unix:/run/castd.sock, line 3)", or the built-in default.
func (d *decoder) listenerName(i int, l Listener) string {
	if !d.own.set {
		return fmt.Sprintf("unix:%s (the default listen address; listen: is not set)", l.Address)
	}
	key := indexPath("listen", i)
	at := d.idx.value(key, d.filePos())
	where := at.File
	if at.File == d.file && at.Line > 0 {
		where = fmt.Sprintf("line %d", at.Line)
	}
	return fmt.Sprintf("%s (%s, %s)", key, l, where)
}

// loopsTo reports whether a remote url reaches listener l of this castd:
// the same socket path after cleaning (unix:PATH and unix:///PATH alike),
// or for TCP the same port with the same TLS-ness on a host that is l's
// own (equal, or loopback when l is loopback or a wildcard address). A
// host name other than localhost is not resolved: that loop, like one
// through a symlink or a forward, is left to the run-time guard.
func loopsTo(rawURL string, l Listener) bool {
	if rest, ok := strings.CutPrefix(rawURL, "unix:"); ok {
		return l.Scheme == "unix" && samePath(strings.TrimPrefix(rest, "//"), l.Address)
	}
	u, err := url.Parse(rawURL)
	if err != nil || l.Scheme == "unix" {
		return false
	}
	tls, port := false, "80"
	switch u.Scheme {
	case "grpc", "http":
	case "grpcs", "https":
		tls, port = true, "443"
	default:
		return false
	}
	if u.Port() != "" {
		port = u.Port()
	}
	lhost, lport, err := net.SplitHostPort(l.Address)
	return err == nil && tls == l.TLS() && port == lport && sameHost(u.Hostname(), lhost)
}

// samePath compares two socket paths after cleaning, a relative one
// taken from the current directory as the dialer would.
func samePath(a, b string) bool {
	abs := func(p string) string {
		if q, err := filepath.Abs(p); err == nil {
			return q
		}
		return filepath.Clean(p)
	}
	return a != "" && abs(a) == abs(b)
}

// sameHost reports whether a remote's host reaches a listener bound to
// lhost on this machine.
func sameHost(rhost, lhost string) bool {
	if strings.EqualFold(rhost, lhost) {
		return true
	}
	if !loopback(rhost) {
		return false
	}
	if wildcard(lhost) || strings.EqualFold(rhost, "localhost") && loopback(lhost) {
		return true
	}
	return strings.EqualFold(lhost, "localhost")
}

// loopback reports whether host is localhost or a loopback IP.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// wildcard reports whether a listen host accepts every local address:
// empty, 0.0.0.0 or ::.
func wildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
