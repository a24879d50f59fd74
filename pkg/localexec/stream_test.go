package localexec_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"

	"github.com/castd/castd/pkg/localexec"
)

// watchedWriter records what it is given and wakes waiters on every write.
type watchedWriter struct {
	mu      sync.Mutex
	data    strings.Builder
	changed chan struct{}
}

func newWatchedWriter() *watchedWriter { return &watchedWriter{changed: make(chan struct{})} }

func (w *watchedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.data.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

func (w *watchedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.data.String()
}

// waitFor waits until the written text contains want, failing after 20 s
// or when the run ends first.
func (w *watchedWriter) waitFor(t *testing.T, want string, ended <-chan struct{}) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		w.mu.Lock()
		got, changed := w.data.String(), w.changed
		w.mu.Unlock()
		if strings.Contains(got, want) {
			return
		}
		select {
		case <-changed:
		case <-ended:
			t.Fatalf("run ended before the writer saw %q (got %q)", want, got)
		case <-deadline:
			t.Fatalf("writer never saw %q (got %q)", want, got)
		}
	}
}

// failingWriter rejects every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("observer gone") }

func TestRunStreamingSeesOutputWhileRunning(t *testing.T) {
	t.Log("the writers get each line as the command prints it, before it exits, and the blobs are unchanged")
	f := newFixture(t, localexec.Options{})
	release := filepath.Join(t.TempDir(), "release")
	a := f.action(t, nil, shell(`echo first; echo err-first >&2; while [ ! -e "$REL" ]; do sleep 0.01; done; echo second; echo err-second >&2`, "REL="+release), 0)
	stdout, stderr := newWatchedWriter(), newWatchedWriter()
	ended := make(chan struct{})
	var res *repb.ActionResult
	var err error
	go func() {
		defer close(ended)
		res, err = f.runner.RunStreaming(context.Background(), a, stdout, stderr)
	}()
	stdout.waitFor(t, "first\n", ended)
	stderr.waitFor(t, "err-first\n", ended)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	<-ended
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.blob(t, res.GetStdoutDigest())); got != "first\nsecond\n" || stdout.String() != got {
		t.Errorf("stdout blob %q, writer %q; want both first, second", got, stdout.String())
	}
	if got := string(f.blob(t, res.GetStderrDigest())); got != "err-first\nerr-second\n" || stderr.String() != got {
		t.Errorf("stderr blob %q, writer %q", got, stderr.String())
	}
}

func TestRunStreamingKeepsBlobs(t *testing.T) {
	tests := []struct {
		name   string
		why    string
		failer bool
	}{{
		name: "observed run",
		why:  "a tee'd capture stores the same bytes as a direct one, for output larger than a pipe buffer",
	}, {
		name:   "failing observer",
		why:    "an observer that fails is dropped; the run and its capture go on",
		failer: true,
	}}
	const script = `seq 1 100000; seq 1 50000 >&2; exit 4`
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			f := newFixture(t, localexec.Options{})
			a := f.action(t, nil, shell(script), 0)
			want, err := f.runner.Run(context.Background(), a)
			if err != nil {
				t.Fatal(err)
			}
			var out, errOut io.Writer = newWatchedWriter(), newWatchedWriter()
			if tc.failer {
				out, errOut = failingWriter{}, failingWriter{}
			}
			got, err := f.runner.RunStreaming(context.Background(), a, out, errOut)
			if err != nil {
				t.Fatal(err)
			}
			if got.GetExitCode() != 4 || got.GetStdoutDigest().GetHash() != want.GetStdoutDigest().GetHash() ||
				got.GetStderrDigest().GetHash() != want.GetStderrDigest().GetHash() {
				t.Errorf("observed result %v, want stdout/stderr digests and exit code of %v", got, want)
			}
			if w, ok := out.(*watchedWriter); ok && int64(len(w.String())) != want.GetStdoutDigest().GetSizeBytes() {
				t.Errorf("writer saw %d bytes, blob has %d", len(w.String()), want.GetStdoutDigest().GetSizeBytes())
			}
			f.assertWorkDirEmpty(t)
		})
	}
}
