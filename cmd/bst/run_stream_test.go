package main

import (
	"bytes"
	"context"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/store"
)

func TestCopyStreamRest(t *testing.T) {
	// After the log streams relayed part of the output, bst prints only the
	// rest from the result; for a cache hit (nothing relayed) all of it.
	cas := store.NewMemory()
	blob := putBlob(t, cas, []byte("0123456789"))
	tests := []struct {
		name string
		raw  []byte
		d    *repb.Digest
		from int64
		want string
	}{
		{"cache hit prints the blob", nil, blob.Proto(), 0, "0123456789"},
		{"truncated stream prints the rest of the blob", nil, blob.Proto(), 4, "456789"},
		{"complete stream prints nothing", nil, blob.Proto(), 10, ""},
		{"inline output from an offset", []byte("abcdef"), blob.Proto(), 2, "cdef"},
		{"inline output fully relayed", []byte("abcdef"), blob.Proto(), 6, ""},
		{"empty output", nil, &repb.Digest{Hash: blob.Hash, SizeBytes: 0}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := copyStream(context.Background(), cas, &out, tc.raw, tc.d, tc.from); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("printed %q, want %q", out.String(), tc.want)
			}
		})
	}
}
