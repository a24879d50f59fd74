package fanout

import (
	"github.com/castd/castd/pkg/digest"
	"github.com/castd/castd/pkg/store"
)

// Waiting reports how many Gets wait on the merged fetch of d in c, a
// NewCAS result, so tests can order events without sleeping.
func Waiting(c store.CAS, d digest.Digest) int {
	return c.(*fanoutCAS).flights.waiting(d)
}
