package controllers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// TestRestartHoldsBackHealthStatus restarts the operator over an intent
// whose status the first operator wrote, then stops a backend: the new
// operator, which has written no status itself (as a replica that has just
// become the leader), takes the backend out of traffic at once and holds
// the status that only reports it back, as the first one would have. It
// watches every version of the slices and of the intent.
func TestRestartHoldsBackHealthStatus(t *testing.T) {
	testnet.SkipUnlessRoot(t) // before its control plane: the hosts need root
	cfg, c, cs := restartEnv(t)
	ctx := context.Background()
	tn := testnet.New(t, 3)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restart-status"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	for i, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		testenv.Pod(ns.Name, fmt.Sprintf("backend-%d", i)).App("web").Node("node-a").Running(true, h.IP.String()).CreateT(t, c)
	}
	in := testenv.Intent(ns.Name, "web").SelectApp("web").HTTPPort(testnet.HTTPPort).
		HTTPProbe(probePeriod, probeTimeout, unhealthyThreshold).Build()
	if err := c.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(in)
	healthy := func(n int32) func() error {
		return func() error {
			got := &v1alpha1.NetworkIntent{}
			if err := c.Get(ctx, key, got); err != nil {
				return err
			}
			if e := got.Status.Endpoints; e == nil || e.Healthy != n || got.Status.ObservedGeneration != got.Generation {
				return fmt.Errorf("status: observed generation %d of %d, endpoints %+v", got.Status.ObservedGeneration, got.Generation, got.Status.Endpoints)
			}
			return nil
		}
	}

	stop := freshOperator(t, cfg)
	testenv.Await(t, "the first operator reports 3 healthy endpoints", 20*time.Second, healthy(3))
	stop()

	prober := health.NewProber(health.Options{})
	defer startOperatorWith(t, cfg, Options{Prober: prober})()
	testenv.Await(t, "the new operator has probed every backend", 20*time.Second, func() error {
		st := prober.Status(key)
		for _, h := range tn.Hosts {
			if s, ok := st[h.IP.String()]; !ok || s.LastProbe.IsZero() || !s.Healthy {
				return fmt.Errorf("%s: %+v (probed: %v)", h.IP, s, ok)
			}
		}
		return nil
	})

	// When the slices first publish the stopped backend not ready, and
	// when the intent's status first reports it.
	var mu sync.Mutex
	var published, reported time.Time
	first := func(when *time.Time, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if when.IsZero() {
			*when = at
		}
	}
	dead := tn.Hosts[0].IP.String()
	var slices discoveryv1.EndpointSliceList
	if err := c.List(ctx, &slices, client.InNamespace(ns.Name)); err != nil {
		t.Fatal(err)
	}
	stopSlices, err := testenv.WatchSlices(ctx, cs, ns.Name, "web", slices.ResourceVersion, func(ev watch.Event, at time.Time) {
		s, ok := ev.Object.(*discoveryv1.EndpointSlice)
		if !ok {
			return
		}
		for _, ep := range s.Endpoints {
			if ep.Addresses[0] == dead && !ptr.Deref(ep.Conditions.Ready, true) {
				first(&published, at)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopSlices()
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	var intents v1alpha1.NetworkIntentList
	if err := c.List(ctx, &intents, client.InNamespace(ns.Name)); err != nil {
		t.Fatal(err)
	}
	stopIntents, err := testenv.Watch(ctx, intents.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		var l v1alpha1.NetworkIntentList
		return wc.Watch(ctx, &l, client.InNamespace(ns.Name), &client.ListOptions{Raw: &o})
	}, func(ev watch.Event, at time.Time) {
		if got, ok := ev.Object.(*v1alpha1.NetworkIntent); ok && got.Status.Endpoints != nil && got.Status.Endpoints.Healthy == 2 {
			first(&reported, at)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopIntents()

	if err := tn.Hosts[0].Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, "the stopped backend published not ready and reported", notReadyDeadline+statusMaxDelay, func() error {
		mu.Lock()
		defer mu.Unlock()
		if published.IsZero() || reported.IsZero() {
			return fmt.Errorf("published not ready at %v, reported at %v", published, reported)
		}
		return nil
	})
	mu.Lock()
	held := reported.Sub(published)
	mu.Unlock()
	t.Logf("the new operator reported the stopped backend %s after it published it not ready", held.Round(time.Millisecond))
	// Written at once, the status would follow the slice by the time of
	// one write; held back, by statusQuiet.
	if held < statusQuiet/2 {
		t.Errorf("the new operator reported a health-only change %s after publishing it, want it held back for at least about %s", held.Round(time.Millisecond), statusQuiet)
	}
}
