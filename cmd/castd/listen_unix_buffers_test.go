package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnixConnectionsGetLargeSocketBuffers(t *testing.T) {
	// Why: a Unix socket's default send buffer (208 KiB) splits every
	// large answer into many round trips; castd asks for 4 MiB per
	// accepted connection, as far as net.core.wmem_max allows.
	raw, err := os.ReadFile("/proc/sys/net/core/wmem_max")
	if err != nil {
		t.Fatalf("read wmem_max: %v", err)
	}
	wmemMax, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := listenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bl := socketBufferListener{l}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := bl.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-accepted
	defer server.Close()
	sc, err := server.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := sc.Control(func(fd uintptr) {
		got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	// Linux reports twice the size set (bookkeeping overhead).
	if want := 2 * min(unixSocketBuffer, wmemMax); got != want {
		t.Fatalf("SO_SNDBUF of an accepted connection = %d, want %d (wmem_max %d)", got, want, wmemMax)
	}
}
