package health

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/netintent/netintent/internal/testenv"
)

// TestProberSharesInFlightFairly runs one intent whose 100 backends all hang
// until their timeout beside one whose backends answer at once, with few
// workers: the hanging intent holds no more than its share of the workers,
// and the other's probes keep their period. Each interval between two
// probes of one of its targets, from the start times the check records,
// must be within the period plus a slack for scheduling on a loaded
// machine; without the share they reach the hang time (1 s), well
// above that limit.
//
//	go test ./internal/health/ -run TestProberSharesInFlightFairly -v
func TestProberSharesInFlightFairly(t *testing.T) {
	const (
		workers = 8
		hanging = 100
		healthy = 5
		period  = 200 * time.Millisecond
		slack   = 400 * time.Millisecond
		run     = 3 * time.Second
	)
	hangSpec := ProbeSpec{Kind: ProbeTCP, Port: 80, Period: time.Second, Timeout: time.Second}
	fastSpec := ProbeSpec{Kind: ProbeTCP, Port: 80, Period: period, Timeout: 100 * time.Millisecond}

	var mu sync.Mutex
	starts := map[string][]time.Time{} // the fast intent's probes
	inFlight, mostInFlight := 0, 0     // the hanging intent's probes
	p := NewProber(Options{MaxInFlight: workers})
	p.probe = errorOnly(func(ctx context.Context, addr string, spec ProbeSpec) error {
		if spec.Period != period {
			mu.Lock()
			inFlight++
			mostInFlight = max(mostInFlight, inFlight)
			mu.Unlock()
			defer func() {
				mu.Lock()
				inFlight--
				mu.Unlock()
			}()
			// A blackholed backend: nothing until the timeout.
			select {
			case <-time.After(spec.Timeout):
				return fmt.Errorf("tcp probe: %w", context.DeadlineExceeded)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		starts[addr] = append(starts[addr], time.Now())
		mu.Unlock()
		return nil
	})
	var slow, fast []Target
	for i := range hanging {
		addr := fmt.Sprintf("10.1.%d.%d", i/256, i%256)
		slow = append(slow, Target{ID: addr, Address: addr, Spec: hangSpec})
	}
	for i := range healthy {
		addr := fmt.Sprintf("10.2.0.%d", i+1)
		fast = append(fast, Target{ID: addr, Address: addr, Spec: fastSpec})
	}
	p.Set(nsName("shop/hanging"), slow)
	p.Set(nsName("shop/fast"), fast)
	startProber(t, p)

	// Let the hanging intent fill its share before measuring.
	testenv.Eventually(t, 5*time.Second, testenv.Holds("the hanging intent's probes running", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inFlight >= workers/2
	}))
	mu.Lock()
	clear(starts)
	mu.Unlock()
	<-time.After(run) // the measurement window, not synchronisation

	mu.Lock()
	defer mu.Unlock()
	limit := period + slack
	var intervals []time.Duration
	for addr, ts := range starts {
		if len(ts) < 2 {
			t.Errorf("%s probed %d times in %v, want about %d", addr, len(ts), run, int(run/period))
			continue
		}
		for i := 1; i < len(ts); i++ {
			d := ts[i].Sub(ts[i-1])
			intervals = append(intervals, d)
			if d > limit {
				t.Errorf("%s: %v between probes, more than period %v + slack = %v", addr, d.Round(time.Millisecond), period, limit)
			}
		}
	}
	if len(intervals) == 0 {
		t.Fatal("the fast intent was never probed twice")
	}
	slices.Sort(intervals)
	t.Logf("fast intent, %d intervals while %d targets of another intent hang for %v on %d workers: min %v, median %v, max %v (period %v, limit %v)",
		len(intervals), hanging, hangSpec.Timeout, workers, intervals[0].Round(time.Millisecond),
		intervals[len(intervals)/2].Round(time.Millisecond), intervals[len(intervals)-1].Round(time.Millisecond), period, limit)
	if want := workers / 2; mostInFlight != want {
		t.Errorf("the hanging intent had up to %d probes in flight, want its share %d", mostInFlight, want)
	}
}

// TestProberShareFollowsTheKeys: a key's share is the pool divided by the
// keys with targets; when a key goes, the others' parked targets run.
func TestProberShareFollowsTheKeys(t *testing.T) {
	const workers = 4
	var mu sync.Mutex
	running := map[string]int{} // by address prefix: "10.1." is a, "10.2." is b
	most := map[string]int{}
	release := map[string]chan struct{}{"10.1.": make(chan struct{}), "10.2.": make(chan struct{})}
	p := NewProber(Options{MaxInFlight: workers})
	p.rand = func() float64 { return 0 } // every first probe due at once
	p.probe = errorOnly(func(ctx context.Context, addr string, _ ProbeSpec) error {
		key := addr[:5]
		mu.Lock()
		running[key]++
		most[key] = max(most[key], running[key])
		mu.Unlock()
		defer func() {
			mu.Lock()
			running[key]--
			mu.Unlock()
		}()
		select {
		case <-release[key]:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	hour := ProbeSpec{Kind: ProbeTCP, Port: 80, Period: time.Hour}
	var a []Target
	for i := range 6 {
		addr := fmt.Sprintf("10.1.0.%d", i+1)
		a = append(a, Target{ID: addr, Address: addr, Spec: hour})
	}
	p.Set(nsName("ns/a"), a)
	p.Set(nsName("ns/b"), []Target{{ID: "10.2.0.1", Address: "10.2.0.1", Spec: hour}})
	startProber(t, p)

	state := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return running["10.1."], running["10.2."]
	}
	testenv.Eventually(t, 5*time.Second, testenv.Holds("a at its share of 2, b probing", func() bool {
		ra, rb := state()
		return ra == 2 && rb == 1
	}))
	// b goes: a's share is the whole pool, less the worker b's probe
	// still holds until it returns.
	p.Remove(nsName("ns/b"))
	testenv.Eventually(t, 5*time.Second, testenv.Holds("a on the three free workers", func() bool {
		ra, _ := state()
		return ra == 3
	}))
	release["10.2."] <- struct{}{} // b's probe returns
	testenv.Eventually(t, 5*time.Second, testenv.Holds("a on every worker", func() bool {
		ra, rb := state()
		return ra == workers && rb == 0
	}))
	mu.Lock()
	defer mu.Unlock()
	if most["10.1."] > workers {
		t.Errorf("a ran %d probes at once on %d workers", most["10.1."], workers)
	}
	close(release["10.1."])
}
