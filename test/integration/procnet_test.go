package integration_test

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tcpSocketsOf lists the local addresses (IP:PORT) of the TCP sockets that
// process pid holds open, by matching the socket inodes among its file
// descriptors with /proc/PID/net/tcp and tcp6. No ss or netstat needed.
func tcpSocketsOf(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(fd)
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	var out []string
	for _, table := range []string{"tcp", "tcp6"} {
		out = append(out, tcpTableAddrs(t, fmt.Sprintf("/proc/%d/net/%s", pid, table), inodes)...)
	}
	return out
}

// tcpTableAddrs returns the local addresses of the rows of a /proc/net/tcp*
// table whose inode is in inodes.
func tcpTableAddrs(t *testing.T, path string, inodes map[string]bool) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil // no IPv6 in this kernel
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || !inodes[fields[9]] {
			continue
		}
		out = append(out, decodeProcAddr(t, fields[1]))
	}
	return out
}

// decodeProcAddr turns "0100007F:1F90" into "127.0.0.1:8080". The kernel
// prints the address as 32-bit words in host (little-endian) order.
func decodeProcAddr(t *testing.T, s string) string {
	t.Helper()
	hexIP, hexPort, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexIP)
	if err != nil || len(raw)%4 != 0 {
		t.Fatalf("bad address %q in /proc/net/tcp", s)
	}
	ip := make(net.IP, len(raw))
	for w := 0; w < len(raw); w += 4 {
		for i := 0; i < 4; i++ {
			ip[w+i] = raw[w+3-i]
		}
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		t.Fatalf("bad port in %q", s)
	}
	return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10))
}
