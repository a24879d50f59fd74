package digest

import "sort"

// Set is an unordered set of digests. Tier code uses it to pass only the
// remainder of a FindMissing request to the next tier. Not safe for
// concurrent mutation.
type Set map[Digest]struct{}

// NewSet returns a set holding ds, with duplicates folded.
func NewSet(ds ...Digest) Set {
	s := make(Set, len(ds))
	for _, d := range ds {
		s[d] = struct{}{}
	}
	return s
}

// Add inserts d.
func (s Set) Add(d Digest) { s[d] = struct{}{} }

// Has reports whether d is in s.
func (s Set) Has(d Digest) bool { _, ok := s[d]; return ok }

// Difference returns the digests in s that are not in other.
func (s Set) Difference(other Set) Set {
	out := make(Set, len(s))
	for d := range s {
		if !other.Has(d) {
			out.Add(d)
		}
	}
	return out
}

// Sorted returns the members ordered by function, hash and size, for
// stable output.
func (s Set) Sorted() []Digest {
	out := make([]Digest, 0, len(s))
	for d := range s {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Func != out[j].Func {
			return out[i].Func < out[j].Func
		}
		if out[i].Hash != out[j].Hash {
			return out[i].Hash < out[j].Hash
		}
		return out[i].Size < out[j].Size
	})
	return out
}
