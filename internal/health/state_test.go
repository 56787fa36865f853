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

func TestJitter(t *testing.T) {
	const period = 10 * time.Second
	tests := []struct {
		r         float64
		wantFirst time.Duration
		wantNext  time.Duration
	}{
		{r: 0, wantFirst: 0, wantNext: 9 * time.Second},
		{r: 0.25, wantFirst: 2500 * time.Millisecond, wantNext: 9500 * time.Millisecond},
		{r: 0.5, wantFirst: 5 * time.Second, wantNext: 10 * time.Second},
		{r: 1, wantFirst: period, wantNext: 11 * time.Second},
		{r: -3, wantFirst: 0, wantNext: 9 * time.Second},
		{r: 7, wantFirst: period, wantNext: 11 * time.Second},
		{r: math.NaN(), wantFirst: 0, wantNext: 9 * time.Second},
	}
	for _, tt := range tests {
		if got := firstDelay(period, tt.r); got != tt.wantFirst {
			t.Errorf("firstDelay(%v, %v) = %v, want %v", period, tt.r, got, tt.wantFirst)
		}
		if got := jitteredPeriod(period, tt.r); got != tt.wantNext {
			t.Errorf("jitteredPeriod(%v, %v) = %v, want %v", period, tt.r, got, tt.wantNext)
		}
	}

	// Over many draws from a seeded source, the bounds hold and are used.
	rng := rand.New(rand.NewPCG(1, 2))
	minNext, maxNext := time.Duration(math.MaxInt64), time.Duration(0)
	for range 100000 {
		r := rng.Float64()
		if d := firstDelay(period, r); d < 0 || d >= period {
			t.Fatalf("firstDelay(%v) = %v, outside [0, %v)", r, d, period)
		}
		d := jitteredPeriod(period, r)
		if d < 9*time.Second || d >= 11*time.Second {
			t.Fatalf("jitteredPeriod(%v) = %v, outside [9s, 11s)", r, d)
		}
		minNext, maxNext = min(minNext, d), max(maxNext, d)
	}
	if minNext > 9010*time.Millisecond || maxNext < 10990*time.Millisecond {
		t.Errorf("periods spread only over [%v, %v]", minNext, maxNext)
	}
}

// TestProberSchedulesWithInjectedJitter checks that the prober draws its
// first delay and its periods from its rand source.
func TestProberSchedulesWithInjectedJitter(t *testing.T) {
	const period = 10 * time.Second
	tests := []struct {
		r                   float64
		wantFirst, wantNext time.Duration
	}{
		{r: 0, wantFirst: 0, wantNext: 9 * time.Second},
		{r: 0.5, wantFirst: 5 * time.Second, wantNext: 10 * time.Second},
		{r: 0.999, wantFirst: 9990 * time.Millisecond, wantNext: 10998 * time.Millisecond},
	}
	for _, tt := range tests {
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
		start := time.Now()
		p.finish(tg, start, Result{})
		if got := tg.dueAt.Sub(start); got != tt.wantNext {
			t.Errorf("r=%v: next probe due %v after the last started, want %v", tt.r, got, tt.wantNext)
		}
	}
}
