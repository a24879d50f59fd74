package disk_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"

	"github.com/castd/castd/pkg/store/disk"
)

// blobIn is blob under digest function f.
func blobIn(f digest.Function, n int, seed uint64) ([]byte, digest.Digest) {
	b, _ := blob(n, seed)
	return b, digest.OfBytesIn(f, b)
}

// twin is d under function f: the same hex and size, another function.
func twin(d digest.Digest, f digest.Function) digest.Digest {
	d.Func = f
	return d
}

// sizeClasses are a packed blob, a one-chunk file and a file of several
// chunks.
var sizeClasses = []int{100, 100 << 10, 2<<20 + 3}

func TestLocalStoresEveryFunction(t *testing.T) {
	// Why: a client may use any function castd advertises; the store takes
	// blobs of each by every write path (Put, PutBytes, an Upload), verifies
	// them with their own function and serves them by every read path.
	ctx := context.Background()
	l := openStore(t, t.TempDir(), disk.Options{})
	seed := uint64(0)
	for _, f := range digest.Functions {
		for _, size := range sizeClasses {
			for _, how := range []string{"Put", "PutBytes", "Upload"} {
				seed++
				b, d := blobIn(f, size, seed)
				var err error
				switch how {
				case "Put":
					err = l.Put(ctx, d, bytes.NewReader(b))
				case "PutBytes":
					err = l.PutBytes(ctx, d, b, store.PutHint{})
				case "Upload":
					var u *disk.Upload
					if u, err = l.NewUpload(d); err == nil {
						writeUpload(t, u, b, 64<<10)
						err = u.Commit(ctx)
					}
				}
				if err != nil {
					t.Fatalf("%s %s of %d bytes: %v", how, f, size, err)
				}
				if got, err := read(l, d, 7); err != nil || !bytes.Equal(got, b[7:]) {
					t.Errorf("Get %s at offset 7: %d bytes, %v", d, len(got), err)
				}
				res := l.GetMany(ctx, []digest.Digest{d})
				if res[0].Err != nil || !bytes.Equal(res[0].Data, b) {
					t.Errorf("GetMany %s: %d bytes, %v", d, len(res[0].Data), res[0].Err)
				}
				if !present(t, l, d) {
					t.Errorf("%s reported missing", d)
				}
			}
		}
		// The empty blob of every function is always there.
		e := digest.EmptyIn(f)
		if !present(t, l, e) {
			t.Errorf("empty %s blob reported missing", f)
		}
		if got, err := read(l, e, 0); err != nil || len(got) != 0 {
			t.Errorf("Get empty %s blob: %q, %v", f, got, err)
		}
		if err := l.Put(ctx, e, bytes.NewReader(nil)); err != nil {
			t.Errorf("Put empty %s blob: %v", f, err)
		}
	}
}

func TestLocalVerifiesWithTheDigestsFunction(t *testing.T) {
	// Why: bytes whose SHA-256 is a BLAKE3 digest's hex are not that BLAKE3
	// blob; every write path must hash with the digest's own function.
	ctx := context.Background()
	l := openStore(t, t.TempDir(), disk.Options{})
	for i, size := range sizeClasses {
		b, d256 := blob(size, uint64(50+i))
		wrong := twin(d256, digest.BLAKE3)
		if err := l.Put(ctx, wrong, bytes.NewReader(b)); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Put of %d bytes under the BLAKE3 twin of their SHA-256 = %v, want INVALID_ARGUMENT", size, err)
		}
		if err := l.PutBytes(ctx, wrong, b, store.PutHint{}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("PutBytes of %d bytes under the BLAKE3 twin = %v, want INVALID_ARGUMENT", size, err)
		}
		u, err := l.NewUpload(wrong)
		if err != nil {
			t.Fatal(err)
		}
		writeUpload(t, u, b, 64<<10)
		if err := u.Commit(ctx); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Upload of %d bytes under the BLAKE3 twin = %v, want INVALID_ARGUMENT", size, err)
		}
		if present(t, l, wrong) || present(t, l, d256) {
			t.Errorf("a refused blob of %d bytes is reported present", size)
		}
	}
	// A non-empty blob under the empty digest of another function.
	if err := l.Put(ctx, digest.EmptyIn(digest.SHA512), bytes.NewReader([]byte("x"))); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Put of data under the empty SHA-512 digest = %v, want INVALID_ARGUMENT", err)
	}
}

func TestLocalSameHexDifferentFunctionsNeverMeet(t *testing.T) {
	// Why: a SHA-256 blob and a BLAKE3 blob whose digests share hex and
	// size (and two SHA-512 blobs whose hashes differ only in their last
	// byte) are different blobs: each is stored, found, read, held, scrubbed
	// and kept across a restart on its own.
	ctx := context.Background()
	dir := t.TempDir()
	l, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type pair struct {
		a, b   []byte
		da, db digest.Digest
	}
	var pairs []pair
	for i, size := range sizeClasses {
		a, da := blob(size, uint64(70+i))
		bb, _ := blob(size, uint64(80+i))
		pairs = append(pairs, pair{a, bb, da, twin(da, digest.BLAKE3)})
		// SHA-512: the twin's hash differs in the last hex digit only.
		a5, d5 := blobIn(digest.SHA512, size, uint64(90+i))
		b5, _ := blob(size, uint64(95+i))
		t5 := d5
		last := t5.Hash[len(t5.Hash)-1]
		t5.Hash = t5.Hash[:len(t5.Hash)-1] + map[bool]string{true: "0", false: "1"}[last != '0']
		pairs = append(pairs, pair{a5, b5, d5, t5})
	}
	for _, p := range pairs {
		if err := l.Put(ctx, p.da, bytes.NewReader(p.a)); err != nil {
			t.Fatal(err)
		}
		if present(t, l, p.db) {
			t.Errorf("%s is reported present when only %s is stored", p.db, p.da)
		}
		if _, err := read(l, p.db, 0); status.Code(err) != codes.NotFound {
			t.Errorf("Get %s (only %s stored) = %v, want NOT_FOUND", p.db, p.da, err)
		}
		if err := disk.PutUnverifiedForTest(l, p.db, p.b); err != nil {
			t.Fatalf("store the twin %s: %v", p.db, err)
		}
	}
	check := func(l *disk.Store, when string) {
		t.Helper()
		for _, p := range pairs {
			for _, c := range []struct {
				d    digest.Digest
				want []byte
			}{{p.da, p.a}, {p.db, p.b}} {
				if got, err := read(l, c.d, 0); err != nil || !bytes.Equal(got, c.want) {
					t.Errorf("%s: Get %s: %d bytes, %v (want its own %d bytes)", when, c.d, len(got), err, len(c.want))
				}
				if res := l.GetMany(ctx, []digest.Digest{c.d}); res[0].Err != nil || !bytes.Equal(res[0].Data, c.want) {
					t.Errorf("%s: GetMany %s: %v", when, c.d, res[0].Err)
				}
			}
			if m, err := l.FindMissing(ctx, []digest.Digest{p.da, p.db}); err != nil || len(m) != 0 {
				t.Errorf("%s: FindMissing(%s, %s) = %v, %v", when, p.da, p.db, m, err)
			}
		}
	}
	check(l, "stored")
	if got, want := l.Stats().Objects, int64(len(pairs)*2); got != want {
		t.Errorf("Objects = %d, want %d", got, want)
	}
	// Holds count distinct blobs.
	p := pairs[1]
	l.Hold(p.da)
	l.Hold(p.db)
	if got := l.HeldBytes(); got != 2*p.da.Size {
		t.Errorf("HeldBytes after holding both twins = %d, want %d", got, 2*p.da.Size)
	}
	l.Release(p.da)
	l.Release(p.db)

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openStore(t, dir, disk.Options{})
	check(l, "before ready after reopen")
	waitReady(t, l)
	check(l, "after reopen")

	// The scrub hashes each file with its own function: the twins stored
	// unverified do not hash to their digests and are deleted (and named
	// exactly), their namesakes stay.
	rep, err := l.Scrub(ctx, disk.ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantDeleted := map[digest.Digest]bool{}
	for _, p := range pairs {
		if p.da.Size > 16<<10 {
			wantDeleted[p.db] = true
		}
	}
	if rep.Corrupt != int64(len(wantDeleted)) || len(rep.Deleted) != len(wantDeleted) {
		t.Errorf("scrub found %d corrupt (%v), want %d", rep.Corrupt, rep.Deleted, len(wantDeleted))
	}
	for _, d := range rep.Deleted {
		if !wantDeleted[d] {
			t.Errorf("scrub deleted %s", d)
		}
	}
	for _, p := range pairs {
		if got, err := read(l, p.da, 0); err != nil || !bytes.Equal(got, p.a) {
			t.Errorf("after scrub: Get %s: %v", p.da, err)
		}
	}
}

func TestLocalReopenWithEveryFunction(t *testing.T) {
	// Why: blobs of every function (64-byte SHA-512 hashes, 16-byte MD5
	// ones) survive a restart, and Open's reconciliation handles their
	// files: an orphan file of another function is removed, an entry whose
	// file is gone is dropped, files that are indexed are kept.
	ctx := context.Background()
	dir := t.TempDir()
	l, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type stored struct {
		b []byte
		d digest.Digest
	}
	var all []stored
	seed := uint64(200)
	for _, f := range digest.Functions {
		for _, size := range sizeClasses {
			seed++
			b, d := blobIn(f, size, seed)
			if err := l.Put(ctx, d, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			all = append(all, stored{b, d})
		}
	}
	lost := all[len(all)-4] // a SHA-512 file (BLAKE3 is last)
	if lost.d.Func != digest.SHA512 || lost.d.Size <= 16<<10 {
		t.Fatalf("lost is %v", lost.d)
	}
	lostPath := disk.BlobPathForTest(l, lost.d)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(lostPath); err != nil {
		t.Fatal(err)
	}
	orphanB, orphanD := blobIn(digest.BLAKE3, 1<<20, 300)
	orphanPath := filepath.Join(dir, "cas", "blake3", orphanD.Hash[:2], orphanD.Hash+"-"+strconv.FormatInt(orphanD.Size, 10))
	if err := os.MkdirAll(filepath.Dir(orphanPath), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, orphanPath, orphanB)

	l = openStore(t, dir, disk.Options{})
	waitReady(t, l)
	if _, err := os.Stat(orphanPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphan BLAKE3 file survived reconciliation: %v", err)
	}
	if present(t, l, orphanD) {
		t.Error("the orphan BLAKE3 blob is reported present")
	}
	if present(t, l, lost.d) {
		t.Errorf("%s, whose file is gone, is reported present", lost.d)
	}
	for _, s := range all {
		if s.d == lost.d {
			continue
		}
		if got, err := read(l, s.d, 0); err != nil || !bytes.Equal(got, s.b) {
			t.Errorf("Get %s after reopen: %d bytes, %v", s.d, len(got), err)
		}
	}
	if got, want := l.Stats().Objects, int64(len(all)-1); got != want {
		t.Errorf("Objects after reopen = %d, want %d", got, want)
	}
}

func TestLocalActionCacheKeepsFunctionsApart(t *testing.T) {
	// Why: a BLAKE3 action digest and a SHA-256 one with the same hex are
	// different actions; each has its own result, across a restart.
	ctx := context.Background()
	dir := t.TempDir()
	l, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a256 := digest.OfBytes([]byte("action"))
	actions := []digest.Digest{a256, twin(a256, digest.BLAKE3), digest.OfBytesIn(digest.SHA512, []byte("action")), digest.OfBytesIn(digest.MD5, []byte("action"))}
	ac := l.ActionCache("inst")
	if err := ac.UpdateActionResult(ctx, a256, &repb.ActionResult{ExitCode: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.GetActionResult(ctx, actions[1]); status.Code(err) != codes.NotFound {
		t.Errorf("GetActionResult of the BLAKE3 twin of a stored SHA-256 action = %v, want NOT_FOUND", err)
	}
	for i, a := range actions {
		if err := ac.UpdateActionResult(ctx, a, &repb.ActionResult{ExitCode: int32(i + 10)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openStore(t, dir, disk.Options{})
	for i, a := range actions {
		got, err := l.ActionCache("inst").GetActionResult(ctx, a)
		if err != nil || got.GetExitCode() != int32(i+10) {
			t.Errorf("GetActionResult(%s) = %v, %v; want exit code %d", a, got, err, i+10)
		}
	}
}

func TestLocalEvictsOneTwinOnly(t *testing.T) {
	// Why: eviction picks blobs by their own use; evicting the least
	// recently used of two same-hex blobs of different functions leaves the
	// other, and a held twin is kept while its namesake goes.
	for _, held := range []bool{false, true} {
		ctx := context.Background()
		l := openStore(t, t.TempDir(), disk.Options{QuotaBytes: 100 << 10, LowWatermark: 0.9})
		waitReady(t, l)
		a, da := blob(30<<10, 1)
		tb, _ := blob(30<<10, 2)
		dt := twin(da, digest.BLAKE3)
		if err := l.Put(ctx, da, bytes.NewReader(a)); err != nil {
			t.Fatal(err)
		}
		if err := disk.PutUnverifiedForTest(l, dt, tb); err != nil {
			t.Fatal(err)
		}
		// The twin is the more recently used; holding the older one
		// instead keeps it and sends the twin.
		keep, gone := dt, da
		if held {
			l.Hold(da)
			keep, gone = da, dt
		}
		b, d := blob(45<<10, 3)
		if err := l.Put(ctx, d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		if !present(t, l, keep) || present(t, l, gone) {
			t.Errorf("held=%v: after eviction %s present = %v, %s present = %v; want only %s", held, keep, present(t, l, keep), gone, present(t, l, gone), keep)
		}
		if got, err := read(l, keep, 0); err != nil || (keep == da && !bytes.Equal(got, a)) || (keep == dt && !bytes.Equal(got, tb)) {
			t.Errorf("held=%v: Get %s after eviction: %v", held, keep, err)
		}
	}
}

func TestLocalPackCompactionWithEveryFunction(t *testing.T) {
	// Why: eviction and pack compaction walk both kinds of index key
	// (narrow ones and the wide SHA-384/SHA-512 ones): small blobs of every
	// function are evicted, moved to new packs and read back, also after a
	// restart.
	const quota = 256 << 10
	dir := t.TempDir()
	opts := disk.WithPackSizeForTest(disk.Options{QuotaBytes: quota, LowWatermark: 0.9}, 32<<10)
	l := openStore(t, dir, opts)
	waitReady(t, l)
	ctx := context.Background()
	var kept map[digest.Digest][]byte
	for round := range 12 {
		kept = map[digest.Digest][]byte{}
		for i := range 12 {
			f := digest.Functions[i%len(digest.Functions)]
			b, d := blobIn(f, 1<<10+(round*12+i)*977%(11<<10), uint64(round*100+i))
			if err := l.Put(ctx, d, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			kept[d] = b
		}
	}
	if l.Stats().Evictions == 0 {
		t.Fatal("no evictions; the test needs some")
	}
	disk.CompactPacksForTest(l)
	for _, p := range disk.PacksForTest(l) {
		if p.Live != p.Counted {
			t.Errorf("pack %d: %d live bytes tracked, %d in the index", p.ID, p.Live, p.Counted)
		}
	}
	readAllBack(t, l, kept)
	restartAndCheck(t, l, dir, opts, kept)
}
