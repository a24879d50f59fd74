package fanout_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

// notTaking is a tier that takes no digest of a function other than
// SHA-256, as a store that is not an upstream client might say so: every
// call about one fails with *store.UnsupportedFunctionError
// (FAILED_PRECONDITION). It counts the calls it got about such digests.
type notTaking struct {
	store.CAS
	refused int
}

func (n *notTaking) refuse(d digest.Digest) error {
	if d.Func == digest.SHA256 {
		return nil
	}
	n.refused++
	return &store.UnsupportedFunctionError{Func: d.Func, Store: "r-sha256"}
}

func (n *notTaking) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	for _, d := range ds {
		if err := n.refuse(d); err != nil {
			return nil, err
		}
	}
	return n.CAS.FindMissing(ctx, ds)
}

func (n *notTaking) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return n.GetWith(ctx, d, offset, store.GetHint{})
}

func (n *notTaking) GetWith(ctx context.Context, d digest.Digest, offset int64, h store.GetHint) (io.ReadCloser, error) {
	if err := n.refuse(d); err != nil {
		return nil, err
	}
	return n.CAS.GetWith(ctx, d, offset, h)
}

func (n *notTaking) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	return store.GetEach(ctx, n, ds)
}

// blake3Memory returns a memory store holding s under its BLAKE3 digest.
func blake3Memory(t *testing.T, s string) (*store.Memory, digest.Digest) {
	t.Helper()
	m := store.NewMemory()
	d := digest.OfBytesIn(digest.BLAKE3, []byte(s))
	if err := m.Put(context.Background(), d, bytes.NewReader([]byte(s))); err != nil {
		t.Fatal(err)
	}
	return m, d
}

func TestTierThatDoesNotTakeTheFunctionIsSkipped(t *testing.T) {
	ctx := context.Background()
	const content = "a blob under BLAKE3"
	newCAS := func(t *testing.T, log *lockedBuffer, tiers ...store.CAS) (store.CAS, *store.Memory, *prometheus.Registry) {
		local, reg := store.NewMemory(), prometheus.NewRegistry()
		var ts []fanout.Tier
		for i, c := range tiers {
			ts = append(ts, fanout.Tier{Name: "r" + string(rune('1'+i)), CAS: c})
		}
		opts := fanout.Options{Registerer: reg, Logger: slog.New(slog.NewTextHandler(log, nil))}
		return fanout.NewCAS(local, ts, opts), local, reg
	}

	t.Run("read from the next tier", func(t *testing.T) {
		t.Log("a tier that does not take BLAKE3 is passed over; the next one serves, and the blob is stored locally under BLAKE3")
		theirs, d := blake3Memory(t, content)
		first := &notTaking{CAS: theirs}
		for _, read := range []struct {
			name string
			get  func(store.CAS) (string, error)
		}{
			{"Get", func(c store.CAS) (string, error) { return readAll(ctx, c, d, 0) }},
			{"GetMany", func(c store.CAS) (string, error) {
				r := c.GetMany(ctx, []digest.Digest{d})[0]
				return string(r.Data), r.Err
			}},
		} {
			log := &lockedBuffer{}
			c, local, _ := newCAS(t, log, first, theirs)
			if got, err := read.get(c); err != nil || got != content {
				t.Fatalf("%s = %q, %v; want the second tier's copy", read.name, got, err)
			}
			if !has(t, local, d) || has(t, local, digest.OfBytes([]byte(content))) {
				t.Errorf("%s: local does not hold the blob under BLAKE3 alone", read.name)
			}
		}
	})
	t.Run("no tier takes it", func(t *testing.T) {
		t.Log("a read no tier takes the function of is a miss, NOT_FOUND, not a failure of the remotes")
		theirs, d := blake3Memory(t, content)
		log := &lockedBuffer{}
		c, _, _ := newCAS(t, log, &notTaking{CAS: theirs})
		if _, err := readAll(ctx, c, d, 0); status.Code(err) != codes.NotFound {
			t.Errorf("Get = %v; want NOT_FOUND", err)
		}
		if r := c.GetMany(ctx, []digest.Digest{d})[0]; status.Code(r.Err) != codes.NotFound {
			t.Errorf("GetMany = %v; want NOT_FOUND", r.Err)
		}
		missing, err := c.FindMissing(ctx, []digest.Digest{d})
		if err != nil || len(missing) != 1 {
			t.Errorf("FindMissing = %v, %v; want it missing", missing, err)
		}
		if n := log.count("level=WARN"); n != 0 {
			t.Errorf("%d warnings; a tier that does not take a function is not failing:\n%s", n, log.buf.String())
		}
	})
}

// notTakingAC is an action cache that takes no BLAKE3 action digest.
type notTakingAC struct{ store.ActionCache }

func (n notTakingAC) GetActionResult(ctx context.Context, action digest.Digest) (*repb.ActionResult, error) {
	if action.Func != digest.SHA256 {
		return nil, &store.UnsupportedFunctionError{Func: action.Func, Store: "ac-sha256"}
	}
	return n.ActionCache.GetActionResult(ctx, action)
}

func TestActionCacheTierThatDoesNotTakeTheFunctionIsAMiss(t *testing.T) {
	t.Log("an action-cache tier that does not take the action digest's function is a miss, not a failure")
	mem := store.NewMemory()
	action := digest.OfBytesIn(digest.BLAKE3, []byte("action"))
	ac := fanout.NewActionCache(store.NewMemory(), []fanout.ACTier{{Name: "r1", AC: notTakingAC{mem}}}, mem, fanout.ACOptions{})
	if _, err := ac.GetActionResult(context.Background(), action); status.Code(err) != codes.NotFound {
		t.Errorf("GetActionResult = %v; want NOT_FOUND", err)
	}
}

func TestUnstoredReadsVerifyWithTheDigestFunction(t *testing.T) {
	t.Log("a BLAKE3 blob the full local store refuses is served unstored, hashed by the fan-out with BLAKE3")
	local := fullLocal(t)
	ctx := context.Background()
	theirs, d := blake3Memory(t, "a BLAKE3 blob read while the disk is full")
	c := fanout.NewCAS(local, []fanout.Tier{{Name: "r1", CAS: &batchCAS{CAS: theirs}}}, fanout.Options{})
	if r := c.GetMany(ctx, []digest.Digest{d})[0]; r.Err != nil || string(r.Data) != "a BLAKE3 blob read while the disk is full" {
		t.Errorf("GetMany = %q, %v; want the blob", r.Data, r.Err)
	}
	if got, err := readAll(ctx, c, d, 0); err != nil || got != "a BLAKE3 blob read while the disk is full" {
		t.Errorf("Get = %q, %v; want the blob", got, err)
	}
}
