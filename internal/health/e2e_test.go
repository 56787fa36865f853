package health

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// flipRouter reads a prober's flips and hands each to the channel of its key.
type flipRouter struct {
	mu   sync.Mutex
	keys map[types.NamespacedName]chan Flip
}

func routeFlips(t *testing.T, p *Prober) *flipRouter {
	r := &flipRouter{keys: map[types.NamespacedName]chan Flip{}}
	go func() {
		for f := range p.Flips() {
			r.chanFor(f.Key) <- f
		}
	}()
	return r
}

func (r *flipRouter) chanFor(key types.NamespacedName) chan Flip {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.keys[key]
	if !ok {
		c = make(chan Flip, 100)
		r.keys[key] = c
	}
	return c
}

// wait returns the next flip of key, failing the test after deadline.
func (r *flipRouter) wait(t *testing.T, key types.NamespacedName, deadline time.Duration) Flip {
	t.Helper()
	f, ok := r.next(key, deadline)
	if !ok {
		t.Fatalf("no flip of %s within %v", key, deadline)
	}
	return f
}

// next returns the next flip of key, or false after deadline.
func (r *flipRouter) next(key types.NamespacedName, deadline time.Duration) (Flip, bool) {
	select {
	case f := <-r.chanFor(key):
		return f, true
	case <-time.After(deadline):
		return Flip{}, false
	}
}

func startHosts(t *testing.T, tn *testnet.Net) {
	t.Helper()
	for _, h := range tn.Hosts {
		if err := h.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProberOnTestHosts probes real servers at non-loopback addresses, in
// network namespaces, with the default guard: a stopped server flips its
// targets unhealthy and a restarted one flips them back, a server that
// stops answering times out, and a loopback target is refused.
func TestProberOnTestHosts(t *testing.T) {
	tn := testnet.New(t, 2)
	startHosts(t, tn)
	h0, h1 := tn.Hosts[0], tn.Hosts[1]

	refusedBefore := testutil.ToFloat64(probeTotal.WithLabelValues(resultRefused))
	successBefore := testutil.ToFloat64(probeTotal.WithLabelValues(resultSuccess))
	failureBefore := testutil.ToFloat64(probeTotal.WithLabelValues(resultFailure))

	p := NewProber(Options{})
	timing := ProbeSpec{Period: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, UnhealthyThreshold: 2}
	httpProbe, tcpProbe := timing, timing
	httpProbe.Kind, httpProbe.Port, httpProbe.Path = ProbeHTTP, testnet.HTTPPort, "/healthz"
	tcpProbe.Kind, tcpProbe.Port = ProbeTCP, testnet.TCPPort
	// One key per target, so that no flips merge.
	targets := map[string]Target{
		"shop/h0-http":   {ID: h0.Addr(testnet.HTTPPort), Address: h0.IP.String(), Spec: httpProbe},
		"shop/h1-tcp":    {ID: h1.Addr(testnet.TCPPort), Address: h1.IP.String(), Spec: tcpProbe},
		"shop/h1-http":   {ID: h1.Addr(testnet.HTTPPort), Address: h1.IP.String(), Spec: httpProbe},
		"shop/loopback":  {ID: "127.0.0.1:8080", Address: "127.0.0.1", Spec: httpProbe},
		"shop/metadata":  {ID: "169.254.169.254:80", Address: "169.254.169.254", Spec: tcpProbe},
		"shop/new-start": {ID: h0.Addr(testnet.TCPPort), Address: h0.IP.String(), Spec: tcpProbe, StartUnhealthy: true},
	}
	for key, tg := range targets {
		p.Set(nsName(key), []Target{tg})
	}
	flips := routeFlips(t, p)
	startProber(t, p)

	const deadline = 10 * time.Second
	// Refused addresses are unhealthy from the start: no flip is needed.
	for _, key := range []string{"shop/loopback", "shop/metadata"} {
		st := p.Status(nsName(key))[targets[key].ID]
		if st.Healthy || st.Failure != FailureForbiddenTarget || !strings.Contains(st.LastError, ErrForbiddenTarget.Error()) {
			t.Errorf("%s: %+v, want unhealthy, refused by the guard", key, st)
		}
	}
	if f := flips.wait(t, nsName("shop/new-start"), deadline); !f.Healthy {
		t.Errorf("a target started unhealthy flipped to %+v, want healthy", f)
	}
	testenv.Eventually(t, deadline, testenv.Holds("h0 and h1 probed healthy", func() bool {
		for _, key := range []string{"shop/h0-http", "shop/h1-tcp", "shop/h1-http"} {
			st := p.Status(nsName(key))[targets[key].ID]
			if !st.Healthy || st.LastProbe.IsZero() || st.LastError != "" {
				return false
			}
		}
		return true
	}))

	// A stopped server refuses: unhealthy after two failures.
	if err := h0.Stop(); err != nil {
		t.Fatal(err)
	}
	f := flips.wait(t, nsName("shop/h0-http"), deadline)
	if f.Healthy || f.TargetID != targets["shop/h0-http"].ID || !strings.Contains(f.Err, "connection refused") {
		t.Errorf("after stopping h0: flip %+v, want unhealthy with connection refused", f)
	}
	if st := p.Status(nsName("shop/h0-http"))[f.TargetID]; st.Failure != FailureConnectionRefused {
		t.Errorf("status of stopped h0: failure %q, want %s", st.Failure, FailureConnectionRefused)
	}
	if f := flips.wait(t, nsName("shop/new-start"), deadline); f.Healthy {
		t.Errorf("h0's TCP target flipped to %+v, want unhealthy", f)
	}
	if st := p.Status(nsName("shop/h0-http"))[f.TargetID]; st.Healthy || st.ConsecutiveFailures < 2 {
		t.Errorf("status of h0 after its flip: %+v", st)
	}
	if err := h0.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f := flips.wait(t, nsName("shop/h0-http"), deadline); !f.Healthy || f.Err != "" {
		t.Errorf("after restarting h0: flip %+v, want healthy", f)
	}

	// A server that stops answering times out, over TCP and HTTP alike.
	if err := h1.Blackhole(true); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"shop/h1-tcp", "shop/h1-http"} {
		f := flips.wait(t, nsName(key), deadline)
		if f.Healthy || !(strings.Contains(f.Err, "timeout") || strings.Contains(f.Err, "deadline exceeded")) {
			t.Errorf("%s blackholed: flip %+v, want unhealthy with a timeout", key, f)
		}
		if st := p.Status(nsName(key))[f.TargetID]; st.Failure != FailureTimeout {
			t.Errorf("%s blackholed: failure %q, want %s", key, st.Failure, FailureTimeout)
		}
	}
	if err := h1.Blackhole(false); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"shop/h1-tcp", "shop/h1-http"} {
		if f := flips.wait(t, nsName(key), deadline); !f.Healthy {
			t.Errorf("%s back: flip %+v, want healthy", key, f)
		}
	}

	for label, before := range map[string]float64{resultRefused: refusedBefore, resultSuccess: successBefore, resultFailure: failureBefore} {
		if got := testutil.ToFloat64(probeTotal.WithLabelValues(label)); got <= before {
			t.Errorf("netintent_probe_total{result=%q} did not grow: %v", label, got)
		}
	}
	if n := testutil.CollectAndCount(probeDuration); n != 1 {
		t.Errorf("netintent_probe_duration_seconds: %d series", n)
	}
}

// TestFailureToFlipLatency measures how long a stopped backend stays in
// traffic: from the moment its server is gone to the flip, over 20 flips,
// with period 1s, timeout 500ms and unhealthyThreshold 2. Four hosts run in
// parallel to keep the test short. The figures are logged; only a generous
// deadline is asserted: timing is for benchmarks, not for test verdicts.
//
//	go test ./internal/health/ -run TestFailureToFlipLatency -v
func TestFailureToFlipLatency(t *testing.T) {
	const (
		hosts  = 4
		rounds = 5
	)
	spec := ProbeSpec{
		Kind: ProbeHTTP, Port: testnet.HTTPPort, Path: "/healthz",
		Period: time.Second, Timeout: 500 * time.Millisecond,
		HealthyThreshold: 1, UnhealthyThreshold: 2,
	}
	tn := testnet.New(t, hosts)
	startHosts(t, tn)
	p := NewProber(Options{})
	for i, h := range tn.Hosts {
		p.Set(keyOf(i), []Target{{ID: h.Addr(spec.Port), Address: h.IP.String(), Spec: spec}})
	}
	flips := routeFlips(t, p)
	startProber(t, p)

	var mu sync.Mutex
	var latencies []time.Duration
	var wg sync.WaitGroup
	for i, h := range tn.Hosts {
		wg.Go(func() {
			ctx := context.WithoutCancel(t.Context())
			key := keyOf(i)
			// Start from a probe that passed, not from the initial state.
			passed := testenv.Holds("a passing probe", func() bool {
				st := p.Status(key)[h.Addr(spec.Port)]
				return !st.LastProbe.IsZero() && st.LastError == ""
			})
			if testenv.Poll(ctx, 5*time.Millisecond, 10*time.Second, "a passing probe", passed) != nil {
				t.Errorf("%s: no passing probe", key)
				return
			}
			for range rounds {
				// Fail at a random moment of the probe cycle, as backends
				// do. Stopping right on the healthy flip would stop just
				// after a probe, and measure the worst case every time.
				<-time.After(rand.N(spec.Period))
				if err := h.Stop(); err != nil {
					t.Error(err)
					return
				}
				down := time.Now()
				f, ok := flips.next(key, 10*time.Second)
				took := time.Since(down)
				if !ok || f.Healthy {
					t.Errorf("%s: flip %+v (%v), want unhealthy within 10s", key, f, ok)
					return
				}
				mu.Lock()
				latencies = append(latencies, took)
				mu.Unlock()
				if err := h.Start(ctx); err != nil {
					t.Error(err)
					return
				}
				if f, ok := flips.next(key, 10*time.Second); !ok || !f.Healthy {
					t.Errorf("%s: flip %+v (%v), want healthy within 10s", key, f, ok)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(latencies) != hosts*rounds {
		t.Fatalf("measured %d flips, want %d", len(latencies), hosts*rounds)
	}
	slices.Sort(latencies)
	pct := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1)+0.5)] }
	t.Logf("failure-to-flip latency over %d flips (period %v, timeout %v, unhealthyThreshold %d): min %v, p50 %v, p90 %v, worst %v",
		len(latencies), spec.Period, spec.Timeout, spec.UnhealthyThreshold,
		latencies[0].Round(time.Millisecond), pct(0.5).Round(time.Millisecond),
		pct(0.9).Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond))
	t.Logf("expected: the first failing probe within one period (0-1s), the second 1s later: 1-2s plus probe time")
}

func keyOf(i int) types.NamespacedName {
	return types.NamespacedName{Namespace: "latency", Name: "host-" + string(rune('a'+i))}
}
