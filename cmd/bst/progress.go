package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// progressThreshold is the transfer size from which progress is shown.
const progressThreshold = 4 << 20

// meter counts the bytes of one transfer (an upload or a download) and
// shows them on stderr: a bar with rate and ETA when stderr is a terminal
// and the transfer is large, one summary line otherwise, nothing with
// --quiet. Safe for concurrent use.
type meter struct {
	verb  string // "uploaded", "downloaded"
	out   io.Writer
	tty   bool
	quiet bool
	total int64 // -1 when unknown
	start time.Time
	done  atomic.Int64

	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

// newMeter starts a meter for a transfer of total bytes (-1: unknown).
func (a *app) newMeter(verb string, total int64) *meter {
	m := &meter{verb: verb, out: a.stderr, quiet: a.quiet, total: total, start: time.Now()}
	if f, ok := a.stderr.(*os.File); ok {
		m.tty = term.IsTerminal(int(f.Fd()))
	}
	return m
}

// add records n more bytes.
func (m *meter) add(n int) {
	done := m.done.Add(int64(n))
	if m.quiet || !m.tty || n == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bar == nil && (m.total >= progressThreshold || done >= progressThreshold) {
		// The bar shows bst's own figures (IEC units like the summary, the
		// rate over the whole transfer): its built-in rate starts when the
		// bar appears, which made a first frame of 140 GB/s.
		m.bar = progressbar.NewOptions64(m.total, progressbar.OptionSetWriter(m.out),
			progressbar.OptionSetPredictTime(false), progressbar.OptionSetElapsedTime(false),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		_ = m.bar.Set64(done - int64(n))
	}
	if m.bar != nil {
		m.bar.Describe(progressText(m.verb, done, m.total, time.Since(m.start)))
		_ = m.bar.Add(n)
	}
}

// minRateWindow is how long a transfer runs before a rate is shown: over a
// few milliseconds a rate means nothing.
const minRateWindow = 500 * time.Millisecond

// progressText is the text beside the bar: bytes so far of the total, and
// once minRateWindow has passed the rate and the time left.
func progressText(verb string, done, total int64, elapsed time.Duration) string {
	s := verb + " " + humanBytes(done)
	if total > 0 {
		s += " of " + humanBytes(total)
	}
	if elapsed < minRateWindow || done == 0 {
		return s
	}
	rate := float64(done) / elapsed.Seconds()
	s += fmt.Sprintf(", %s/s", humanBytes(int64(rate)))
	if total > done {
		s += fmt.Sprintf(", ETA %s", (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second))
	}
	return s
}

// finish clears the bar and prints one summary line for large transfers,
// also when castd already had everything and nothing moved.
func (m *meter) finish() {
	m.mu.Lock()
	if m.bar != nil {
		_ = m.bar.Finish()
	}
	m.mu.Unlock()
	if line := summaryLine(m.verb, m.done.Load(), m.total, time.Since(m.start)); line != "" && !m.quiet {
		fmt.Fprintln(m.out, line)
	}
}

// summaryLine is the line after a transfer of total bytes (-1: unknown)
// of which done moved, or "" for a small one.
func summaryLine(verb string, done, total int64, elapsed time.Duration) string {
	if max(done, total) < progressThreshold {
		return ""
	}
	switch {
	case done == 0 && verb == "uploaded":
		return fmt.Sprintf("bst: uploaded nothing: castd already had all %s", humanBytes(total))
	case done == 0:
		return ""
	}
	rate := float64(done) / max(elapsed.Seconds(), 1e-3)
	line := fmt.Sprintf("bst: %s %s in %s (%s/s)", verb, humanBytes(done), elapsed.Round(time.Millisecond), humanBytes(int64(rate)))
	if total > done {
		line += fmt.Sprintf("; castd already had the other %s", humanBytes(total-done))
	}
	return line
}

// meteredCAS counts the bytes of every read and write of a CAS, fast
// paths included, in a meter.
type meteredCAS struct {
	base store.CAS
	m    *meter
}

// withMeter wraps cas so that its transfers are counted by m.
func withMeter(cas store.CAS, m *meter) store.CAS { return &meteredCAS{base: cas, m: m} }

func (c *meteredCAS) FindMissing(ctx context.Context, ds []digest.Digest) ([]digest.Digest, error) {
	return c.base.FindMissing(ctx, ds)
}

func (c *meteredCAS) Put(ctx context.Context, d digest.Digest, r io.Reader) error {
	return c.PutWith(ctx, d, r, store.PutHint{})
}

func (c *meteredCAS) PutWith(ctx context.Context, d digest.Digest, r io.Reader, hint store.PutHint) error {
	return c.base.PutWith(ctx, d, &countingReader{r: r, m: c.m}, hint)
}

// PutBytes counts data once base has taken it.
func (c *meteredCAS) PutBytes(ctx context.Context, d digest.Digest, data []byte, hint store.PutHint) error {
	err := c.base.PutBytes(ctx, d, data, hint)
	if err == nil {
		c.m.add(len(data))
	}
	return err
}

func (c *meteredCAS) Get(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error) {
	return c.GetWith(ctx, d, offset, store.GetHint{})
}

func (c *meteredCAS) GetWith(ctx context.Context, d digest.Digest, offset int64, hint store.GetHint) (io.ReadCloser, error) {
	rc, err := c.base.GetWith(ctx, d, offset, hint)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{&countingReader{r: rc, m: c.m}, rc}, nil
}

// GetMany counts the bytes of the blobs served.
func (c *meteredCAS) GetMany(ctx context.Context, ds []digest.Digest) []store.BlobResult {
	out := c.base.GetMany(ctx, ds)
	for _, r := range out {
		c.m.add(len(r.Data))
	}
	return out
}

type countingReader struct {
	r io.Reader
	m *meter
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.m.add(n)
	return n, err
}
