package casdir_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store/casdir"
)

// helperEnv, when set in the environment, makes the test binary a helper
// process that works on the cache directory it names (see helperMain)
// instead of running tests: two of them are two daemons on one directory.
const helperEnv = "CASDIR_TEST_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		if err := helperMain(dir); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperMain opens the store at dir with the quota of CASDIR_TEST_QUOTA
// and puts CASDIR_TEST_BLOBS blobs of 1000 bytes numbered from
// CASDIR_TEST_FIRST, reading each back (it may have been evicted by the
// other process already, never damaged). With CASDIR_TEST_HOLD it then
// prints "ready" and runs until killed.
func helperMain(dir string) error {
	quota, _ := strconv.ParseInt(os.Getenv("CASDIR_TEST_QUOTA"), 10, 64)
	first, _ := strconv.Atoi(os.Getenv("CASDIR_TEST_FIRST"))
	n, _ := strconv.Atoi(os.Getenv("CASDIR_TEST_BLOBS"))
	s, err := casdir.Open(dir, casdir.Options{QuotaHigh: quota, QuotaLow: quota / 2, ProtectSessionBlobs: os.Getenv("CASDIR_TEST_PROTECT") != ""})
	if err != nil {
		return err
	}
	defer s.Close()
	for i := first; i < first+n; i++ {
		b, d := blob(i, 1000)
		if err := s.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
			return fmt.Errorf("put %d: %w", i, err)
		}
		got, err := read(s, d, 0)
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil || !bytes.Equal(got, b) {
			return fmt.Errorf("read %d back: %d bytes, %v", i, len(got), err)
		}
	}
	if os.Getenv("CASDIR_TEST_HOLD") != "" {
		// Stay open (the session running) until killed.
		fmt.Println("ready")
		select {}
	}
	return nil
}
