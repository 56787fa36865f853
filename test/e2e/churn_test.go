package e2e

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/test/churn"
)

// Settings of the churn test: shorter and faster than make bench's churn
// part (10 minutes at 6 a second), with as many operations as a few minutes
// of it.
const (
	churnNamespace = "churn-e2e"
	churnDuration  = 100 * time.Second
	churnRate      = 15 // operations a second
	churnNames     = 200
	churnSamples   = 30
	// churnWarmup samples are left out of the comparison: in the first
	// seconds the operator is still taking in the intents the churn
	// starts with, and its heap rises to its working size.
	churnWarmup = 3
	// churnReadings forced-GC readings make one sample, the least of them
	// (see churn.HeapFloor).
	churnReadings = 3
	// churnGrowth is how much the heap after GC may grow from the first
	// third of the churn to the last: noise, not retention. In ten runs of
	// this test on an idle 2-core machine (CI's included), after the warm-up
	// and with the least of three readings, it read -3.7% to +11.4%; before
	// the events were kept in bounded memory it grew by 40%. make bench's
	// 10-minute churn holds the tighter bound of 10%, where a leak has six
	// times as long to show.
	churnGrowth = 0.20
)

// TestChurnHoldsMemoryFlat runs the built binary with its defaults while
// intents are created, edited and deleted and pods flip readiness under
// them, and samples the operator's heap after a forced GC and its
// goroutines. After a warm-up, the last third of the samples must be no
// higher than the first beyond noise: what the operator keeps for an intent or an event
// must go when they go. Afterwards every intent's Service and slices must be
// exactly what it asks for, with nothing left over.
func TestChurnHoldsMemoryFlat(t *testing.T) {
	p := findPaths(t)
	ic := startIntentCluster(t, p, "e2e-churn", churnNamespace)
	c := ic.client
	ctx := t.Context()
	pprofAddr := testenv.FreeAddrT(t)
	op := startOperator(t, p, ic.adminKubectl.kubeconfig, "--pprof-bind-address="+pprofAddr, "--dns-upstreams=127.0.0.1:1")

	pool := &v1alpha1.AddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: "churn"},
		Spec:       v1alpha1.AddressPoolSpec{Addresses: []string{"203.0.113.0/24"}},
	}
	if err := c.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var heaps, goroutines []int64
	var sampleErr error
	sample := func(at time.Duration) {
		if sampleErr != nil {
			return
		}
		h, err := churn.HeapFloor(pprofAddr, churnReadings)
		if err != nil {
			sampleErr = err
			return
		}
		g, err := churn.Goroutines(pprofAddr)
		if err != nil {
			sampleErr = err
			return
		}
		heaps, goroutines = append(heaps, h), append(goroutines, g)
		t.Logf("%s: heap after GC %.1f MiB, %d goroutines", at.Round(time.Second), float64(h)/(1<<20), g)
	}
	st, err := churn.Run(ctx, c, churn.Options{
		Namespace: churnNamespace, Names: churnNames, Rate: churnRate, Duration: churnDuration,
		Pods: 40, Pool: pool.Name, Every: sample, SampleEvery: churnDuration / churnSamples, Workers: 8, Seed: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sampleErr != nil {
		t.Fatalf("reading the operator's heap: %v", sampleErr)
	}
	t.Logf("churn: %s", st)
	if len(heaps) < churnSamples*2/3 {
		t.Fatalf("only %d samples of %d: the churn did not keep its pace", len(heaps), churnSamples)
	}

	first, last := churn.Thirds(heaps[churnWarmup:])
	t.Logf("heap after GC: first third %.1f MiB, last third %.1f MiB (%+.1f%%)", float64(first)/(1<<20), float64(last)/(1<<20), 100*float64(last-first)/float64(first))
	if float64(last) > float64(first)*(1+churnGrowth) {
		t.Errorf("the heap after GC grew from %.1f MiB to %.1f MiB over the churn, more than %.0f%%: something is kept per operation", float64(first)/(1<<20), float64(last)/(1<<20), 100*churnGrowth)
	}
	gFirst, gLast := churn.Thirds(goroutines[churnWarmup:])
	if float64(gLast) > float64(gFirst)*1.25+10 {
		t.Errorf("goroutines grew from %d to %d over the churn", gFirst, gLast)
	}

	testenv.Await(t, "every churned intent's Service and slices right, nothing left over", 2*time.Minute, func() error {
		if op.Exited() {
			return fmt.Errorf("the operator exited: %v", op.Err())
		}
		return churn.Check(ctx, c, churnNamespace)
	})
}
