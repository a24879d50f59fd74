package grpcservers_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/grpcservers"
)

const (
	doneLog = "ci/operations/done/streams/stdout"
	liveLog = "ci/operations/live/streams/stdout"
)

// fakeLogs serves one complete log and one live log fed through a pipe.
type fakeLogs struct {
	live     *io.PipeWriter
	liveR    *io.PipeReader
	closed   chan struct{} // closed when the live reader is closed
	closeOne sync.Once
}

func newFakeLogs() *fakeLogs {
	r, w := io.Pipe()
	return &fakeLogs{live: w, liveR: r, closed: make(chan struct{})}
}

func (f *fakeLogs) OpenLog(name string, offset int64) (io.ReadCloser, bool, error) {
	switch {
	case name == doneLog:
		return io.NopCloser(strings.NewReader("hello world"[offset:])), true, nil
	case name == liveLog:
		return f, true, nil
	case strings.Contains(name, "/streams/"):
		return nil, true, status.Error(codes.NotFound, "no such log stream")
	}
	return nil, false, nil
}

func (f *fakeLogs) Read(p []byte) (int, error) { return f.liveR.Read(p) }

func (f *fakeLogs) Close() error {
	f.closeOne.Do(func() { close(f.closed) })
	return f.liveR.Close()
}

// readAll reads name to its end and returns the data and the final status.
func readAll(t *testing.T, e *env, req *bspb.ReadRequest) (string, error) {
	t.Helper()
	stream, err := e.bs.Read(testutil.Context(t), req)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return b.String(), nil
		}
		if err != nil {
			return b.String(), err
		}
		b.Write(resp.GetData())
	}
}

func TestByteStreamReadLogStreams(t *testing.T) {
	e := newEnv(t, grpcservers.Options{Logs: newFakeLogs()})
	blob := e.put(t, []byte("a blob"))
	tests := []struct {
		name string
		why  string
		req  *bspb.ReadRequest
		want string
		code codes.Code
	}{
		{"log stream", "a log stream name goes to the provider",
			&bspb.ReadRequest{ResourceName: doneLog}, "hello world", codes.OK},
		{"read offset", "read_offset is handed to the provider",
			&bspb.ReadRequest{ResourceName: doneLog, ReadOffset: 6}, "world", codes.OK},
		{"read limit", "read_limit bounds what is sent",
			&bspb.ReadRequest{ResourceName: doneLog, ReadOffset: 6, ReadLimit: 3}, "wor", codes.OK},
		{"negative limit", "a negative read_limit is OUT_OF_RANGE as for blobs",
			&bspb.ReadRequest{ResourceName: doneLog, ReadLimit: -1}, "", codes.OutOfRange},
		{"unknown stream", "a log stream the provider does not know is NOT_FOUND",
			&bspb.ReadRequest{ResourceName: "ci/operations/gone/streams/stderr"}, "", codes.NotFound},
		{"blob", "names the provider does not claim are read as blobs",
			&bspb.ReadRequest{ResourceName: digest.ReadResourceName("ci", blob)}, "a blob", codes.OK},
		{"neither", "a name that is neither stays INVALID_ARGUMENT",
			&bspb.ReadRequest{ResourceName: "ci/whatever"}, "", codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			got, err := readAll(t, e, tc.req)
			if status.Code(err) != tc.code || got != tc.want {
				t.Errorf("read %q = %q, %v; want %q, %v", tc.req.GetResourceName(), got, err, tc.want, tc.code)
			}
		})
	}
	t.Run("log names are never blob names", func(t *testing.T) {
		t.Log("ParseReadResource must reject stream names so they cannot collide with blobs")
		if _, err := digest.ParseReadResource(doneLog); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ParseReadResource(%q) = %v, want INVALID_ARGUMENT", doneLog, err)
		}
	})
}

func TestByteStreamReadLiveLog(t *testing.T) {
	t.Log("data is sent as it is produced; a client that goes away closes the provider's reader")
	logs := newFakeLogs()
	e := newEnv(t, grpcservers.Options{Logs: logs})
	ctx, cancel := context.WithCancel(testutil.Context(t))
	stream, err := e.bs.Read(ctx, &bspb.ReadRequest{ResourceName: liveLog})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = logs.live.Write([]byte("first line\n")) }()
	resp, err := stream.Recv()
	if err != nil || string(resp.GetData()) != "first line\n" {
		t.Fatalf("first message %q, %v; want the first line while the stream is open", resp.GetData(), err)
	}
	cancel()
	<-logs.closed
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("after cancel: %v, want CANCELED", err)
	}
}
