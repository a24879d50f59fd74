package writeback

import (
	"strings"
	"time"

	assetpb "github.com/bazelbuild/remote-apis/build/bazel/remote/asset/v1"

	"github.com/castd/castd/pkg/asset"
)

// savedAsset is a Remote Asset association as persisted in an entry.
type savedAsset struct {
	Kind       asset.Kind  `json:"k"`
	URIs       []string    `json:"u"`
	Qualifiers [][2]string `json:"q,omitempty"`
	ExpireAt   time.Time   `json:"e,omitzero"`
}

func saveAsset(a asset.Asset, ref asset.Ref) *savedAsset {
	s := &savedAsset{Kind: a.Kind, URIs: a.URIs, ExpireAt: ref.ExpireAt}
	for _, q := range a.Qualifiers {
		s.Qualifiers = append(s.Qualifiers, [2]string{q.GetName(), q.GetValue()})
	}
	return s
}

// restore returns the association of e.
func (s *savedAsset) restore(e *Entry) (asset.Asset, asset.Ref) {
	a := asset.Asset{Kind: s.Kind, URIs: s.URIs, Func: e.Digest.Func}
	for _, q := range s.Qualifiers {
		a.Qualifiers = append(a.Qualifiers, &assetpb.Qualifier{Name: q[0], Value: q[1]})
	}
	return a, asset.Ref{Digest: e.Digest, ExpireAt: s.ExpireAt}
}

// key identifies the association for deduplication.
func (s *savedAsset) key() string {
	var b strings.Builder
	b.WriteByte(byte(s.Kind))
	for _, u := range s.URIs {
		b.WriteString(u)
		b.WriteByte(0)
	}
	for _, q := range s.Qualifiers {
		b.WriteString(q[0] + "=" + q[1])
		b.WriteByte(0)
	}
	return b.String()
}
