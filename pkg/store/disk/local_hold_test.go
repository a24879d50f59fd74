package disk_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/digest"

	"github.com/castd/castd/pkg/store/disk"
)

func TestLocalHeldBlobIsNotEvicted(t *testing.T) {
	// Why: a blob the write-back queue still has to push must survive
	// eviction; the unheld ones go instead, oldest first.
	const size = 20 << 10
	reg := prometheus.NewRegistry()
	l := openStore(t, t.TempDir(), disk.Options{QuotaBytes: 10 * size, LowWatermark: 0.5, Registerer: reg})
	waitReady(t, l)
	var ds []digest.Digest
	for i := range 10 {
		b, _ := blob(size, uint64(i))
		ds = append(ds, put(t, l, b))
	}
	l.Hold(ds[0])
	l.Hold(ds[1])
	l.Hold(ds[1]) // holds count: one Release leaves it held
	l.Release(ds[1])
	b, _ := blob(size, 10)
	ds = append(ds, put(t, l, b))
	missing, err := l.FindMissing(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	if want := ds[2:8]; !sameSet(missing, want) {
		t.Fatalf("evicted %v, want %v (the held 0 and 1 kept)", missing, want)
	}
	if got := l.Stats().HeldBytes; got != 2*size {
		t.Errorf("HeldBytes = %d, want %d", got, 2*size)
	}
	if v := testutil.MetricValue(t, reg, "castd_store_held_bytes"); v != 2*size {
		t.Errorf("castd_store_held_bytes = %v, want %d", v, 2*size)
	}
}

func TestLocalHeldBlobsFillingQuotaRefuseWrites(t *testing.T) {
	// Why: when held blobs alone fill the quota, a write must fail with a
	// code clients do not retry, naming the queue, and evict nothing; once
	// the holds are released, eviction makes room again.
	const size = 20 << 10
	l := openStore(t, t.TempDir(), disk.Options{QuotaBytes: 4 * size, LowWatermark: 0.5})
	waitReady(t, l)
	var held []digest.Digest
	for i := range 4 {
		b, d := blob(size, uint64(i))
		l.Hold(d) // held before it is stored, as the queue does
		put(t, l, b)
		held = append(held, d)
	}
	b, d := blob(size, 99)
	err := l.Put(context.Background(), d, bytes.NewReader(b))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "write-back queue") {
		t.Fatalf("Put over held quota = %v, want FAILED_PRECONDITION naming the write-back queue", err)
	}
	if missing, _ := l.FindMissing(context.Background(), held); len(missing) != 0 {
		t.Fatalf("held blobs evicted: %v", missing)
	}
	for _, h := range held {
		l.Release(h)
	}
	if got := l.HeldBytes(); got != 0 {
		t.Fatalf("HeldBytes after release = %d, want 0", got)
	}
	if err := l.Put(context.Background(), d, bytes.NewReader(b)); err != nil {
		t.Fatalf("Put after release: %v", err)
	}
}
