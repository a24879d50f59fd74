package integration_test

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuSample is the CPU time used so far by the benchmark process (the
// client), the upstream castd and the workstation castd.
type cpuSample struct{ client, upstream, workstation time.Duration }

// cpuUse is what the three processes used over some phases, and how long
// those phases took.
type cpuUse struct {
	wall time.Duration
	cpuSample
}

func sampleCPU(b *testing.B, upstream, workstation *castdProc) cpuSample {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return cpuSample{
		client:      time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		upstream:    procCPU(b, upstream.cmd.Process.Pid),
		workstation: procCPU(b, workstation.cmd.Process.Pid),
	}
}

// procCPU reads utime+stime of pid from /proc (clock ticks, 100 Hz).
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line, 12 and 13 here.
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
	f := strings.Fields(rest)
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// measure runs f and adds its wall and CPU time to u.
func (u *cpuUse) measure(b *testing.B, upstream, workstation *castdProc, f func() error) time.Duration {
	b.Helper()
	before := sampleCPU(b, upstream, workstation)
	d := timed(b, f)
	after := sampleCPU(b, upstream, workstation)
	u.wall += d
	u.client += after.client - before.client
	u.upstream += after.upstream - before.upstream
	u.workstation += after.workstation - before.workstation
	return d
}

// report states, for the phase named name, the CPU each process used per
// MB moved and how busy the two cores were.
func (u *cpuUse) report(b *testing.B, name string, bytes int64) {
	mb := float64(bytes) / 1e6
	perMB := func(d time.Duration) float64 { return float64(d.Microseconds()) / mb }
	b.ReportMetric(perMB(u.client), name+"-client-cpu-µs/MB")
	b.ReportMetric(perMB(u.upstream), name+"-upstream-cpu-µs/MB")
	b.ReportMetric(perMB(u.workstation), name+"-castd-cpu-µs/MB")
	total := u.client + u.upstream + u.workstation
	b.ReportMetric(100*total.Seconds()/u.wall.Seconds(), name+"-cpu-%")
}
