package grpcclient_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"

	"github.com/castd/castd/pkg/store/disk"
	"github.com/castd/castd/pkg/store/grpcclient"
)

func TestConsumerVerifiesSkipsTheStreamHash(t *testing.T) {
	const size = 3<<20 + 1 // above the batch limit: a ByteStream read
	corrupt := startServer(t, serverConfig{wrap: func(c store.CAS) store.CAS { return store.WithGenericFastPaths(corruptingCAS{c}) }})
	tests := []struct {
		name, why string
		server    *testServer
		hint      store.GetHint
		want      codes.Code
	}{
		{"hashed by default", "a plain Get checks the bytes against the digest before the last chunk",
			corrupt, store.GetHint{}, codes.DataLoss},
		{"left to the consumer", "with the ConsumerVerifies hint the stream is not hashed: the store that reads it will",
			corrupt, store.GetHint{ConsumerVerifies: true}, codes.OK},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			b, _ := randomBlob(uint64(40+i), size)
			d := put(t, tc.server.mem, b)
			r := dial(t, grpcclient.Config{URL: "grpc://" + tc.server.addr, Name: "remote.example"})
			rc, err := r.CAS().GetWith(context.Background(), d, 0, tc.hint)
			if err == nil {
				_, err = io.ReadAll(rc)
				rc.Close()
			}
			if status.Code(err) != tc.want {
				t.Fatalf("read = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestFanoutRejectsCorruptStreamFromRealRemote(t *testing.T) {
	t.Log("the fan-out asks remotes not to hash streams it stores; the local store still refuses bad bytes: the reader that was handed them gets DATA_LOSS before the last chunk, and the next read the next remote's copy")
	const size = 3<<20 + 1
	bad := startServer(t, serverConfig{wrap: func(c store.CAS) store.CAS { return store.WithGenericFastPaths(corruptingCAS{c}) }})
	good := startServer(t, serverConfig{})
	b, _ := randomBlob(50, size)
	d := put(t, bad.mem, b)
	put(t, good.mem, b)
	local, err := disk.Open(t.TempDir(), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	counters := fanout.NewCounters()
	cas := fanout.NewCAS(local, []fanout.Tier{
		{Name: "bad.example", CAS: dial(t, grpcclient.Config{URL: "grpc://" + bad.addr, Name: "bad.example"}).CAS()},
		{Name: "good.example", CAS: dial(t, grpcclient.Config{URL: "grpc://" + good.addr, Name: "good.example"}).CAS()},
	}, fanout.Options{Counters: counters, FailoverDelay: time.Hour}) // no stall cut-off or hedge: the bad remote must serve the first read however slow the machine
	read := func() ([]byte, error) {
		rc, err := cas.Get(context.Background(), d, 0)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	got, err := read()
	if status.Code(err) != codes.DataLoss || len(got) >= size {
		t.Fatalf("first read: %d bytes, %v; want DATA_LOSS before the whole blob", len(got), err)
	}
	got, err = read()
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("second read: %d bytes, %v; want the good remote's copy", len(got), err)
	}
	stored, err := store.ReadBytes(context.Background(), local, d)
	if err != nil || !bytes.Equal(stored, b) {
		t.Fatalf("local copy: %d bytes, %v; want the verified blob", len(stored), err)
	}
	if n := counters.Snapshot().BadData["bad.example"]; n != 1 {
		t.Fatalf("bad data counted %v times for bad.example; want 1", n)
	}
}
