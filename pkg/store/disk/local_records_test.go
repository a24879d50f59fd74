package disk_test

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store/disk"
)

func TestRecords(t *testing.T) {
	dir := t.TempDir()
	l, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q, other := l.Records("queue"), l.Records("queu")
	for i := 3; i >= 1; i-- {
		if err := q.Put([]byte{byte(i)}, []byte(fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
	}
	// A namespace that is a prefix of another must not see its keys.
	if err := other.Put([]byte("x"), []byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get([]byte("x")); status.Code(err) != codes.NotFound {
		t.Fatalf("Get across namespaces = %v, want NOT_FOUND", err)
	}
	if err := q.Delete([]byte{2}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Records survive a reopen and scan in key order.
	l, err = disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var keys, vals [][]byte
	err = l.Records("queue").Scan(func(k, v []byte) error {
		keys = append(keys, bytes.Clone(k))
		vals = append(vals, bytes.Clone(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0][0] != 1 || keys[1][0] != 3 || string(vals[1]) != "v3" {
		t.Fatalf("scan = %q / %q, want keys 1,3", keys, vals)
	}
	if v, err := l.Records("queu").Get([]byte("x")); err != nil || string(v) != "y" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}
