package casdir_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store/casdir"
)

func TestConcurrentPutsOfOneDigest(t *testing.T) {
	// Two daemons (and several requests in each) store the same output at
	// once: every Put succeeds, one file results, counted once.
	dir := t.TempDir()
	stores := []*casdir.Store{open(t, dir, casdir.Options{}), open(t, dir, casdir.Options{})}
	b, d := blob(1, 500_000)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			errs <- stores[i%2].Put(context.Background(), d, bytes.NewReader(b))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	for _, s := range stores {
		if got, err := read(s, d, 0); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("Get: %d bytes, %v", len(got), err)
		}
	}
	if u := usage(t, stores[0]); u != d.Size {
		t.Fatalf("usage %d, want %d (one blob)", u, d.Size)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "cas", "tmp")); len(tmp) != 0 {
		t.Fatalf("cas/tmp holds %d files, want none", len(tmp))
	}
}

func TestUseDuringAPassKeepsTheBlob(t *testing.T) {
	// Another daemon tells its client that the oldest blob exists after
	// the pass has chosen it: the pass must not remove it from under that
	// answer.
	dir := t.TempDir()
	clk := newClock()
	opts := casdir.Options{QuotaHigh: 500, QuotaLow: 100, Now: clk.Now}
	evicting, other := open(t, dir, opts), open(t, dir, opts)
	ds := putAt(t, evicting, clk, 0, 5, 100)
	var reported bool
	casdir.SetAfterScanHook(func() {
		clk.Advance()
		reported = !missing(t, other, ds[0]).Has(ds[0])
	})
	defer casdir.SetAfterScanHook(nil)
	putAt(t, evicting, clk, 5, 6, 100)
	if !reported {
		t.Fatal("the other daemon did not find the blob during the pass")
	}
	got := present(t, dir, ds)
	if !got.Has(ds[0]) {
		t.Fatal("the pass removed a blob another daemon had just reported present")
	}
	if got.Has(ds[1]) || got.Has(ds[2]) || got.Has(ds[3]) {
		t.Fatalf("the pass kept %d of the other old blobs, want it to evict them instead", len(got)-1)
	}
}

func TestTwoStoresOnOneDirectory(t *testing.T) {
	// Two daemons put, read and evict on one directory at once (as two
	// overlapping bst commands do): reads give the blob or NOT_FOUND,
	// never damage; the directory stays near its quota.
	dir := t.TempDir()
	const size, quota, writers = 1000, 40_000, 4
	opts := casdir.Options{QuotaHigh: quota, QuotaLow: quota / 2}
	stores := []*casdir.Store{open(t, dir, opts), open(t, dir, opts)}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() { errs <- putAndRead(stores[w%2], stores[(w+1)%2], w, size) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// In-flight Puts of both daemons may each pass the check at once.
	if disk := onDisk(t, dir); disk > quota+writers*size {
		t.Fatalf("%d bytes on disk, quota %d", disk, quota)
	}
	if u, disk := usage(t, stores[0]), onDisk(t, dir); u < disk-writers*size || u > disk+writers*size {
		t.Fatalf("usage count %d, %d bytes on disk", u, disk)
	}
}

// putAndRead stores 150 blobs through s and reads each back through
// other, which may find it evicted already.
func putAndRead(s, other *casdir.Store, w, size int) error {
	for i := range 150 {
		b, d := blob(w*1000+i, size)
		if err := s.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
			return err
		}
		got, err := read(other, d, 0)
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			return err
		}
		if !bytes.Equal(got, b) {
			return errors.New("read other bytes than stored")
		}
	}
	return nil
}

func TestOpensADirectoryWrittenByBuildboxCasd(t *testing.T) {
	// buildbox-casd leaves cas/objects and cas/tmp and nothing of castd's:
	// the files are the whole index.
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	var ds []digest.Digest
	var total int64
	for i := range 5 {
		b, d := blob(i, 100*(i+1))
		path := objectPath(dir, d)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o444); err != nil {
			t.Fatal(err)
		}
		mt := old.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(path, mt, mt); err != nil {
			t.Fatal(err)
		}
		ds, total = append(ds, d), total+d.Size
	}
	if err := os.MkdirAll(filepath.Join(dir, "cas", "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	s := open(t, dir, casdir.Options{QuotaHigh: total + 100, QuotaLow: total - 300, Now: clk.Now})
	if u := usage(t, s); u != total {
		t.Fatalf("usage %d, want the %d bytes of the files found", u, total)
	}
	if m := missing(t, s, ds...); len(m) != 0 {
		t.Fatalf("%d of its blobs missing", len(m))
	}
	b, _ := blob(2, 300)
	if got, err := read(s, ds[2], 0); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
	// Its mtimes are its recency: the oldest goes first (FindMissing made
	// all of them recent, so set them back first).
	for i, d := range ds {
		mt := old.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(objectPath(dir, d), mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	putAt(t, s, clk, 10, 11, 200)
	got := present(t, dir, ds)
	if got.Has(ds[0]) || got.Has(ds[1]) || !got.Has(ds[2]) || !got.Has(ds[4]) {
		t.Fatalf("after eviction, present: %v of 0..4 by age", []bool{got.Has(ds[0]), got.Has(ds[1]), got.Has(ds[2]), got.Has(ds[3]), got.Has(ds[4])})
	}
}

func TestTwoProcessesOnOneDirectory(t *testing.T) {
	// Two real processes, as two overlapping bst commands start two
	// daemons: they evict for each other, share one count, leave no
	// session or temporary file behind, and every file left is its blob.
	dir := t.TempDir()
	const quota = 50_000
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for p := range 2 {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+dir, "CASDIR_TEST_QUOTA="+strconv.Itoa(quota),
			"CASDIR_TEST_FIRST="+strconv.Itoa(p*10_000), "CASDIR_TEST_BLOBS=200")
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for p, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", p, err, outs[p])
		}
	}
	if disk := onDisk(t, dir); disk > quota+2*1000 {
		t.Fatalf("%d bytes on disk, quota %d", disk, quota)
	}
	for _, sub := range []string{"cas/tmp", "cas/castd/sessions"} {
		if left, _ := os.ReadDir(filepath.Join(dir, sub)); len(left) != 0 {
			t.Fatalf("%s holds %d files after both processes ended", sub, len(left))
		}
	}
	checkEveryFile(t, dir)
	s := open(t, dir, casdir.Options{})
	if u, disk := usage(t, s), onDisk(t, dir); u < disk-2*1000 || u > disk+2*1000 {
		t.Fatalf("usage count %d, %d bytes on disk", u, disk)
	}
}

// checkEveryFile fails the test unless every blob file under dir hashes
// to its name.
func checkEveryFile(t *testing.T, dir string) {
	t.Helper()
	objects := filepath.Join(dir, "cas", "objects")
	err := filepath.Walk(objects, func(path string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(objects, path)
		if got := digest.OfBytes(b).Hash; got != strings.ReplaceAll(rel, "/", "") {
			t.Errorf("file %s holds a blob of hash %s", rel, got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestKilledSessionStopsProtecting(t *testing.T) {
	// A daemon killed with SIGKILL cannot remove its session file; its
	// lock goes with the process, and then its blobs are evictable.
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir, "CASDIR_TEST_QUOTA=10000",
		"CASDIR_TEST_FIRST=0", "CASDIR_TEST_BLOBS=10", "CASDIR_TEST_PROTECT=1", "CASDIR_TEST_HOLD=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper said %q (%v)", line, err)
	}
	// Its ten blobs fill the quota and are protected while it runs.
	s := open(t, dir, casdir.Options{QuotaHigh: 10_000, QuotaLow: 5_000})
	b, d := blob(100, 1000)
	wantCode(t, s.Put(context.Background(), d, bytes.NewReader(b)), codes.ResourceExhausted)

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if sessions, _ := os.ReadDir(filepath.Join(dir, "cas", "castd", "sessions")); len(sessions) != 1 {
		t.Fatalf("%d session files after the kill, want the dead one", len(sessions))
	}
	put(t, s, b)
	if sessions, _ := os.ReadDir(filepath.Join(dir, "cas", "castd", "sessions")); len(sessions) != 0 {
		t.Fatalf("%d session files after a pass, want the dead one removed", len(sessions))
	}
	if disk := onDisk(t, dir); disk > 6_000 {
		t.Fatalf("%d bytes on disk after the pass, want about quota-low 5000 plus the new blob", disk)
	}
}

func TestBlobsReportedPresentSurviveConcurrentEviction(t *testing.T) {
	// One daemon (BuildStream's, protecting its session) asks about old
	// blobs while another evicts those very blobs to make room, starting
	// right after the first pass's scan: whatever the first was told is
	// present must still be there afterwards.
	dir := t.TempDir()
	const n, size = 200, 1000
	old := oldBlobs(t, dir, n, size)
	asking := open(t, dir, casdir.Options{ProtectSessionBlobs: true})
	evicting := open(t, dir, casdir.Options{QuotaHigh: n * size, QuotaLow: n * size / 2})
	scanned := make(chan struct{})
	var once sync.Once
	casdir.SetAfterScanHook(func() { once.Do(func() { close(scanned) }) })
	defer casdir.SetAfterScanHook(nil)

	done := make(chan error, 1)
	go func() { done <- putUntilFull(evicting, size) }()
	<-scanned
	told := digest.NewSet()
	for i := 0; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			for d := range told {
				if !exists(t, objectPath(dir, d)) {
					t.Fatalf("blob %s was reported present and then evicted during the session", d)
				}
			}
			if len(told) == 0 {
				t.Fatal("no old blob was ever reported present")
			}
			return
		default:
		}
		// Oldest first: the blobs the pass is removing.
		if d := old[i%n]; !missing(t, asking, d).Has(d) {
			told.Add(d)
		}
	}
}

// oldBlobs stores n blobs of size bytes in dir as an earlier session did,
// last used an hour ago, blob 0 first.
func oldBlobs(t *testing.T, dir string, n, size int) []digest.Digest {
	t.Helper()
	w := open(t, dir, casdir.Options{})
	defer w.Close()
	hourAgo := time.Now().Add(-time.Hour)
	var old []digest.Digest
	for i := range n {
		b, _ := blob(i, size)
		d := put(t, w, b)
		mt := hourAgo.Add(time.Duration(i) * time.Millisecond)
		if err := os.Chtimes(objectPath(dir, d), mt, mt); err != nil {
			t.Fatal(err)
		}
		old = append(old, d)
	}
	return old
}

// putUntilFull stores new blobs through s until it answers
// RESOURCE_EXHAUSTED: every blob left is protected.
func putUntilFull(s *casdir.Store, size int) error {
	for i := 1_000_000; ; i++ {
		b, d := blob(i, size)
		err := s.Put(context.Background(), d, bytes.NewReader(b))
		if status.Code(err) == codes.ResourceExhausted {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
