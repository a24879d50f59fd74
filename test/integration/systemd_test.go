package integration_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spawnActivated starts castd the way systemd does for castd.socket: the
// listening socket is fd 3, LISTEN_FDS=1 and LISTEN_PID is castd's own PID
// (sh execs castd, keeping its PID), and NOTIFY_SOCKET receives sd_notify.
func spawnActivated(t *testing.T, l *layout, configYAML string, sock *os.File, notifySocket string) *castdProc {
	t.Helper()
	if err := os.WriteFile(l.config, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, castdBin, "serve", "--config", l.config)
	cmd.Env = append(l.env, "LISTEN_FDS=1", "NOTIFY_SOCKET="+notifySocket)
	cmd.ExtraFiles = []*os.File{sock}
	return startProc(t, cmd)
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

	p := spawnActivated(t, l, l.configYAML(""), sockFile, notifyPath)
	line, err := p.logs.waitFor(regexp.MustCompile(`castd listening on`), p.exited, startTimeout)
	if err != nil {
		t.Fatal(err)
	}
	p.ready, p.socket = line, activated

	t.Run("socket activation", func(t *testing.T) {
		t.Log("castd.socket hands castd its listening socket; castd serves it instead of opening the configured one")
		if !strings.Contains(line, "unix:"+activated+" (from systemd)") {
			t.Errorf("ready line %q does not name the activated socket", line)
		}
		p.waitHealthy()
		if _, err := capabilitiesOver(dialUnix(t, activated)); err != nil {
			t.Fatalf("capabilities over the activated socket: %v", err)
		}
		if _, err := os.Lstat(l.socket); !os.IsNotExist(err) {
			t.Errorf("configured socket %s was created although systemd passed one (%v)", l.socket, err)
		}
	})
	t.Run("sd_notify ready", func(t *testing.T) {
		t.Log("Type=notify units start dependants only after READY=1")
		waitNotify(t, notify, "READY=1")
	})
	t.Run("sighup ignored", func(t *testing.T) {
		t.Log("a stray SIGHUP (castd does not reload) must not kill the daemon")
		p.signal(syscall.SIGHUP)
		if _, err := p.logs.waitFor(regexp.MustCompile(`SIGHUP received`), p.exited, 10*time.Second); err != nil {
			t.Fatal(err)
		}
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
