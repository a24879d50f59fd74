package main

import (
	"context"
	"io"
	"sync"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
)

// relayDrain bounds how long bst waits, once the operation is done, for
// the log streams to deliver their last bytes; what is missing then is
// printed from the result's blobs.
const relayDrain = 10 * time.Second

// outputMu serialises bst's own writes to its stdout and stderr with the
// relayed action output.
var outputMu sync.Mutex

// lockedWriter writes to w under outputMu.
type lockedWriter struct{ w io.Writer }

func (l lockedWriter) Write(p []byte) (int, error) {
	outputMu.Lock()
	defer outputMu.Unlock()
	return l.w.Write(p)
}

// relayed is how many bytes of the action's stdout and stderr bst has
// already printed from the log streams.
type relayed struct{ stdout, stderr int64 }

// logRelay copies an operation's log streams (stdout_stream_name and
// stderr_stream_name, read with ByteStream) to bst's stdout and stderr
// while the action runs. Not safe for concurrent use; its goroutines
// report only through counts read after they end.
type logRelay struct {
	bs       bspb.ByteStreamClient
	ctx      context.Context
	cancel   context.CancelFunc
	out, err io.Writer
	started  bool
	wg       sync.WaitGroup
	n        relayed
}

// newLogRelay returns a relay writing to bst's stdout and stderr.
func (a *app) newLogRelay(ctx context.Context) *logRelay {
	ctx, cancel := context.WithCancel(ctx)
	return &logRelay{bs: bspb.NewByteStreamClient(a.conn.cc), ctx: ctx, cancel: cancel,
		out: lockedWriter{a.stdout}, err: lockedWriter{a.stderr}}
}

// start begins relaying the streams md names, once per run.
func (r *logRelay) start(md *repb.ExecuteOperationMetadata) {
	if r.started || (md.GetStdoutStreamName() == "" && md.GetStderrStreamName() == "") {
		return
	}
	r.started = true
	for _, s := range []struct {
		name string
		w    io.Writer
		n    *int64
	}{{md.GetStdoutStreamName(), r.out, &r.n.stdout}, {md.GetStderrStreamName(), r.err, &r.n.stderr}} {
		if s.name != "" {
			r.wg.Add(1)
			go r.copy(s.name, s.w, s.n)
		}
	}
}

// copy writes the stream called name to w as data arrives, counting the
// bytes in *n. Any end (complete, truncated, broken) just stops it: the
// rest is printed from the result's blob.
func (r *logRelay) copy(name string, w io.Writer, n *int64) {
	defer r.wg.Done()
	stream, err := r.bs.Read(r.ctx, &bspb.ReadRequest{ResourceName: name})
	if err != nil {
		return
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return
		}
		if _, err := w.Write(resp.GetData()); err != nil {
			return
		}
		*n += int64(len(resp.GetData()))
	}
}

// wait lets the streams finish after the operation is done (at most
// relayDrain) and returns what they printed.
func (r *logRelay) wait() relayed {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	timer := time.NewTimer(relayDrain)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	}
	return r.stop()
}

// stop ends the streams at once and returns what they printed.
func (r *logRelay) stop() relayed {
	r.cancel()
	r.wg.Wait()
	return r.n
}
