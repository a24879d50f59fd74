package integration_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/credentials/insecure"
)

// spawnActivated starts castd the way systemd does for castd.socket: the
// listening sockets are fds 3…, LISTEN_FDS counts them and LISTEN_PID is
// castd's own PID (sh execs castd, keeping its PID), and NOTIFY_SOCKET
// receives sd_notify.
func spawnActivated(t *testing.T, l *layout, configYAML string, notifySocket string, socks ...*os.File) *castdProc {
	t.Helper()
	if err := os.WriteFile(l.config, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, castdBin, "serve", "--config", l.config)
	cmd.Env = append(l.env, fmt.Sprintf("LISTEN_FDS=%d", len(socks)), "NOTIFY_SOCKET="+notifySocket)
	cmd.ExtraFiles = socks
	return startProc(t, cmd)
}

// passedSocket listens on network/address as systemd's .socket unit would
// and returns the listening file to hand to castd and the bound address.
func passedSocket(t *testing.T, network, address string) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var f *os.File
	switch l := ln.(type) {
	case *net.UnixListener:
		f, err = l.File()
	case *net.TCPListener:
		f, err = l.File()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

func TestSystemdConfiguredListeners(t *testing.T) {
	t.Log("the README's unit plus a loopback TCP listener for Debian's Bazel: systemd passes only the Unix socket")
	l := newLayout(t)
	unixFile, unixPath := passedSocket(t, "unix", filepath.Join(l.base, "act.sock"))
	tcpFile, tcpAddr := passedSocket(t, "tcp", "127.0.0.1:0")
	notifyPath := filepath.Join(l.base, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()

	t.Run("configured TCP listener not passed", func(t *testing.T) {
		t.Log("castd opens the grpc:// listener itself instead of dropping it")
		cfg := fmt.Sprintf("listen: [\"unix:%s\", \"grpc://127.0.0.1:0\"]\nstore-dir: %s\nmetrics: \"\"\n", unixPath, l.store)
		p := spawnActivated(t, l, cfg, notifyPath, unixFile)
		line, err := p.logs.waitFor(regexp.MustCompile(`castd listening on`), p.exited, startTimeout)
		if err != nil {
			t.Fatal(err)
		}
		p.ready, p.socket = line, unixPath
		if !strings.Contains(line, "unix:"+unixPath+" (from systemd)") {
			t.Errorf("ready line %q does not name the activated socket", line)
		}
		if strings.Count(line, unixPath) != 1 {
			t.Errorf("ready line %q: the passed Unix socket was opened a second time", line)
		}
		p.waitHealthy()
		if _, err := capabilitiesOver(dialTCP(t, p.listenAddr("grpc"), insecure.NewCredentials())); err != nil {
			t.Fatalf("capabilities over the configured TCP listener: %v", err)
		}
		p.signal(syscall.SIGTERM)
		p.wait(drainTimeout + 10*time.Second)
	})
	t.Run("configured TCP listener passed", func(t *testing.T) {
		t.Log("a TCP socket systemd passed is served as is, not bound again (that would fail: the port is taken)")
		cfg := fmt.Sprintf("listen: [\"unix:%s\", \"grpc://%s\"]\nstore-dir: %s\nmetrics: \"\"\n", unixPath, tcpAddr, l.store)
		p := spawnActivated(t, l, cfg, notifyPath, unixFile, tcpFile)
		line, err := p.logs.waitFor(regexp.MustCompile(`castd listening on`), p.exited, startTimeout)
		if err != nil {
			t.Fatal(err)
		}
		p.ready, p.socket = line, unixPath
		if want := "tcp:" + tcpAddr + " (from systemd)"; !strings.Contains(line, want) {
			t.Errorf("ready line %q does not contain %q", line, want)
		}
		if _, err := capabilitiesOver(dialTCP(t, tcpAddr, insecure.NewCredentials())); err != nil {
			t.Fatalf("capabilities over the passed TCP socket: %v", err)
		}
	})
}

func TestSystemdIntegration(t *testing.T) {
	l := newLayout(t)
	activated := filepath.Join(l.base, "act.sock")
	ln, err := net.Listen("unix", activated)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sockFile, err := ln.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer sockFile.Close()
	notifyPath := filepath.Join(l.base, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()

	configured := l.socket
	l.socket = activated // the config names the socket the unit passes, as the README's does
	p := spawnActivated(t, l, l.configYAML(""), notifyPath, sockFile)
	line, err := p.logs.waitFor(regexp.MustCompile(`castd listening on`), p.exited, startTimeout)
	if err != nil {
		t.Fatal(err)
	}
	p.ready, p.socket = line, activated

	t.Run("socket activation", func(t *testing.T) {
		t.Log("castd.socket hands castd its listening socket; castd serves it rather than binding the path again")
		if !strings.Contains(line, "unix:"+activated+" (from systemd)") {
			t.Errorf("ready line %q does not name the activated socket", line)
		}
		p.waitHealthy()
		if _, err := capabilitiesOver(dialUnix(t, activated)); err != nil {
			t.Fatalf("capabilities over the activated socket: %v", err)
		}
		if _, err := os.Lstat(configured); !os.IsNotExist(err) {
			t.Errorf("socket %s, which nothing configures, was created (%v)", configured, err)
		}
	})
	t.Run("sd_notify ready", func(t *testing.T) {
		t.Log("Type=notify units start dependants only after READY=1")
		waitNotify(t, notify, "READY=1")
	})
	t.Run("sighup reloads", func(t *testing.T) {
		t.Log("systemctl reload (ExecReload: SIGHUP) reloads the configuration, tells systemd RELOADING=1 then READY=1, and keeps serving")
		p.signal(syscall.SIGHUP)
		if _, err := p.logs.waitFor(regexp.MustCompile(`configuration reloaded`), p.exited, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		waitNotify(t, notify, "RELOADING=1")
		waitNotify(t, notify, "READY=1")
		p.waitHealthy()
	})
	t.Run("sd_notify stopping", func(t *testing.T) {
		t.Log("systemd learns that the stop it asked for is under way, and castd exits 0")
		p.signal(syscall.SIGTERM)
		waitNotify(t, notify, "STOPPING=1")
		if code := p.wait(drainTimeout + 10*time.Second); code != 0 {
			t.Errorf("exit code = %d, want 0", code)
		}
	})
}

// waitNotify reads sd_notify datagrams until one equals want.
func waitNotify(t *testing.T, c *net.UnixConn, want string) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(startTimeout)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("waiting for sd_notify %q: %v", want, err)
		}
		if string(buf[:n]) == want {
			return
		}
	}
}
