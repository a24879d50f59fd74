package main

import "net"

// unixSocketBuffer is the send and receive buffer castd asks for on each
// Unix-socket connection. A Unix socket has no TCP-style autotuning: the
// sender's buffer (net.core.wmem_default, 208 KiB on most kernels) bounds
// the bytes in flight, so a 2 MiB BatchReadBlobs answer crosses in many
// round trips of context switches. The kernel caps the request at
// net.core.wmem_max / rmem_max; raise those to get the full size.
const unixSocketBuffer = 4 << 20

// socketBufferListener sizes the buffers of every Unix-socket connection it
// accepts. TCP connections are left to the kernel's autotuning.
type socketBufferListener struct{ net.Listener }

func (l socketBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if uc, ok := c.(*net.UnixConn); ok && err == nil {
		// Best effort: a smaller buffer is slower, not wrong.
		_ = uc.SetWriteBuffer(unixSocketBuffer)
		_ = uc.SetReadBuffer(unixSocketBuffer)
	}
	return c, err
}
