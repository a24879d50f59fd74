package localexec_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/localexec"
)

// backgroundScript records its own pid and a background child's pid in
// $PIDS, says "started", and then waits on the child forever (100 s).
const backgroundScript = `sleep 100 & echo $! > "$PIDS/child.tmp"; mv "$PIDS/child.tmp" "$PIDS/child"; echo started; wait`

func TestRunStopsProcessGroup(t *testing.T) {
	tests := []struct {
		name    string
		why     string
		timeout time.Duration
		cancel  bool
		code    codes.Code
	}{{
		name:    "action timeout",
		why:     "a timed-out action returns DEADLINE_EXCEEDED with its partial result, and leaves no process behind",
		timeout: time.Second,
		code:    codes.DeadlineExceeded,
	}, {
		name:   "caller cancels",
		why:    "CancelOperation / a dropped client must stop the whole process group",
		cancel: true,
		code:   codes.Canceled,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			f := newFixture(t, localexec.Options{})
			pids := t.TempDir()
			a := f.action(t, nil, shell(backgroundScript, "PIDS="+pids), tc.timeout)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type outcome struct {
				res *repb.ActionResult
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				res, err := f.runner.Run(ctx, a)
				done <- outcome{res, err}
			}()
			testutil.Eventually(t, "the background child to start", func() bool { return exists(filepath.Join(pids, "child")) })
			child := readPid(t, filepath.Join(pids, "child"))
			t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
			if tc.cancel {
				cancel()
			}
			got := <-done
			if status.Code(got.err) != tc.code {
				t.Fatalf("Run error = %v, want %v", got.err, tc.code)
			}
			testutil.Eventually(t, "the background child to be killed", func() bool { return processGone(child) })
			if tc.code == codes.DeadlineExceeded && string(f.blob(t, got.res.GetStdoutDigest())) != "started\n" {
				t.Errorf("partial result stdout not kept: %v", got.res)
			}
			if tc.cancel && got.res != nil {
				t.Errorf("cancelled Run returned a result: %v", got.res)
			}
			f.assertWorkDirEmpty(t)
		})
	}
}

// TestJobsLimit checks that with Jobs=1 a second action waits in the queue
// until the first has finished. Each action marks itself running in a
// shared directory, records any overlap it sees, and blocks until the test
// releases it; the test only releases the first once the second is queued.
func TestJobsLimit(t *testing.T) {
	t.Log("jobs bounds concurrent actions; the rest queue in order")
	f := newFixture(t, localexec.Options{Jobs: 1})
	marks := t.TempDir()
	script := `for o in "$MARKS"/*.running; do [ -e "$o" ] && touch "$MARKS/overlap"; done
touch "$MARKS/$NAME.running"
while [ ! -e "$MARKS/$NAME.release" ]; do sleep 0.01; done
rm "$MARKS/$NAME.running"`
	run := func(name string) <-chan error {
		a := f.action(t, nil, shell(script, "MARKS="+marks, "NAME="+name), 0)
		done := make(chan error, 1)
		go func() { _, err := f.runner.Run(context.Background(), a); done <- err }()
		return done
	}
	release := func(name string) {
		if err := os.WriteFile(filepath.Join(marks, name+".release"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defer release("first")
	defer release("second")
	first := run("first")
	testutil.Eventually(t, "first to run", func() bool { return exists(filepath.Join(marks, "first.running")) })
	second := run("second")
	testutil.Eventually(t, "second to queue", func() bool { return f.runner.Queued() == 1 })
	if exists(filepath.Join(marks, "second.running")) || f.runner.Running() != 1 {
		t.Fatalf("second action started while the first held the only job slot")
	}
	release("first")
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "second to run", func() bool { return exists(filepath.Join(marks, "second.running")) })
	release("second")
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(marks, "overlap")) {
		t.Errorf("actions overlapped")
	}
}
