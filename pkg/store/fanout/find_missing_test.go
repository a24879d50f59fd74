package fanout_test

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/castd/castd/internal/defaults"
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
	"github.com/castd/castd/pkg/store/fanout"
)

func TestFindMissing(t *testing.T) {
	a, _ := blob("a")
	b, _ := blob("b")
	c, _ := blob("c")
	d, _ := blob("d")
	for _, tc := range []struct {
		name, why   string
		remotes     []remoteSpec
		wantMissing []digest.Digest
		wantAsked   [][]digest.Digest // per remote: the digests it was asked about
	}{{
		name:        "prunes",
		why:         "each remote is asked only about what the tiers before it lacked",
		remotes:     []remoteSpec{{name: "r1", has: []string{"b"}}, {name: "r2", has: []string{"c"}}},
		wantMissing: []digest.Digest{d},
		wantAsked:   [][]digest.Digest{{b, c, d}, {c, d}},
	}, {
		name:        "first remote down",
		why:         "a failing remote's digests stay unknown and go on to the next remote",
		remotes:     []remoteSpec{{name: "r1", down: true}, {name: "r2", has: []string{"b"}}},
		wantMissing: []digest.Digest{c, d},
		wantAsked:   [][]digest.Digest{{b, c, d}, {b, c, d}},
	}, {
		name:        "all remotes down",
		why:         "no tier saying present means missing, not an error: the client uploads",
		remotes:     []remoteSpec{{name: "r1", down: true}},
		wantMissing: []digest.Digest{b, c, d},
		wantAsked:   [][]digest.Digest{{b, c, d}},
	}, {
		name:      "all present",
		why:       "once nothing is unknown, later remotes are not asked",
		remotes:   []remoteSpec{{name: "r1", has: []string{"b", "c", "d"}}, {name: "r2"}},
		wantAsked: [][]digest.Digest{{b, c, d}, nil},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			f := newTestFanout(t, []string{"a"}, tc.remotes, fanout.Options{})
			req := []digest.Digest{a, b, c, d, b}
			orig := slices.Clone(req)
			missing, err := f.cas.FindMissing(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(req, orig) {
				t.Errorf("caller's slice changed: %v, was %v", req, orig)
			}
			if got, want := digest.NewSet(missing...).Sorted(), digest.NewSet(tc.wantMissing...).Sorted(); !slices.Equal(got, want) || len(missing) != len(want) {
				t.Errorf("missing %v, want %v (each once)", missing, want)
			}
			for i, r := range f.remotes {
				checkAsked(t, r, tc.wantAsked[i])
			}
		})
	}
}

// checkAsked checks that r got exactly one FindMissing for want (as a set),
// or none when want is nil.
func checkAsked(t *testing.T, r *countingCAS, want []digest.Digest) {
	t.Helper()
	reqs := r.requests()
	if want == nil {
		if len(reqs) != 0 {
			t.Errorf("%s asked %v, want not asked", r.name, reqs)
		}
		return
	}
	if len(reqs) != 1 || !slices.Equal(digest.NewSet(reqs[0]...).Sorted(), digest.NewSet(want...).Sorted()) {
		t.Errorf("%s asked %v, want one request for %v", r.name, reqs, want)
	}
}

func TestFindMissingLocalError(t *testing.T) {
	t.Log("a failing local store is an error labelled local, with its code kept")
	b, _ := blob("b")
	c := fanout.NewCAS(downCAS{}, []fanout.Tier{{Name: "r1", CAS: store.NewMemory()}}, fanout.Options{})
	_, err := c.FindMissing(context.Background(), []digest.Digest{b})
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "local: connection refused" {
		t.Errorf("FindMissing: %v, want UNAVAILABLE labelled local", err)
	}
}

func TestFindMissingExistenceCache(t *testing.T) {
	t.Log("a remote's positive answers are cached; its negative ones are asked again")
	b, _ := blob("b")
	d, _ := blob("d")
	f := newTestFanout(t, nil, []remoteSpec{{name: "r1", has: []string{"b"}, existenceTTL: defaults.ExistenceTTL}}, fanout.Options{})
	for range 2 {
		missing, err := f.cas.FindMissing(context.Background(), []digest.Digest{b, d})
		if err != nil || !slices.Equal(missing, []digest.Digest{d}) {
			t.Fatalf("FindMissing = %v, %v; want [%s]", missing, err, d)
		}
	}
	reqs := f.remotes[0].requests()
	if len(reqs) != 2 || len(reqs[1]) != 1 || reqs[1][0] != d {
		t.Errorf("remote requests %v, want the second to ask only about %s", reqs, d)
	}
}
