package proxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/castd/castd/internal/testutil"
	"github.com/castd/castd/pkg/asset"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/policy"
	"github.com/castd/castd/pkg/proxy"
	"github.com/castd/castd/pkg/store"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/castd/castd/pkg/grpcservers"
	"github.com/castd/castd/pkg/store/disk"
)

// upstreamServer is an in-process REAPI server over a memory store on a
// loopback TCP port, standing in for a remote cache.
type upstreamServer struct {
	mem    *store.Memory
	url    string
	assets asset.Index // its Remote Asset index
	reg    *prometheus.Registry
}

func newUpstream(t *testing.T) *upstreamServer {
	t.Helper()
	return newUpstreamWith(t, grpcservers.Options{})
}

// newUpstreamWith is newUpstream whose REAPI services are tuned by o (its
// Registerer is the upstream's own).
func newUpstreamWith(t *testing.T, o grpcservers.Options) *upstreamServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	idx := asset.NewLocalIndex(testutil.NewRecords(), asset.LocalOptions{})
	mem := store.NewMemory()
	srv := testutil.StartREAPI(t, testutil.REAPIOptions{
		CAS: mem, ActionCache: func(string) store.ActionCache { return mem },
		Server: o,
		Register: func(s *grpc.Server) {
			asset.NewServer(func(context.Context, string) (asset.Index, store.CAS, error) { return idx, mem, nil }, asset.Options{}).Register(s)
		},
	})
	return &upstreamServer{mem: mem, url: srv.URL(), assets: idx, reg: reg}
}

// calls counts the requests the upstream answered for a method name
// suffix such as "BatchReadBlobs" or "Read".
func (u *upstreamServer) calls(t *testing.T, method string) int {
	t.Helper()
	mfs, err := u.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() != "castd_grpc_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" && strings.HasSuffix(l.GetValue(), "/"+method) {
					n += int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return n
}

func (u *upstreamServer) has(d digest.Digest) bool {
	m, err := u.mem.FindMissing(context.Background(), []digest.Digest{d})
	return err == nil && len(m) == 0
}

// putBlob stores random bytes of size n in cas and returns them.
func putBlob(t *testing.T, cas store.CAS, n int) ([]byte, digest.Digest) {
	t.Helper()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	d := digest.OfBytes(data)
	if err := cas.Put(context.Background(), d, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return data, d
}

// newSet opens a store in a temp dir and a Set over it for the user
// config text, both closed when t ends.
func newSet(t *testing.T, dir, config string) (*proxy.Set, *disk.Store) {
	t.Helper()
	return newSetWith(t, dir, config, proxy.Options{})
}

// newSetWith is newSet with opts.
func newSetWith(t *testing.T, dir, config string, opts proxy.Options) (*proxy.Set, *disk.Store) {
	t.Helper()
	set, local := openSet(t, dir, config, opts)
	t.Cleanup(func() {
		set.Close(t.Context())
		local.Close()
	})
	return set, local
}

// openSet opens the store in dir and a Set over it for config with opts;
// the caller closes both.
func openSet(t *testing.T, dir, config string, opts proxy.Options) (*proxy.Set, *disk.Store) {
	t.Helper()
	cfg, err := policy.ParseUser(filepath.Join(dir, "castd.yaml"), []byte(config))
	if err != nil {
		t.Fatal(err)
	}
	local, err := disk.Open(filepath.Join(dir, "store"), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	<-local.Ready()
	set, err := proxy.New(context.Background(), cfg, local, opts)
	if err != nil {
		local.Close()
		t.Fatal(err)
	}
	return set, local
}
