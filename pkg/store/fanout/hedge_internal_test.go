package fanout

import (
	"testing"
	"time"
)

func TestHedgeDelay(t *testing.T) {
	const failover = time.Second
	ms := time.Millisecond
	for _, tc := range []struct {
		name, why  string
		this, next time.Duration
		want       time.Duration
	}{
		{"never answered", "while no tier answered yet, a tier is given a quarter of the failover delay", 0, 0, failover / 4},
		{"never answered, next known", "a tier with no answer yet is given a few times what the next usually takes", 0, 20 * ms, 80 * ms},
		{"far in front of near", "a tier 4× slower than the next, and by 5 ms, is asked together with it", 40 * ms, ms, 0},
		{"next unknown", "without the next tier's time, the tier gets a few times its own", 40 * ms, 0, 160 * ms},
		{"slower but close", "4× slower but by less than 5 ms is not worth a second call at once", 4 * ms, ms, 16 * ms},
		{"alike", "tiers of similar speed: the next is asked after a few times the usual answer, at least 10 ms", 2 * ms, ms, 10 * ms},
		{"slow tier", "a few times the usual answer never exceeds the failover delay", 400 * ms, 300 * ms, failover},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Log(tc.why)
			if got := hedgeDelay(tc.this, tc.next, failover); got != tc.want {
				t.Errorf("hedgeDelay(%v, %v) = %v; want %v", tc.this, tc.next, got, tc.want)
			}
		})
	}
}

func TestLatencyAverage(t *testing.T) {
	t.Log("the first answer sets the average; each later one moves it by an eighth of the difference")
	var l latency
	l.observe(80 * time.Millisecond)
	l.observe(16 * time.Millisecond)
	if got, want := l.get(), 72*time.Millisecond; got != want {
		t.Errorf("average = %v; want %v", got, want)
	}
}
