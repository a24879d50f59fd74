package casdir_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store/casdir"
)

// BenchmarkOpen is the store's share of a buildbox-casd start (BuildStream
// starts one per command): an existing directory with a usage count.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	open(b, dir, casdir.Options{}).Close()
	opts := casdir.Options{QuotaHigh: 1 << 40, ProtectSessionBlobs: true}
	for b.Loop() {
		s, err := casdir.Open(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkPutSmall stores distinct 4 KiB blobs, as a CaptureTree of a
// source tree does.
func BenchmarkPutSmall(b *testing.B) {
	s := open(b, b.TempDir(), casdir.Options{QuotaHigh: 1 << 40, ProtectSessionBlobs: true})
	i := 0
	for b.Loop() {
		data, d := blob(i, 4096)
		i++
		if err := s.Put(context.Background(), d, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFindMissing asks for 512 present blobs, BuildStream's batch:
// blobs of the running (protecting) session, as BuildStream asks again
// about what it stored, and blobs of a store without sessions, each use
// rewriting the blob's time.
func BenchmarkFindMissing(b *testing.B) {
	for _, protect := range []bool{true, false} {
		b.Run(map[bool]string{true: "session blobs", false: "no session"}[protect], func(b *testing.B) {
			s := open(b, b.TempDir(), casdir.Options{ProtectSessionBlobs: protect})
			ds := make([]digest.Digest, 0, 512)
			for i := range 512 {
				data, _ := blob(i, 1000)
				ds = append(ds, put(b, s, data))
			}
			for b.Loop() {
				if m, err := s.FindMissing(context.Background(), ds); err != nil || len(m) != 0 {
					b.Fatalf("FindMissing: %d missing, %v", len(m), err)
				}
			}
		})
	}
}
