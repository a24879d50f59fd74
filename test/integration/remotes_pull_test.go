package integration_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// casCalls counts the REAPI CAS and ByteStream calls an upstream received
// over TCP, and how many of them carried an authorization header.
func casCalls(u *upstream) (calls, authorized int) {
	for _, line := range append(u.requestLines("ContentAddressableStorage"), u.requestLines("ByteStream")...) {
		calls++
		if strings.Contains(line, "authorization=true") {
			authorized++
		}
	}
	return calls, authorized
}

func TestRemotesPullOrder(t *testing.T) {
	tok, mtls := startTokenUpstream(t), startMTLSUpstream(t)
	l := newLayout(t)
	_, conn, _ := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n  - %s\n",
		tok.serverYAML("storage", false), mtls.serverYAML("storage", false)))
	ctx := ctxFor(t, time.Minute)

	t.Run("second remote hit", func(t *testing.T) {
		// Why: a blob only the second remote holds is found, after the
		// first remote was asked (with its token).
		b := randomBlob(3000)
		if err := batchUpdate(ctx, mtls.conn(t), b); err != nil {
			t.Fatal(err)
		}
		before, _ := casCalls(tok)
		got, err := instanceRead(ctx, conn, "", b.d)
		if err != nil || !bytes.Equal(got, b.data) {
			t.Fatalf("read through castd: %d bytes, %v", len(got), err)
		}
		if after, _ := casCalls(tok); after <= before {
			t.Errorf("the first remote was not asked before the second served (calls %d → %d)", before, after)
		}
	})
	t.Run("first remote hit", func(t *testing.T) {
		// Why: what the first remote has is served without asking the second.
		b := randomBlob(2000)
		if err := batchUpdate(ctx, tok.conn(t), b); err != nil {
			t.Fatal(err)
		}
		before, _ := casCalls(mtls.upstream)
		got, err := instanceRead(ctx, conn, "", b.d)
		if err != nil || !bytes.Equal(got, b.data) {
			t.Fatalf("read through castd: %d bytes, %v", len(got), err)
		}
		if after, _ := casCalls(mtls.upstream); after != before {
			t.Errorf("the second remote was asked for a first-remote hit (calls %d → %d)", before, after)
		}
	})
	t.Run("token only to its remote", func(t *testing.T) {
		// Why: credentials configured for one remote never reach another.
		calls, authorized := casCalls(mtls.upstream)
		if calls == 0 || authorized != 0 {
			t.Errorf("mTLS upstream: %d calls, %d with authorization; want some calls and none authorized", calls, authorized)
		}
		calls, authorized = casCalls(tok)
		if calls == 0 || authorized != calls {
			t.Errorf("token upstream: %d calls, %d with authorization; want all authorized", calls, authorized)
		}
	})
}

// stallingListener accepts TCP connections and never answers on them.
func stallingListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestRemotesSkipBrokenRemotes(t *testing.T) {
	stall := stallingListener(t)
	dead, bad, good := startPlainUpstream(t), startPlainUpstream(t), startPlainUpstream(t)
	l := newLayout(t)
	fast := "connection-config: {retry-limit: 1, retry-delay: 10, request-timeout: 1}"
	_, conn, _ := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - {url: grpc://%s, type: storage, push: false, %s}\n  - %s\n  - %s\n  - %s\n",
		stall, fast, dead.serverYAML("storage", false), bad.serverYAML("storage", false), good.serverYAML("storage", false)))
	ctx := ctxFor(t, 2*time.Minute)
	dead.kill9()

	// A blob above the inline threshold is a file in the upstream's store,
	// which the test can corrupt on disk.
	b := randomBlob(64 << 10)
	for _, u := range []*upstream{bad, good} {
		if err := batchUpdate(ctx, u.conn(t), b); err != nil {
			t.Fatal(err)
		}
	}
	corruptFile(t, blobFile(bad.l.store, b.d))

	tests := []struct{ name, why string }{
		{name: "stalled, killed and corrupt remotes skipped", why: "a remote that never answers, one that died and one serving bad bytes are skipped; the next serves"},
		{name: "served locally afterwards", why: "the verified copy is kept, so a second read needs no remote"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Why: see tc.why.
			got, err := instanceRead(ctx, conn, "", b.d)
			if err != nil || !bytes.Equal(got, b.data) {
				t.Fatalf("read through castd: %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestRemotesLargeColdRead(t *testing.T) {
	up := startPlainUpstream(t)
	l := newLayout(t)
	_, conn, _ := startWorkstation(t, l, fmt.Sprintf("artifacts:\n  servers:\n  - %s\n", up.serverYAML("storage", false)))
	ctx := ctxFor(t, 2*time.Minute)
	// 8 MiB and more is written around the page cache; an odd size makes
	// the last block a padded one.
	b := randomBlob(8<<20 + 4097)
	if err := bytestreamWrite(ctx, up.conn(t), b); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, why string
		before    func(t *testing.T)
	}{
		{name: "streamed from the upstream", why: "a cold large read arrives whole and exact through castd"},
		{name: "kept exactly", why: "the stored copy has the blob's size (padding cut off) and serves with the upstream gone",
			before: func(t *testing.T) {
				if fi, err := os.Stat(blobFile(l.store, b.d)); err != nil || fi.Size() != b.d.GetSizeBytes() {
					t.Fatalf("stored file: %v, %v; want %d bytes", fi, err, b.d.GetSizeBytes())
				}
				up.kill9()
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			if tc.before != nil {
				tc.before(t)
			}
			got, err := readBlob(ctx, conn, b.d)
			if err != nil || !bytes.Equal(got, b.data) {
				t.Fatalf("ByteStream read through castd: %d bytes, %v; want the %d uploaded", len(got), err, len(b.data))
			}
		})
	}
}
