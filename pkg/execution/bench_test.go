package execution_test

import (
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/castd/castd/pkg/digest"
)

// BenchmarkExecuteCached measures Execute of a cached action through a Unix
// socket: Action read, completeness-checked AC hit, a finished operation
// streamed back. Reports the p50 and p99 latency in µs (target p50 ≤ 300).
func BenchmarkExecuteCached(b *testing.B) {
	n := newNode(b, setup{unix: true})
	ad := n.upload(b, "echo cached > out.txt", 0)
	resp, _, err := execute(b, n.client, ad, false)
	mustSucceed(b, resp, err)
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		resp, _, err := execute(b, n.client, ad, false)
		lat = append(lat, time.Since(start))
		if err != nil || !resp.GetCachedResult() {
			b.Fatalf("not a cache hit: %v", err)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkConcurrentNoopActions runs 100 distinct no-op actions at once
// with jobs = 2 and reports the wall time and the process's max RSS.
func BenchmarkConcurrentNoopActions(b *testing.B) {
	const actions = 100
	for b.Loop() {
		b.StopTimer()
		n := newNode(b, setup{unix: true, jobs: 2})
		ds := make([]digest.Digest, actions)
		for i := range ds {
			ds[i] = n.upload(b, fmt.Sprintf("true %d", i), 0)
		}
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for _, ad := range ds {
			wg.Go(func() {
				resp, _, err := execute(b, n.client, ad, false)
				if err != nil || resp.GetResult().GetExitCode() != 0 || resp.GetStatus().GetCode() != 0 {
					b.Errorf("action %s: %v %v", ad, err, resp.GetStatus())
				}
			})
		}
		wg.Wait()
		b.ReportMetric(time.Since(start).Seconds()*1000, "ms/100-actions")
		if got := n.runner.runs.Load(); got != actions {
			b.Fatalf("runs = %d, want %d", got, actions)
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB")
}
