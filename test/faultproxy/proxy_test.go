package faultproxy_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/castd/castd/test/faultproxy"
)

// patience bounds every wait for something that must happen; it is long so
// that a loaded machine does not fail the tests, and only a bug reaches it.
const patience = 20 * time.Second

// echoServer answers every connection by sending back what it reads, and
// stops when t ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// newProxy starts a proxy in front of a fresh echo server.
func newProxy(t *testing.T) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *faultproxy.Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// roundTrip writes data (concurrently, so a large echo cannot deadlock on
// full buffers) and reads len(data) bytes back.
func roundTrip(t *testing.T, c net.Conn, data []byte) ([]byte, error) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(patience))
	werr := make(chan error, 1)
	go func() { _, err := c.Write(data); werr <- err }()
	got := make([]byte, len(data))
	_, err := io.ReadFull(c, got)
	if e := <-werr; err == nil {
		err = e
	}
	return got, err
}

// dialAndRead connects to p and reads one byte: the error of whichever
// fails (a reset may come as soon as the connect or only on the read).
func dialAndRead(p *faultproxy.Proxy) error {
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(patience))
	_, err = c.Read(make([]byte, 1))
	return err
}

// isTimeout reports whether err is a deadline passing (as opposed to the
// connection being reset or closed).
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func TestPass(t *testing.T) {
	t.Log("pass forwards bytes unchanged both ways and counts them")
	p := newProxy(t)
	c := dial(t, p)
	data := random(1 << 20)
	got, err := roundTrip(t, c, data)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo through the proxy: err %v, equal %v", err, bytes.Equal(got, data))
	}
	if st := p.Stats(); st.Accepted != 1 || st.ToClient != int64(len(data)) || st.ToServer != int64(len(data)) {
		t.Errorf("stats %+v, want 1 accepted and %d bytes each way", st, len(data))
	}
}

func TestDown(t *testing.T) {
	t.Log("down cuts open connections and resets new ones; pass brings the link back")
	p := newProxy(t)
	open := dial(t, p)
	if _, err := roundTrip(t, open, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	p.SetMode(faultproxy.Down())

	_ = open.SetReadDeadline(time.Now().Add(patience))
	if _, err := open.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("read on a connection open before down: %v, want it cut", err)
	}
	if err := dialAndRead(p); err == nil || isTimeout(err) {
		t.Errorf("new connection while down: %v, want a reset", err)
	}
	if st := p.Stats(); st.Cut != 1 || st.Reset != 1 {
		t.Errorf("stats %+v, want 1 cut and 1 reset", st)
	}

	p.SetMode(faultproxy.Pass())
	if got, err := roundTrip(t, dial(t, p), []byte("again")); err != nil || string(got) != "again" {
		t.Errorf("after pass: %q, %v", got, err)
	}
}

func TestStall(t *testing.T) {
	t.Log("stall answers nothing on new or open connections; bytes held are delivered once it ends")
	p := newProxy(t)
	open := dial(t, p)
	if _, err := roundTrip(t, open, []byte("warm")); err != nil {
		t.Fatal(err)
	}
	p.SetMode(faultproxy.Stall())
	fresh := dial(t, p)
	for name, c := range map[string]*net.TCPConn{"open": open, "new": fresh} {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatalf("%s: write: %v", name, err)
		}
		// A negative check needs a window; nothing may come back in it.
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(make([]byte, 4)); !isTimeout(err) {
			t.Errorf("%s connection during stall: read %d bytes, %v; want nothing", name, n, err)
		}
	}

	if st := p.Stats(); st.Held != 2 {
		t.Errorf("stats %+v, want 2 chunks held", st)
	}
	p.SetMode(faultproxy.Pass())
	for name, c := range map[string]*net.TCPConn{"open": open, "new": fresh} {
		_ = c.SetReadDeadline(time.Now().Add(patience))
		got := make([]byte, 4)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
			t.Errorf("%s connection after stall: %q, %v; want the held ping", name, got, err)
		}
	}
}

func TestCorrupt(t *testing.T) {
	t.Log("corrupt flips bytes toward the client only, at about its rate, at offsets fixed by the seed")
	const size, rate, seed = 1 << 20, 1.0 / 4096, 7
	data := random(size)
	flips := func() []int {
		p := newProxy(t)
		p.SetMode(faultproxy.Corrupt(rate, seed))
		got, err := roundTrip(t, dial(t, p), data)
		if err != nil {
			t.Fatal(err)
		}
		var at []int
		for i := range got {
			if got[i] != data[i] {
				at = append(at, i)
			}
		}
		// The echo server got the bytes intact (else they would differ in
		// more places than the proxy says it flipped).
		if st := p.Stats(); st.Flipped != int64(len(at)) {
			t.Errorf("proxy flipped %d bytes, client saw %d differ", st.Flipped, len(at))
		}
		return at
	}
	first, second := flips(), flips()
	if want := size * rate; float64(len(first)) < want/2 || float64(len(first)) > want*2 {
		t.Errorf("%d bytes flipped of %d, want about %v", len(first), size, want)
	}
	if !equalInts(first, second) {
		t.Errorf("same seed, different flips: %d vs %d positions", len(first), len(second))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestThrottle(t *testing.T) {
	t.Log("throttle holds each direction to its rate: an echo cannot come back faster")
	const size, rate = 64 << 10, 256 << 10 // a quarter of a second each way
	p := newProxy(t)
	p.SetMode(faultproxy.Throttle(rate))
	data := random(size)
	start := time.Now()
	got, err := roundTrip(t, dial(t, p), data)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo: err %v, equal %v", err, bytes.Equal(got, data))
	}
	// Only a lower bound: a slow machine may take longer, never less.
	if min := time.Duration(size) * time.Second / rate; time.Since(start) < min*9/10 {
		t.Errorf("%d bytes at %d B/s took %v, want at least %v", size, rate, time.Since(start), min)
	}
}

func TestLatency(t *testing.T) {
	t.Log("latency delays each direction, so a round trip takes at least twice the delay")
	const delay = 100 * time.Millisecond
	p := newProxy(t)
	p.SetMode(faultproxy.Latency(delay))
	c := dial(t, p)
	start := time.Now()
	if got, err := roundTrip(t, c, []byte("x")); err != nil || string(got) != "x" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	if took := time.Since(start); took < 2*delay {
		t.Errorf("round trip took %v, want at least %v", took, 2*delay)
	}
}

func TestFlap(t *testing.T) {
	t.Log("flap drops the link after its byte budget, resets the next connection, then passes again")
	const budget = 64 << 10
	p := newProxy(t)
	p.SetMode(faultproxy.Flap(budget))
	c := dial(t, p)
	if got, err := roundTrip(t, c, random(budget/2)); err != nil || len(got) != budget/2 {
		t.Fatalf("within the budget: %d bytes, %v", len(got), err)
	}
	if _, err := roundTrip(t, c, random(budget)); err == nil || isTimeout(err) {
		t.Fatalf("past the budget: %v, want the connection cut", err)
	}
	if err := dialAndRead(p); err == nil || isTimeout(err) {
		t.Errorf("first connection after the drop: %v, want a reset", err)
	}
	if got, err := roundTrip(t, dial(t, p), []byte("up")); err != nil || string(got) != "up" {
		t.Errorf("second connection after the drop: %q, %v; want it to pass", got, err)
	}
	if st := p.Stats(); st.Cut != 1 || st.Reset != 1 {
		t.Errorf("stats %+v, want 1 cut and 1 reset", st)
	}
}

func TestClose(t *testing.T) {
	t.Log("close cuts open connections and stops listening")
	p := newProxy(t)
	c := dial(t, p)
	if _, err := roundTrip(t, c, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(patience))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("read after Close: %v, want the connection gone", err)
	}
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		c2.Close()
		t.Errorf("dial after Close succeeded")
	}
}

func TestAfter(t *testing.T) {
	t.Log("a delayed fault lets its byte budget through, then applies to the connections already open")
	const budget = 10 << 10
	tests := []struct {
		name string
		mode faultproxy.Mode
		// check looks at the connection after the budget was used.
		check func(t *testing.T, c *net.TCPConn)
	}{
		{name: "stall", mode: faultproxy.Stall().After(budget), check: func(t *testing.T, c *net.TCPConn) {
			if _, err := c.Write([]byte("late")); err != nil {
				t.Fatal(err)
			}
			// A negative check needs a window; nothing may come back in it.
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, err := c.Read(make([]byte, 4)); !isTimeout(err) {
				t.Errorf("after the budget: read %d bytes, %v; want nothing", n, err)
			}
		}},
		{name: "down", mode: faultproxy.Down().After(budget), check: func(t *testing.T, c *net.TCPConn) {
			_ = c.SetReadDeadline(time.Now().Add(patience))
			if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
				t.Errorf("after the budget: %v, want the connection cut", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t)
			p.SetMode(tc.mode)
			c := dial(t, p)
			data := random(budget)
			if got, err := roundTrip(t, c, data); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("within the budget: %d bytes, %v", len(got), err)
			}
			tc.check(t, c)
			if got := p.Mode().String(); got != tc.name+" after 10240B" {
				t.Errorf("Mode().String() = %q", got)
			}
		})
	}
}
