package health

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/netintent/netintent/internal/testenv"
)

var errProbe = errors.New("probe failed")

// startProber runs p until the test ends and waits for Start to return.
func startProber(t *testing.T, p *Prober) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
}

// fakeChecks answers probes by address, failing the addresses set to fail.
type fakeChecks struct {
	mu   sync.Mutex
	fail map[string]bool
}

func (f *fakeChecks) set(addr string, fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = make(map[string]bool)
	}
	f.fail[addr] = fail
}

func (f *fakeChecks) check(_ context.Context, addr string, _ ProbeSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[addr] {
		return errProbe
	}
	return nil
}

func tcp(port int) ProbeSpec { return ProbeSpec{Kind: ProbeTCP, Port: port} }

func TestSetKeepsUnchangedTargetsAndRestartsChangedOnes(t *testing.T) {
	p := NewProber(Options{})
	a := Target{ID: "a", Address: "10.0.0.1", Spec: tcp(80)}
	b := Target{ID: "b", Address: "10.0.0.2", Spec: tcp(80)}
	p.Set(nsName("ns/x"), []Target{a, b})

	// Three failures of a and b (unhealthyThreshold defaults to 3), as the
	// workers would report them.
	for range 3 {
		for _, id := range []string{"a", "b"} {
			tg := p.owners[nsName("ns/x")][id]
			heap.Remove(&p.due, tg.index) // as the scheduler does before a probe
			p.finish(tg, time.Now(), Result{Err: errProbe})
		}
	}
	st := p.Status(nsName("ns/x"))
	if st["a"].Healthy || st["b"].Healthy || st["a"].ConsecutiveFailures != 3 || st["a"].LastError != errProbe.Error() {
		t.Fatalf("after three failures: %+v", st)
	}
	oldB := p.owners[nsName("ns/x")]["b"]

	bPath := b
	bPath.Spec.Port = 81 // a changed spec restarts the target
	sameA := a
	sameA.Spec.Timeout = DefaultTimeout // the default spelt out is no change
	c := Target{ID: "c", Address: "10.0.0.3", Spec: tcp(80)}
	d := Target{ID: "d", Address: "10.0.0.4", Spec: tcp(80), StartUnhealthy: true}
	p.Set(nsName("ns/x"), []Target{sameA, bPath, c, d, {ID: "a", Address: "10.9.9.9"}})

	st = p.Status(nsName("ns/x"))
	want := map[string]TargetState{
		"a": {Healthy: false, LastError: errProbe.Error(), Failure: FailureProbeError, ConsecutiveFailures: 3},
		"b": {Healthy: true},
		"c": {Healthy: true},
		"d": {Healthy: false},
	}
	if len(st) != len(want) {
		t.Fatalf("status has %d targets, want %d: %+v", len(st), len(want), st)
	}
	for id, w := range want {
		g := st[id]
		g.LastProbe, g.LastChange = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("target %s: %+v, want %+v", id, g, w)
		}
	}
	if p.owners[nsName("ns/x")]["a"].address != "10.0.0.1" {
		t.Error("a duplicate ID replaced the first target")
	}
	if p.due.Len() != 4 {
		t.Errorf("%d targets queued, want 4", p.due.Len())
	}

	// A probe of the replaced b that finishes late changes nothing.
	p.finish(oldB, time.Now(), Result{Err: nil})
	if p.due.Len() != 4 || !p.Status(nsName("ns/x"))["b"].LastProbe.IsZero() {
		t.Error("a late result of a replaced target was recorded")
	}

	p.Set(nsName("ns/x"), []Target{sameA})
	if got := len(p.Status(nsName("ns/x"))); got != 1 || p.due.Len() != 1 {
		t.Errorf("after Set to one target: %d in status, %d queued", got, p.due.Len())
	}
	p.Remove(nsName("ns/x"))
	if got := len(p.Status(nsName("ns/x"))); got != 0 || p.due.Len() != 0 {
		t.Errorf("after Remove: %d in status, %d queued", got, p.due.Len())
	}

	// The flips of a and b are pending for delivery, merged under ns/x.
	f, ok := p.pending.pop()
	if !ok || f != (Flip{Key: nsName("ns/x")}) {
		t.Errorf("pending flip %+v, %v; want the key-changed flip of ns/x", f, ok)
	}
}

// TestProberBoundsInFlightAndGoroutines runs many due targets against probes
// that block: no more than MaxInFlight run at once, the goroutines do not grow
// with the targets, and Set and Status answer while every worker is stuck.
func TestProberBoundsInFlightAndGoroutines(t *testing.T) {
	const workers, targets = 3, 300
	release := make(chan struct{})
	var mu sync.Mutex
	running, most, probed := 0, 0, map[string]bool{}
	p := NewProber(Options{MaxInFlight: workers})
	p.rand = func() float64 { return 0 } // every first probe due at once
	p.probe = errorOnly(func(ctx context.Context, addr string, _ ProbeSpec) error {
		mu.Lock()
		running++
		most = max(most, running)
		probed[addr] = true
		mu.Unlock()
		defer func() {
			mu.Lock()
			running--
			mu.Unlock()
		}()
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	var ts []Target
	for i := range targets {
		addr := fmt.Sprintf("10.1.%d.%d", i/256, i%256)
		ts = append(ts, Target{ID: addr, Address: addr, Spec: ProbeSpec{Kind: ProbeTCP, Port: 80, Period: time.Hour}})
	}
	before := runtime.NumGoroutine()
	p.Set(nsName("ns/many"), ts)
	startProber(t, p)

	testenv.Eventually(t, 10*time.Second, testenv.Holds("all workers busy", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return running == workers
	}))
	// Every worker is stuck in a probe; the API must not wait for them.
	answered := make(chan struct{})
	go func() {
		p.Set(nsName("ns/other"), []Target{{ID: "o", Address: "10.9.0.1", Spec: tcp(80)}})
		_ = p.Status(nsName("ns/many"))
		p.Remove(nsName("ns/other"))
		close(answered)
	}()
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("Set, Status or Remove waited for a probe")
	}
	if g := runtime.NumGoroutine() - before; g > workers+5 {
		t.Errorf("%d goroutines more than before Start for %d targets and %d workers", g, targets, workers)
	}

	for range targets {
		release <- struct{}{}
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("every target probed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(probed) == targets
	}))
	mu.Lock()
	defer mu.Unlock()
	if most != workers {
		t.Errorf("at most %d probes ran at once, want %d", most, workers)
	}
}

func TestProberDeliversFlipsAndMergesThemWhenTheConsumerIsSlow(t *testing.T) {
	var fake fakeChecks
	p := NewProber(Options{})
	p.probe = errorOnly(fake.check)
	p.rand = func() float64 { return 0 }
	fast := ProbeSpec{Kind: ProbeTCP, Port: 80, Period: 20 * time.Millisecond, UnhealthyThreshold: 2}
	fake.set("10.0.0.1", true)
	p.Set(nsName("ns/a"), []Target{{ID: "one", Address: "10.0.0.1", Spec: fast}})
	startProber(t, p)

	select {
	case f := <-p.Flips():
		want := Flip{Key: nsName("ns/a"), TargetID: "one", Healthy: false, Err: errProbe.Error()}
		if f != want {
			t.Fatalf("flip %+v, want %+v", f, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no flip")
	}
	if st := p.Status(nsName("ns/a"))["one"]; st.Healthy || st.LastChange.IsZero() || st.ConsecutiveFailures < 2 {
		t.Errorf("status after the flip: %+v", st)
	}

	// Five targets of ns/b fail while nobody reads: the prober goes on,
	// and the consumer gets at most the flip already taken for delivery
	// and one "ns/b changed".
	var bs []Target
	for i := range 5 {
		addr := fmt.Sprintf("10.0.1.%d", i)
		fake.set(addr, true)
		bs = append(bs, Target{ID: addr, Address: addr, Spec: fast})
	}
	p.Set(nsName("ns/b"), bs)
	testenv.Eventually(t, 10*time.Second, testenv.Holds("all of ns/b unhealthy", func() bool {
		for _, st := range p.Status(nsName("ns/b")) {
			if st.Healthy {
				return false
			}
		}
		return true
	}))
	// Read until the flips cover every target of ns/b ("" covers all).
	var got []Flip
	covered := map[string]bool{}
	for len(covered) < len(bs) {
		select {
		case f := <-p.Flips():
			if f.Key != nsName("ns/b") || f.Healthy {
				t.Fatalf("unexpected flip %+v", f)
			}
			got = append(got, f)
			for _, b := range bs {
				if f.TargetID == "" || f.TargetID == b.ID {
					covered[b.ID] = true
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the flips do not cover every target of ns/b: %+v", got)
		}
	}
	if len(got) > 2 {
		t.Errorf("flips were not merged: %+v", got)
	}

	// Back to health: a flip per target again, now read at once.
	fake.set("10.0.0.1", false)
	for {
		select {
		case f := <-p.Flips():
			if f.Key == nsName("ns/b") {
				continue // what was left of the merged flips
			}
			if f != (Flip{Key: nsName("ns/a"), TargetID: "one", Healthy: true}) {
				t.Fatalf("flip %+v, want one healthy", f)
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatal("no flip back to healthy")
		}
	}
}

func TestProberRunnable(t *testing.T) {
	p := NewProber(Options{})
	if p.NeedLeaderElection() {
		t.Error("the prober must run on every replica, so that a new leader has its verdicts already")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Start(ctx) }()
	testenv.Eventually(t, 5*time.Second, testenv.Holds("started", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.started
	}))
	if err := p.Start(ctx); err == nil {
		t.Error("a second Start succeeded")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after its context ended")
	}
	if _, open := <-p.Flips(); open {
		t.Error("Flips is open after Start returned")
	}
}

// errorOnly makes a check that reports only an error into the prober's
// probe function.
func errorOnly(check func(ctx context.Context, address string, spec ProbeSpec) error) func(context.Context, string, ProbeSpec) Result {
	return func(ctx context.Context, address string, spec ProbeSpec) Result {
		return Result{Err: check(ctx, address, spec)}
	}
}

// TestProberProbesAPeriodApartOnItsClock: a target falls due a period after
// its last probe was due, as the prober's clock tells, so an hour's period
// passes in the test without waiting for it.
func TestProberProbesAPeriodApartOnItsClock(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(t0)
	var probes atomic.Int32
	p := NewProber(Options{Clock: clk})
	p.probe = errorOnly(func(context.Context, string, ProbeSpec) error {
		probes.Add(1)
		return nil
	})
	p.rand = func() float64 { return 0 } // the first probe due at once
	key := nsName("ns/hourly")
	p.Set(key, []Target{{ID: "a", Address: "10.0.0.1", Spec: ProbeSpec{Kind: ProbeTCP, Port: 80, Period: time.Hour}}})
	startProber(t, p)

	// waitScheduled waits for the probe to be recorded and the scheduler
	// to wait on the clock for the next one.
	waitScheduled := func(n int32, what string) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, testenv.Holds(what, func() bool {
			p.mu.Lock()
			queued := p.due.Len() == 1
			p.mu.Unlock()
			return probes.Load() == n && queued && clk.HasWaiters()
		}))
	}
	waitScheduled(1, "the first probe, at Start")
	if st := p.Status(key)["a"]; !st.LastProbe.Equal(t0) {
		t.Errorf("first probe at %v, want %v", st.LastProbe, t0)
	}
	p.mu.Lock()
	due := p.due[0].dueAt
	p.mu.Unlock()
	if want := t0.Add(time.Hour); !due.Equal(want) {
		t.Errorf("next probe due at %v, want %v", due, want)
	}

	clk.Step(time.Hour)
	waitScheduled(2, "the second probe, an hour on")
	if st := p.Status(key)["a"]; !st.LastProbe.Equal(t0.Add(time.Hour)) || !st.Healthy || st.ConsecutiveSuccesses != 2 {
		t.Errorf("after the second probe: %+v", st)
	}
}

// TestProbeStartDelayIsCounted: two targets of one intent fall due at once
// with one probe allowed in flight; the second waits for the first, which
// hangs while the prober's clock moves 300ms, and
// netintent_probe_start_delay_seconds counts the wait.
func TestProbeStartDelayIsCounted(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(t0)
	const wait = 300 * time.Millisecond
	var started atomic.Int32
	release := make(chan struct{})
	p := NewProber(Options{Clock: clk, MaxInFlight: 1})
	p.probe = errorOnly(func(context.Context, string, ProbeSpec) error {
		if started.Add(1) == 1 {
			<-release // the first hangs until the clock has moved
		}
		return nil
	})
	p.rand = func() float64 { return 0 } // both due at once
	spec := ProbeSpec{Kind: ProbeTCP, Port: 80, Period: time.Hour}
	p.Set(nsName("ns/two"), []Target{{ID: "a", Address: "10.0.0.1", Spec: spec}, {ID: "b", Address: "10.0.0.2", Spec: spec}})
	count0, sum0 := histogramOf(t, probeStartDelay)
	startProber(t, p)

	testenv.Eventually(t, 10*time.Second, testenv.Holds("the first probe started", func() bool { return started.Load() == 1 }))
	clk.Step(wait)
	close(release)
	testenv.Eventually(t, 10*time.Second, testenv.Holds("both probes done", func() bool {
		count, _ := histogramOf(t, probeStartDelay)
		return count-count0 == 2
	}))
	// Other tests' probes are in the sum too: compare to a microsecond.
	if _, sum := histogramOf(t, probeStartDelay); math.Abs(sum-sum0-wait.Seconds()) > 1e-6 {
		t.Errorf("start delays add up to %vs, want %v (0 for the first, %v for the second)", sum-sum0, wait.Seconds(), wait)
	}
}

// histogramOf reads a histogram's sample count and sum.
func histogramOf(t *testing.T, h prometheus.Histogram) (uint64, float64) {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// TestDecisiveProbesTakeReservedSlots: with every active slot held by
// routine probes (the CPUs saturated), a probe whose result alone flips
// its target (unhealthyThreshold 1 on a healthy target) starts at once on
// a reserved slot, while a routine one (unhealthyThreshold 3) waits until
// an active slot is free.
func TestDecisiveProbesTakeReservedSlots(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	probed := map[string]int{}
	p := NewProber(Options{Clock: clk})
	p.probe = errorOnly(func(_ context.Context, addr string, _ ProbeSpec) error {
		mu.Lock()
		defer mu.Unlock()
		probed[addr]++
		return nil
	})
	count := func(addr string) int {
		mu.Lock()
		defer mu.Unlock()
		return probed[addr]
	}
	p.rand = func() float64 { return 0 } // both due at once
	for range cap(p.active) {
		p.active <- struct{}{} // held by routine probes elsewhere
	}
	spec := func(unhealthy int) ProbeSpec {
		return ProbeSpec{Kind: ProbeTCP, Port: 80, Period: time.Hour, UnhealthyThreshold: unhealthy}.WithDefaults()
	}
	p.Set(nsName("ns/web"), []Target{
		{ID: "decisive", Address: "10.0.0.1", Spec: spec(1)},
		{ID: "routine", Address: "10.0.0.2", Spec: spec(3)},
	})
	startProber(t, p)

	testenv.Eventually(t, 10*time.Second, testenv.Holds("the decisive probe ran with every active slot taken", func() bool {
		return count("10.0.0.1") == 1
	}))
	if n := count("10.0.0.2"); n != 0 {
		t.Fatalf("the routine probe ran %d times with every active slot taken", n)
	}
	<-p.active // a routine probe elsewhere is done
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the routine probe ran once a slot was free", func() bool {
		return count("10.0.0.2") == 1
	}))
}
