package grpcservers_test

import (
	"slices"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/grpcservers"
)

func TestFindMissingBlobs(t *testing.T) {
	e := newEnv(t, grpcservers.Options{})
	present := e.put(t, []byte("present"))
	absent := digest.OfBytes([]byte("absent"))
	tests := []struct {
		name    string
		why     string
		digests []*repb.Digest
		code    codes.Code
		substr  string
		missing []digest.Digest
	}{
		{name: "valid digests", why: "only the absent blob is reported",
			digests: []*repb.Digest{present.Proto(), absent.Proto(), digest.Empty.Proto()}, missing: []digest.Digest{absent}},
		{name: "short hash", why: "a bad digest rejects the whole call, naming its index",
			digests: []*repb.Digest{present.Proto(), {Hash: "abc", SizeBytes: 3}}, code: codes.InvalidArgument, substr: "blob_digests[1]"},
		{name: "upper-case hash", why: "hashes are lower-case hex only",
			digests: []*repb.Digest{{Hash: strings.ToUpper(absent.Hash), SizeBytes: 6}}, code: codes.InvalidArgument, substr: "blob_digests[0]"},
		{name: "negative size", why: "sizes cannot be negative",
			digests: []*repb.Digest{absent.Proto(), {Hash: absent.Hash, SizeBytes: -1}}, code: codes.InvalidArgument, substr: "blob_digests[1]"},
		{name: "nil digest", why: "a missing message is not the empty blob",
			digests: []*repb.Digest{nil}, code: codes.InvalidArgument, substr: "blob_digests[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// why: see tc.why
			resp, err := e.cas.FindMissingBlobs(testutil.Context(t), &repb.FindMissingBlobsRequest{BlobDigests: tc.digests})
			if tc.code != codes.OK {
				wantCode(t, err, tc.code, tc.substr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := digest.NewSet(digestsOf(t, resp.GetMissingBlobDigests())...).Sorted()
			if !slices.Equal(got, digest.NewSet(tc.missing...).Sorted()) {
				t.Fatalf("missing = %v, want %v (%s)", got, tc.missing, tc.why)
			}
		})
	}
}

func digestsOf(t testing.TB, ps []*repb.Digest) []digest.Digest {
	t.Helper()
	var ds []digest.Digest
	for _, p := range ps {
		d, err := digest.FromProto(p)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}

func TestBatchUpdateBlobs(t *testing.T) {
	t.Run("one wrong hash among good blobs", func(t *testing.T) {
		// why: a bad entry fails alone; the rest of the batch is stored.
		e := newEnv(t, grpcservers.Options{})
		good1, good2 := []byte("good one"), []byte("good two")
		bad := digest.OfBytes([]byte("claimed"))
		resp, err := e.cas.BatchUpdateBlobs(testutil.Context(t), &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
			{Digest: digest.OfBytes(good1).Proto(), Data: good1},
			{Digest: bad.Proto(), Data: []byte("actuall")},
			{Digest: digest.OfBytes(good2).Proto(), Data: good2},
		}})
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []codes.Code{codes.OK, codes.InvalidArgument, codes.OK} {
			if got := codes.Code(resp.GetResponses()[i].GetStatus().GetCode()); got != want {
				t.Errorf("responses[%d] = %v %q, want %v", i, got, resp.GetResponses()[i].GetStatus().GetMessage(), want)
			}
		}
		if !e.has(t, digest.OfBytes(good1)) || !e.has(t, digest.OfBytes(good2)) || e.has(t, bad) {
			t.Fatal("store holds the wrong set of blobs")
		}
	})
	t.Run("size mismatch and bad digest", func(t *testing.T) {
		// why: malformed entries are rejected per entry, naming the field.
		e := newEnv(t, grpcservers.Options{})
		resp, err := e.cas.BatchUpdateBlobs(testutil.Context(t), &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
			{Digest: &repb.Digest{Hash: "zz", SizeBytes: 1}, Data: []byte("x")},
			{Digest: digest.OfBytes([]byte("abc")).Proto(), Data: []byte("ab")},
		}})
		if err != nil {
			t.Fatal(err)
		}
		for i, field := range []string{"requests[0].digest", "requests[1].data"} {
			st := resp.GetResponses()[i].GetStatus()
			if codes.Code(st.GetCode()) != codes.InvalidArgument || !strings.Contains(st.GetMessage(), field) {
				t.Errorf("responses[%d] = %v, want INVALID_ARGUMENT naming %s", i, st, field)
			}
		}
	})
	t.Run("over the batch limit", func(t *testing.T) {
		// why: clients must switch to ByteStream; the code must not be one Bazel retries.
		e := newEnv(t, grpcservers.Options{MaxBatchTotalSizeBytes: 1000})
		a, b := pattern(600, 1), pattern(600, 2)
		_, err := e.cas.BatchUpdateBlobs(testutil.Context(t), &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
			{Digest: digest.OfBytes(a).Proto(), Data: a}, {Digest: digest.OfBytes(b).Proto(), Data: b},
		}})
		wantCode(t, err, codes.InvalidArgument, "max_batch_total_size_bytes")
		if e.has(t, digest.OfBytes(a)) {
			t.Fatal("a blob of a rejected batch was stored")
		}
	})
}

func TestBatchReadBlobs(t *testing.T) {
	e := newEnv(t, grpcservers.Options{MaxBatchTotalSizeBytes: 1000})
	present := e.put(t, []byte("here"))
	absent := digest.OfBytes([]byte("not here"))
	t.Run("present and missing", func(t *testing.T) {
		// why: each blob gets its own status; a miss is NOT_FOUND for that entry only.
		resp, err := e.cas.BatchReadBlobs(testutil.Context(t), &repb.BatchReadBlobsRequest{Digests: []*repb.Digest{present.Proto(), absent.Proto(), digest.Empty.Proto()}})
		if err != nil {
			t.Fatal(err)
		}
		r := resp.GetResponses()
		if len(r) != 3 || string(r[0].GetData()) != "here" || r[0].GetStatus().GetCode() != 0 ||
			codes.Code(r[1].GetStatus().GetCode()) != codes.NotFound || r[2].GetStatus().GetCode() != 0 {
			t.Fatalf("responses = %v", r)
		}
	})
	t.Run("over the batch limit", func(t *testing.T) {
		// why: the declared sizes decide before anything is read.
		big := digest.OfBytes(pattern(1001, 3))
		_, err := e.cas.BatchReadBlobs(testutil.Context(t), &repb.BatchReadBlobsRequest{Digests: []*repb.Digest{big.Proto()}})
		wantCode(t, err, codes.InvalidArgument, "max_batch_total_size_bytes")
	})
	t.Run("malformed digest", func(t *testing.T) {
		// why: a client bug is reported with the index of the bad digest.
		_, err := e.cas.BatchReadBlobs(testutil.Context(t), &repb.BatchReadBlobsRequest{Digests: []*repb.Digest{present.Proto(), {Hash: present.Hash[:10], SizeBytes: 4}}})
		wantCode(t, err, codes.InvalidArgument, "digests[1]")
	})
}
