package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"
)

// compressibleText is n bytes of build-log-like text, different for each
// seed.
func compressibleText(seed, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "INFO: [%d] compiling //pkg/%d:target_%d with -O2 -Wall\n", seed, i%97, i)
	}
	return b.Bytes()[:n]
}

func TestRemotesCompressionReachesEveryRemoteClient(t *testing.T) {
	for _, tc := range []struct {
		setting string
		why     string
		zstd    bool // transfers to the remote go compressed
	}{
		{"", "unset is auto: the upstream castd advertises ZSTD, so pushes and reads are compressed", true},
		{"auto", "auto: zstd to a remote that advertises it", true},
		{"off", "cache.remotes.compression: off makes pushes and reads identity although the remote advertises ZSTD", false},
	} {
		t.Run("compression="+tc.setting, func(t *testing.T) {
			t.Log(tc.why)
			up := newUpstream(t)
			conf := fmt.Sprintf("artifacts:\n  servers:\n  - {url: %s, type: all, push: true}\n", up.url)
			if tc.setting != "" {
				conf = "cache:\n  remotes:\n    compression: " + tc.setting + "\n" + conf
			}
			set, _ := newSet(t, t.TempDir(), conf)
			cas, err := set.CAS(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// Pushed: a large blob (ByteStream) and a small one (batch).
			pushed := [][]byte{compressibleText(1, 3<<20), compressibleText(2, 20000)}
			for _, b := range pushed {
				if err := cas.Put(ctx, digest.OfBytes(b), bytes.NewReader(b)); err != nil {
					t.Fatal(err)
				}
			}
			testutil.Eventually(t, "an empty queue", func() bool { return set.Queue().Depth == 0 })
			// Read from the remote: the same, a ByteStream read and a batch read.
			large, small := compressibleText(3, 3<<20), compressibleText(4, 20000)
			for _, b := range [][]byte{large, small} {
				if err := up.mem.Put(ctx, digest.OfBytes(b), bytes.NewReader(b)); err != nil {
					t.Fatal(err)
				}
			}
			rc, err := cas.Get(ctx, digest.OfBytes(large), 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, large) {
				t.Fatalf("read %d bytes, %v; want the blob", len(got), err)
			}
			if r := cas.GetMany(ctx, []digest.Digest{digest.OfBytes(small)})[0]; r.Err != nil || !bytes.Equal(r.Data, small) {
				t.Fatalf("GetMany: %v", r.Err)
			}

			for _, b := range pushed {
				if !up.has(digest.OfBytes(b)) {
					t.Fatalf("the remote lacks the pushed %d-byte blob", len(b))
				}
			}
			payload := float64(len(pushed[0]) + len(pushed[1]))
			received := testutil.CounterSum(t, up.reg, "castd_bytes_received_total", nil)
			sent := testutil.CounterSum(t, up.reg, "castd_bytes_sent_total", nil)
			t.Logf("the remote received %.0f bytes for %.0f pushed, sent %.0f for %d read", received, payload, sent, len(large)+len(small))
			if tc.zstd {
				if received >= payload/4 || sent >= float64(len(large)+len(small))/4 {
					t.Fatalf("received %.0f bytes for %.0f pushed, sent %.0f for %d read; want zstd, a fraction", received, payload, sent, len(large)+len(small))
				}
				return
			}
			if received != payload || sent != float64(len(large)+len(small)) {
				t.Fatalf("received %.0f bytes for %.0f pushed, sent %.0f for %d read; want identity, every byte", received, payload, sent, len(large)+len(small))
			}
		})
	}
}
