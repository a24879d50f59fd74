package integration_test

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/test/faultproxy"
)

// faultMode is one behaviour of the first remote's link in the fault tests.
type faultMode struct {
	name, why string
	mode      faultproxy.Mode
	// connected makes the workstation talk to A (a read of another blob)
	// before the fault starts, so that the fault hits a live connection.
	connected bool
	// aHolds reads the blobs A holds too (A serves them unless it fails);
	// otherwise A has none of them and B serves all.
	aHolds bool
	// rejects says castd must have caught bad data from A (its
	// castd_fanout_bad_data_total rose), so the run tested verification and
	// not only broken connections.
	rejects bool
	// baseline names the pass mode this one's time is compared with.
	baseline string
	// happened says what in the proxy's counters shows that the fault was
	// really applied during the run ("" if it was).
	happened func(st faultproxy.Stats) string
}

// faultModes is the table of TestFaultFirstRemote and BenchmarkFaultModes.
// Baselines come before the modes compared with them.
var faultModes = []faultMode{
	{name: "pass", why: "baseline: A answers NOT_FOUND at once, B serves",
		mode: faultproxy.Pass(), baseline: "pass",
		happened: func(st faultproxy.Stats) string { return want(st.ToClient > 0, "A never answered") }},
	{name: "down", why: "A resets every connection: skipped, B serves",
		mode: faultproxy.Down(), baseline: "pass",
		happened: func(st faultproxy.Stats) string {
			return want(st.Reset+st.Cut > 0, "no connection to A was reset or cut")
		}},
	{name: "stall", why: "A accepts and never answers: a read must not wait on it long, B serves",
		mode: faultproxy.Stall(), baseline: "pass",
		happened: func(st faultproxy.Stats) string {
			return want(st.Held > 0 && st.ToClient == 0, "nothing was held, or A answered")
		}},
	{name: "stall, connected", why: "A's live connection goes silent mid-use: a read must not wait on it long, B serves",
		mode: faultproxy.Stall(), connected: true, baseline: "pass",
		happened: func(st faultproxy.Stats) string {
			return want(st.Held > 0 && st.ToClient == 0, "nothing was held, or A answered")
		}},
	{name: "throttle", why: "A's link carries 128 KiB/s: its slow misses must not hold reads, B serves",
		mode: faultproxy.Throttle(128 << 10), baseline: "pass",
		happened: func(st faultproxy.Stats) string { return want(st.ToClient > 0, "A never answered") }},
	{name: "latency", why: "A is 20 ms away each way: B serves",
		mode: faultproxy.Latency(20 * time.Millisecond), baseline: "pass",
		happened: func(st faultproxy.Stats) string { return want(st.ToClient > 0, "A never answered") }},
	{name: "flap", why: "A's link drops every 16 KiB it carries and the next connection is reset: B serves",
		mode: faultproxy.Flap(16 << 10), baseline: "pass",
		happened: func(st faultproxy.Stats) string { return want(st.Cut > 0, "the link never dropped") }},
	{name: "pass, A holds", why: "baseline for the modes where A holds the blobs: A serves every blob",
		mode: faultproxy.Pass(), aHolds: true, baseline: "pass, A holds",
		happened: func(st faultproxy.Stats) string { return want(st.ToClient > 0, "A served nothing") }},
	{name: "corrupt, A holds", why: "A's bytes are flipped on the way (1 in 64 KiB): every bad answer is rejected, B serves it",
		mode: faultproxy.Corrupt(1.0/(64<<10), 1), aHolds: true, rejects: true, baseline: "pass, A holds",
		happened: func(st faultproxy.Stats) string { return want(st.Flipped > 0, "no byte was flipped") }},
	{name: "flap, A holds", why: "A's link drops every 1 MiB it carries, cutting transfers midway: each is finished from B",
		mode: faultproxy.Flap(1 << 20), aHolds: true, baseline: "pass, A holds",
		happened: func(st faultproxy.Stats) string { return want(st.Cut > 0, "the link never dropped") }},
}

func want(ok bool, otherwise string) string {
	if ok {
		return ""
	}
	return otherwise
}

// runFaultMode sets m on the rig's proxy, starts a fresh workstation with
// A (through the proxy) and B as remotes, makes one cold-read run and
// reports it with the proxy's counters for the run. inspect, if not nil,
// sees the workstation after the run.
func runFaultMode(tb testing.TB, rig *faultRig, m faultMode, timed interface {
	StartTimer()
	StopTimer()
}, inspect func(ws *castdProc)) (readRun, faultproxy.Stats) {
	tb.Helper()
	ws, conn := faultWorkstation(tb, "grpc://"+rig.proxy.Addr(), rig.b.url)
	defer ws.kill9()
	blobs := rig.onlyB
	if m.aHolds {
		blobs = rig.both
	}
	if m.connected {
		connect(tb, conn, rig.warm)
	}
	before := rig.proxy.Stats()
	rig.proxy.SetMode(m.mode)
	defer rig.proxy.SetMode(faultproxy.Pass())
	timed.StartTimer()
	run := coldReads(conn, blobs)
	timed.StopTimer()
	if inspect != nil {
		inspect(ws)
	}
	return run, statsSince(rig.proxy.Stats(), before)
}

// connect reads b (which only B holds) through conn, so that the
// workstation has asked A and holds a live connection to it.
func connect(tb testing.TB, conn *grpc.ClientConn, b blob) {
	tb.Helper()
	if got, err := readBlob(ctxFor(tb, time.Minute), conn, b.d); err != nil || !bytes.Equal(got, b.data) {
		tb.Fatalf("warm-up read: %d bytes, %v", len(got), err)
	}
}

func statsSince(now, before faultproxy.Stats) faultproxy.Stats {
	return faultproxy.Stats{
		Accepted: now.Accepted - before.Accepted, Reset: now.Reset - before.Reset, Cut: now.Cut - before.Cut,
		Held: now.Held - before.Held, Flipped: now.Flipped - before.Flipped, ToClient: now.ToClient - before.ToClient, ToServer: now.ToServer - before.ToServer,
	}
}

// badData sums castd_fanout_bad_data_total over its labels on p.
func badData(t *testing.T, p *castdProc) float64 {
	t.Helper()
	sum := 0.0
	for _, m := range regexp.MustCompile(`(?m)^castd_fanout_bad_data_total\{[^}]*\} (\S+)$`).FindAllStringSubmatch(scrape(t, p.metricsURL()), -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatalf("castd_fanout_bad_data_total value %q: %v", m[1], err)
		}
		sum += v
	}
	return sum
}

// noTimer is the timer of a test, which measures nothing.
type noTimer struct{}

func (noTimer) StartTimer() {}
func (noTimer) StopTimer()  {}

func TestFaultFirstRemote(t *testing.T) {
	t.Log("with the first remote failing in any way and the second healthy, cold reads see no error and no wrong byte")
	rig := newFaultRig(t)
	for _, m := range faultModes {
		t.Run(m.name, func(t *testing.T) {
			t.Log(m.why)
			run, st := runFaultMode(t, rig, m, noTimer{}, func(ws *castdProc) {
				if !m.rejects {
					return
				}
				bad := badData(t, ws)
				t.Logf("castd rejected %v answers with bad data", bad)
				if bad == 0 {
					t.Errorf("castd_fanout_bad_data_total = 0: no corrupted answer reached castd's verification")
				}
			})
			t.Logf("%s: %v; proxy %+v", m.mode, run, st)
			if run.failed != 0 || run.wrong != 0 || run.reads != faultReads {
				t.Errorf("cold reads with the first remote in %s: %v; want all %d exact", m.mode, run, faultReads)
			}
			if msg := m.happened(st); msg != "" {
				t.Errorf("the fault was not applied (%s): proxy %+v", msg, st)
			}
		})
	}
}

// BenchmarkFaultModes times 1,000 cold reads (one op) through a fresh
// workstation per mode; x-pass is the time over its pass baseline's (the
// target is at most 1.5). Run with -benchtime=1x: one op is a whole run.
func BenchmarkFaultModes(b *testing.B) {
	rig := newFaultRig(b)
	perOp := map[string]float64{}
	for _, m := range faultModes {
		b.Run(m.name, func(b *testing.B) {
			b.StopTimer()
			failed, wrong := 0, 0
			for range b.N {
				run, _ := runFaultMode(b, rig, m, b, nil)
				failed += run.failed
				wrong += run.wrong
				if run.failed+run.wrong > 0 {
					b.Errorf("%s: %v", m.mode, run)
				}
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			perOp[m.name] = ns
			if base := perOp[m.baseline]; base > 0 {
				b.ReportMetric(ns/base, "x-pass")
			}
			b.ReportMetric(float64(failed)/float64(b.N), "failed/op")
			b.ReportMetric(float64(wrong)/float64(b.N), "wrong/op")
		})
	}
}

func TestFaultOnlyRemote(t *testing.T) {
	t.Log("with the only remote failing, a read ends in bounded time with the failure's code (UNAVAILABLE when down) naming the remote: never a hang, a miss or wrong bytes")
	a := startPlainUpstream(t)
	proxy, err := faultproxy.New(a.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	// 32 KiB: a 1/1024 corruption rate hits every answer carrying it.
	b, warm := randomBlob(32<<10), randomBlob(3000)
	seed(t, a, []blob{b, warm})
	// The client's deadline only stops a hang; castd must answer first.
	const clientLimit = 60 * time.Second

	// A remote that cannot answer keeps its own code: UNAVAILABLE, or
	// DEADLINE_EXCEEDED for castd's own timeout on a silent remote (the
	// client's deadline is far off; took < clientLimit tells them apart).
	unavailable := []codes.Code{codes.Unavailable}
	silent := []codes.Code{codes.Unavailable, codes.DeadlineExceeded}
	tests := []struct {
		name, why string
		mode      faultproxy.Mode
		connected bool // the fault hits a live connection
		codes     []codes.Code
	}{
		{name: "down", why: "a remote that resets every connection is unavailable, not a miss", mode: faultproxy.Down(), codes: unavailable},
		{name: "down, connected", why: "a remote whose live connection is cut and that then resets is unavailable, not a miss", mode: faultproxy.Down(), connected: true, codes: unavailable},
		{name: "stall", why: "a remote that never answers is unavailable after castd's own timeouts, not a hang", mode: faultproxy.Stall(), codes: silent},
		{name: "stall, connected", why: "a remote whose live connection goes silent is unavailable after castd's own timeouts, not a hang", mode: faultproxy.Stall(), connected: true, codes: silent},
		{name: "corrupt", why: "a remote whose every answer is damaged on the way yields an error, never wrong bytes and never a miss",
			mode: faultproxy.Corrupt(1.0/1024, 2), connected: true, codes: []codes.Code{codes.DataLoss, codes.Unavailable, codes.Internal}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			proxy.SetMode(faultproxy.Pass())
			ws, conn := faultWorkstation(t, "grpc://"+proxy.Addr())
			defer ws.kill9()
			if tc.connected {
				connect(t, conn, warm)
			}
			proxy.SetMode(tc.mode)
			defer proxy.SetMode(faultproxy.Pass())
			for _, call := range []struct {
				name string
				read func() error
			}{
				{"ByteStream Read", func() error { _, err := readBlob(ctxFor(t, clientLimit), conn, b.d); return err }},
				{"BatchReadBlobs", func() error { _, err := instanceRead(ctxFor(t, clientLimit), conn, "", b.d); return err }},
			} {
				start := time.Now()
				err := call.read()
				took := time.Since(start)
				if !slices.Contains(tc.codes, status.Code(err)) || took >= clientLimit || !strings.Contains(status.Convert(err).Message(), proxy.Addr()) {
					t.Errorf("%s with the only remote %s: after %v: %v; want %v naming %s before the client's %v deadline", call.name, tc.mode, took.Round(time.Millisecond), err, tc.codes, proxy.Addr(), clientLimit)
				} else {
					t.Logf("%s: after %v: %v", call.name, took.Round(time.Millisecond), err)
				}
			}
		})
	}
}

// String names a fault mode in logs.
func (m faultMode) String() string { return fmt.Sprintf("%s (%s)", m.name, m.mode) }

func TestFaultMidStream(t *testing.T) {
	t.Log("a first remote that stalls or is cut in the middle of streaming a large blob neither holds the read nor corrupts it")
	a, b := startPlainUpstream(t), startPlainUpstream(t)
	proxy, err := faultproxy.New(a.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	// Large enough that 3 MiB into it the read is well under way: past
	// A's first 1 MiB messages, so the fault hits an open stream.
	const midway = 3 << 20
	ctx := ctxFor(t, 2*time.Minute)
	var big []blob
	for range 4 {
		bl := randomBlob(8<<20 + 4097)
		for _, u := range []*upstream{a, b} {
			if err := bytestreamWrite(ctx, u.conn(t), bl); err != nil {
				t.Fatal(err)
			}
		}
		big = append(big, bl)
	}
	// castd's stream idle timeout is 60 s; the client waits longer so that
	// castd's own bound is what ends a read from the only remote.
	const clientLimit = 90 * time.Second

	tests := []struct {
		name, why string
		mode      faultproxy.Mode
		onlyA     bool
		codes     []codes.Code // nil: the read must succeed, continued from B
	}{
		{name: "stall midway, second remote healthy", why: "the stalled stream is cut after castd's stream stall delay (5 s) and finished from B at the same offset, exact",
			mode: faultproxy.Stall().After(midway)},
		{name: "cut midway, second remote healthy", why: "the broken stream is finished from B at the same offset, exact",
			mode: faultproxy.Down().After(midway)},
		{name: "stall midway, only remote", why: "a silent stream ends in a clear error, not a hang",
			mode: faultproxy.Stall().After(midway), onlyA: true, codes: []codes.Code{codes.Unavailable, codes.DeadlineExceeded}},
		{name: "cut midway, only remote", why: "a cut stream from a remote that then resets everything is UNAVAILABLE",
			mode: faultproxy.Down().After(midway), onlyA: true, codes: []codes.Code{codes.Unavailable}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			bl := big[i]
			urls := []string{"grpc://" + proxy.Addr(), b.url}
			limit := readCallLimit
			if tc.onlyA {
				urls, limit = urls[:1], clientLimit
			}
			ws, conn := faultWorkstation(t, urls...)
			defer ws.kill9()
			proxy.SetMode(tc.mode)
			defer proxy.SetMode(faultproxy.Pass())
			start := time.Now()
			got, err := readBlob(ctxFor(t, limit), conn, bl.d)
			took := time.Since(start).Round(time.Millisecond)
			st := proxy.Stats()
			switch {
			case st.ToClient < midway:
				t.Fatalf("A sent only %d bytes; the fault did not hit the stream midway", st.ToClient)
			case tc.codes == nil && (err != nil || !bytes.Equal(got, bl.data)):
				t.Errorf("ByteStream Read of %d bytes with A %s: after %v: %d bytes, %v; want them exact within %v", len(bl.data), tc.mode, took, len(got), err, limit)
			case tc.codes == nil && !strings.Contains(ws.logs.String(), "resumed from the next tier"):
				t.Errorf("ByteStream Read with A %s: exact after %v, but castd did not log resuming A's stream from B", tc.mode, took)
			case tc.codes != nil && (!slices.Contains(tc.codes, status.Code(err)) || !strings.Contains(status.Convert(err).Message(), proxy.Addr())):
				t.Errorf("ByteStream Read with the only remote %s: after %v: %d bytes, %v; want %v naming %s", tc.mode, took, len(got), err, tc.codes, proxy.Addr())
			default:
				t.Logf("after %v: %d bytes, %v", took, len(got), err)
			}
		})
	}
}
