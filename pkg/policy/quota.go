package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// quotaForms is the list of accepted quota spellings, quoted in errors.
const quotaForms = `a byte count (1000), a size with a K, M, G or T suffix (512K, 20G, 1.5T; powers of 1024), or a percentage of the filesystem (50%)`

// Quota is a size either in bytes or as a percentage of the filesystem that
// holds the store. Exactly one of Bytes and Percent is non-zero in a parsed
// quota; the zero Quota means "not set".
type Quota struct {
	Bytes   int64   `json:"bytes,omitempty"`
	Percent float64 `json:"percent,omitempty"`
}

// ParseQuota parses "1000", "512K", "20G", "1.5T" (binary multiples, case
// insensitive, an optional trailing "B" or "iB" is accepted) or "50%". The
// value must be positive; percentages must be at most 100.
func ParseQuota(s string) (Quota, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("invalid size %q: expected %s", s, quotaForms)
	if s == "" {
		return Quota{}, bad
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || f <= 0 || f > 100 {
			return Quota{}, fmt.Errorf("invalid percentage %q: expected a number above 0 and at most 100 followed by %%", s)
		}
		return Quota{Percent: f}, nil
	}
	num, mult := splitSizeSuffix(s)
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || mult == 0 {
		return Quota{}, bad
	}
	b := f * float64(mult)
	if b >= math.MaxInt64 || b < 1 {
		return Quota{}, bad
	}
	return Quota{Bytes: int64(b)}, nil
}

// ParseReserve parses cache.reserved-disk-space: the forms ParseQuota
// accepts, and zero in any of them ("0", "0%", "0G"), which means no
// reserve and gives the zero Quota.
func ParseReserve(s string) (Quota, error) {
	t := strings.TrimSpace(s)
	num, mult := splitSizeSuffix(strings.TrimSuffix(t, "%"))
	if f, err := strconv.ParseFloat(num, 64); err == nil && f == 0 && (mult != 0 || strings.HasSuffix(t, "%")) {
		return Quota{}, nil
	}
	return ParseQuota(s)
}

// splitSizeSuffix separates "1.5T" into "1.5" and 1<<40. An unknown suffix
// gives a zero multiplier.
func splitSizeSuffix(s string) (string, int64) {
	u := strings.ToUpper(s)
	u = strings.TrimSuffix(u, "IB")
	u = strings.TrimSuffix(u, "B")
	if u == "" {
		return s, 0
	}
	mults := map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
	last := u[len(u)-1]
	if last >= '0' && last <= '9' || last == '.' {
		return u, 1
	}
	if m, ok := mults[last]; ok {
		return u[:len(u)-1], m
	}
	return u, 0
}

// Of returns the quota in bytes for a filesystem of total size fsBytes.
func (q Quota) Of(fsBytes int64) int64 {
	if q.Percent > 0 {
		return int64(float64(fsBytes) * q.Percent / 100)
	}
	return q.Bytes
}

// String formats the quota in the shortest form ParseQuota accepts.
func (q Quota) String() string {
	if q.Percent > 0 {
		return strconv.FormatFloat(q.Percent, 'f', -1, 64) + "%"
	}
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if q.Bytes >= u.size && q.Bytes%u.size == 0 {
			return strconv.FormatInt(q.Bytes/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(q.Bytes, 10)
}
