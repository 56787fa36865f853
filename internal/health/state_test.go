package health

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestVerdictThresholds(t *testing.T) {
	const P, F = true, false
	tests := []struct {
		name                string
		start               bool
		healthy, unhealthy  int
		probes              []bool
		wantHealthy         []bool // after each probe
		wantFlips           []int  // indexes of probes that flip
		wantSucc, wantFails int
	}{
		{
			name: "healthy stays up until unhealthyThreshold failures in a row", start: true, healthy: 1, unhealthy: 3,
			probes:      []bool{F, F, P, F, F, F, F},
			wantHealthy: []bool{true, true, true, true, true, false, false},
			wantFlips:   []int{5}, wantFails: 4,
		},
		{
			name: "one pass brings back with healthyThreshold 1", start: false, healthy: 1, unhealthy: 3,
			probes:      []bool{F, P, P},
			wantHealthy: []bool{false, true, true},
			wantFlips:   []int{1}, wantSucc: 2,
		},
		{
			name: "healthyThreshold 3 needs three passes in a row", start: false, healthy: 3, unhealthy: 1,
			probes:      []bool{P, P, F, P, P, P},
			wantHealthy: []bool{false, false, false, false, false, true},
			wantFlips:   []int{5}, wantSucc: 3,
		},
		{
			name: "unhealthyThreshold 1 flips on the first failure", start: true, healthy: 1, unhealthy: 1,
			probes:      []bool{F, P, F},
			wantHealthy: []bool{false, true, false},
			wantFlips:   []int{0, 1, 2}, wantFails: 1,
		},
		{
			name: "unhealthyThreshold 2 with flapping never flips", start: true, healthy: 1, unhealthy: 2,
			probes:      []bool{F, P, F, P, F},
			wantHealthy: []bool{true, true, true, true, true},
			wantFails:   1,
		},
		{
			name: "starting unhealthy, failures flip nothing", start: false, healthy: 1, unhealthy: 3,
			probes:      []bool{F, F, F, F},
			wantHealthy: []bool{false, false, false, false},
			wantFails:   4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := verdict{healthy: tt.start}
			var flips []int
			for i, pass := range tt.probes {
				if v.observe(pass, tt.healthy, tt.unhealthy) {
					flips = append(flips, i)
				}
				if v.healthy != tt.wantHealthy[i] {
					t.Errorf("after probe %d (%v): healthy %v, want %v", i, pass, v.healthy, tt.wantHealthy[i])
				}
			}
			if !equalInts(flips, tt.wantFlips) {
				t.Errorf("flips at %v, want %v", flips, tt.wantFlips)
			}
			if v.successes != tt.wantSucc || v.failures != tt.wantFails {
				t.Errorf("successes/failures %d/%d, want %d/%d", v.successes, v.failures, tt.wantSucc, tt.wantFails)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFirstDelay(t *testing.T) {
	const period = 10 * time.Second
	for _, tt := range []struct {
		r    float64
		want time.Duration
	}{
		{0, 0}, {0.25, 2500 * time.Millisecond}, {1, period}, {-3, 0}, {7, period}, {math.NaN(), 0},
	} {
		if got := firstDelay(period, tt.r); got != tt.want {
			t.Errorf("firstDelay(%v, %v) = %v, want %v", period, tt.r, got, tt.want)
		}
	}
	// Over many draws from a seeded source, the bounds hold.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		r := rng.Float64()
		if d := firstDelay(period, r); d < 0 || d >= period {
			t.Fatalf("firstDelay(%v) = %v, outside [0, %v)", r, d, period)
		}
	}
}

// TestNextDue: a target is next due one period after its last due time,
// whatever its probe's delay, so that a prober that stalls keeps the
// phases it spread its targets over and probes each once a period; one
// that falls behind catches up at most twice as fast.
func TestNextDue(t *testing.T) {
	const period = 10 * time.Second
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, tt := range []struct {
		name   string
		start  time.Duration // after the due time t0
		spread bool
		r      float64
		want   time.Duration
	}{
		{name: "on time", want: period},
		{name: "late", start: 3 * time.Second, want: period},
		{name: "later than half a period", start: 8 * time.Second, want: 13 * time.Second},
		{name: "taken over, spread to the earliest", spread: true, r: 1, want: period / 2},
		{name: "taken over, spread to the latest", spread: true, r: 0, want: period},
		{name: "taken over, late", start: time.Second, spread: true, r: 0.5, want: time.Second + 7500*time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextDue(t0, at(tt.start), period, tt.spread, tt.r); !got.Equal(at(tt.want)) {
				t.Errorf("nextDue = due + %v, want due + %v", got.Sub(t0), tt.want)
			}
		})
	}
	// A stall of 3s: the targets due in it all start at its end, and
	// each is next due at its own phase again.
	stallEnd := at(3 * time.Second)
	for _, phase := range []time.Duration{0, time.Second, 2 * time.Second} {
		if got, want := nextDue(at(phase), stallEnd, period, false, 0), at(phase+period); !got.Equal(want) {
			t.Errorf("after a stall, the target of phase %v is next due at +%v, want +%v", phase, got.Sub(t0), want.Sub(t0))
		}
	}
}

// TestProberSchedulesFromItsRandSource checks that the prober draws a new
// target's first delay from its rand source, and schedules the next probe
// a period after the last was due.
func TestProberSchedulesFromItsRandSource(t *testing.T) {
	const period = 10 * time.Second
	for _, tt := range []struct {
		r         float64
		wantFirst time.Duration
	}{
		{r: 0, wantFirst: 0},
		{r: 0.5, wantFirst: 5 * time.Second},
		{r: 0.999, wantFirst: 9990 * time.Millisecond},
	} {
		p := NewProber(Options{})
		p.rand = func() float64 { return tt.r }
		before := time.Now()
		p.Set(nsName("ns/a"), []Target{{ID: "x", Address: "10.0.0.1", Spec: ProbeSpec{Kind: ProbeTCP, Port: 80, Period: period}}})
		after := time.Now()
		tg := p.owners[nsName("ns/a")]["x"]
		if tg.dueAt.Before(before.Add(tt.wantFirst)) || tg.dueAt.After(after.Add(tt.wantFirst)) {
			t.Errorf("r=%v: first probe due %v after Set, want %v", tt.r, tg.dueAt.Sub(before), tt.wantFirst)
		}
		if p.due.Len() != 1 || p.due[0] != tg {
			t.Fatal("the target is not in the due queue")
		}
		heap.Pop(&p.due) // as the scheduler does before a probe
		due := tg.dueAt
		p.finish(tg, due.Add(time.Second), Result{}) // started a second late
		if got := tg.dueAt.Sub(due); got != period {
			t.Errorf("r=%v: next probe due %v after the last was, want %v", tt.r, got, period)
		}
	}
}

func TestVerdictDecisive(t *testing.T) {
	cases := []struct {
		v          verdict
		hT, uT     int
		want       bool
		whatItIsOf string
	}{
		{verdict{healthy: true}, 1, 3, false, "healthy, no failure, threshold 3"},
		{verdict{healthy: true, failures: 1}, 1, 3, false, "healthy, one failure, threshold 3"},
		{verdict{healthy: true, failures: 2}, 1, 3, true, "healthy, two failures, threshold 3"},
		{verdict{healthy: true}, 1, 1, true, "healthy, threshold 1"},
		{verdict{}, 1, 3, true, "unhealthy, healthy threshold 1"},
		{verdict{successes: 1}, 3, 3, false, "unhealthy, one pass, healthy threshold 3"},
		{verdict{successes: 2}, 3, 3, true, "unhealthy, two passes, healthy threshold 3"},
	}
	for _, c := range cases {
		if got := c.v.decisive(c.hT, c.uT); got != c.want {
			t.Errorf("%s: decisive = %v, want %v", c.whatItIsOf, got, c.want)
		}
	}
}
