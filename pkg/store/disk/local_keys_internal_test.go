package disk

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/dgraph-io/badger/v4"

	"github.com/castd/castd/pkg/digest"
)

// badgerKeys lists the keys under prefix in l's index.
func badgerKeys(t *testing.T, l *Store, prefix byte) [][]byte {
	t.Helper()
	var keys [][]byte
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestSHA256OnDiskFormatPinned(t *testing.T) {
	// Why: stores written before castd knew other digest functions must
	// open unchanged, so a SHA-256 blob keeps its badger keys ('m'/'c' +
	// 32 raw hash bytes + 8 big-endian size bytes, 41 bytes), its file name
	// dir/cas/<2 hex>/<hash>-<size> and its action-cache key. The expected
	// bytes are spelled out: any format change fails here.
	ctx := context.Background()
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	large := bytes.Repeat([]byte("castd"), 20_000) // 100000 bytes: a file
	d := digest.OfBytes(large)
	if err := l.Put(ctx, d, bytes.NewReader(large)); err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(d.Hash)
	sizeBE := []byte{0, 0, 0, 0, 0, 0x01, 0x86, 0xa0} // 100000
	want := func(prefix byte) []byte { return append(append([]byte{prefix}, raw...), sizeBE...) }
	for _, p := range []byte{'m', 'c'} {
		if got := badgerKeys(t, l, p); len(got) != 1 || !bytes.Equal(got[0], want(p)) {
			t.Errorf("badger keys under %q = %x, want [%x] (41 bytes)", p, got, want(p))
		}
	}
	path := filepath.Join(dir, "cas", d.Hash[:2], d.Hash+"-100000")
	if fi, err := os.Stat(path); err != nil || fi.Size() != 100000 {
		t.Errorf("blob file %s: %v", path, err)
	}
	if err := l.ActionCache("inst").UpdateActionResult(ctx, d, &repb.ActionResult{ExitCode: 1}); err != nil {
		t.Fatal(err)
	}
	wantAC := append(append([]byte{'a', 4, 'i', 'n', 's', 't'}, raw...), sizeBE...)
	if got := badgerKeys(t, l, 'a'); len(got) != 1 || !bytes.Equal(got[0], wantAC) {
		t.Errorf("action cache keys = %x, want [%x]", got, wantAC)
	}
}

func TestKeysOfEveryFunction(t *testing.T) {
	// Why: the index key must be exact for every function (digest() gives
	// back the digest, even for 64-byte SHA-512 hashes), badger keys and
	// file paths of different functions must never collide, and the
	// SHA-256 map key must stay 40 bytes.
	if n := unsafe.Sizeof(narrowKey{}); n != 40 {
		t.Errorf("narrowKey is %d bytes, want 40", n)
	}
	l := &Store{casDir: "/s/cas"}
	seen := map[string]digest.Digest{}
	paths := map[string]digest.Digest{}
	for _, f := range digest.Functions {
		for _, hexByte := range []string{"00", "ab", "ff"} {
			h := ""
			for range f.HashBytes() {
				h += hexByte
			}
			d, err := digest.NewIn(f, h, 12345)
			if err != nil {
				t.Fatal(err)
			}
			k, ok := keyOf(d)
			if !ok {
				t.Fatalf("keyOf(%v) failed", d)
			}
			if k.digest() != d {
				t.Errorf("keyOf(%v).digest() = %v", d, k.digest())
			}
			db := k.dbKey('m')
			if back, ok := keyFromDB(db); !ok || back != k {
				t.Errorf("keyFromDB(dbKey(%v)) = %v, %v", d, back.digest(), ok)
			}
			if other, dup := seen[string(db)]; dup {
				t.Errorf("%v and %v share the badger key %x", d, other, db)
			}
			seen[string(db)] = d
			p := l.blobPath(k)
			if other, dup := paths[p]; dup {
				t.Errorf("%v and %v share the file %s", d, other, p)
			}
			paths[p] = d
			if fk, ok := parseFileName(f, filepath.Base(p)); !ok || fk != k {
				t.Errorf("parseFileName(%s) = %v, %v", p, fk.digest(), ok)
			}
			if f != digest.SHA256 && !slices.Contains([]string{"sha1", "md5", "sha384", "sha512", "blake3"}, filepath.Base(filepath.Dir(filepath.Dir(p)))) {
				t.Errorf("%v lives at %s, outside a directory of its function", d, p)
			}
		}
	}
	// Two SHA-512 digests that differ only in the last byte of the hash.
	a, _ := digest.NewIn(digest.SHA512, string(bytes.Repeat([]byte("a"), 128)), 1)
	b, _ := digest.NewIn(digest.SHA512, string(bytes.Repeat([]byte("a"), 127))+"b", 1)
	ka, _ := keyOf(a)
	kb, _ := keyOf(b)
	if ka == kb {
		t.Error("SHA-512 keys differing in the hash's tail are equal")
	}
	if big, _ := digest.NewIn(digest.SHA256, a.Hash[:64], maxKeySize+1); func() bool { _, ok := keyOf(big); return ok }() {
		t.Error("keyOf accepts a size that does not fit the narrow key")
	}
}
