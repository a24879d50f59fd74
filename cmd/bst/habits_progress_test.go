package main

import (
	"testing"
	"time"
)

func TestProgressText(t *testing.T) {
	for _, c := range []struct {
		name, why   string
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{"first frame", "a rate over microseconds was shown as 140 GB/s; no rate before half a second", 8 << 20, 100 << 20, 20 * time.Microsecond, "uploaded 8.0 MiB of 100 MiB"},
		{"running", "bytes, rate and ETA, all in IEC units like the summary", 50 << 20, 100 << 20, 2 * time.Second, "uploaded 50 MiB of 100 MiB, 25 MiB/s, ETA 2s"},
		{"unknown total", "a tree download does not know its size", 10 << 20, -1, time.Second, "uploaded 10 MiB, 10 MiB/s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Log(c.why)
			if got := progressText("uploaded", c.done, c.total, c.elapsed); got != c.want {
				t.Errorf("progressText = %q, want %q", got, c.want)
			}
		})
	}
}

func TestSummaryLine(t *testing.T) {
	for _, c := range []struct {
		name, why   string
		verb        string
		done, total int64
		want        string
	}{
		{"transfer", "the summary uses MiB/s like the bar", "downloaded", 64 << 20, 64 << 20, "bst: downloaded 64 MiB in 2s (32 MiB/s)"},
		{"already there", "a put of a blob castd had printed nothing at all", "uploaded", 0, 64 << 20, "bst: uploaded nothing: castd already had all 64 MiB"},
		{"partly there", "what was skipped is said", "uploaded", 16 << 20, 64 << 20, "bst: uploaded 16 MiB in 2s (8.0 MiB/s); castd already had the other 48 MiB"},
		{"small", "small transfers stay quiet", "uploaded", 1 << 10, 1 << 10, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Log(c.why)
			if got := summaryLine(c.verb, c.done, c.total, 2*time.Second); got != c.want {
				t.Errorf("summaryLine = %q, want %q", got, c.want)
			}
		})
	}
}
