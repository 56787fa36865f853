package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
)

// TestRestartWritesNothing restarts the operator over Ready intents of
// each kind with static backends (ClusterIP, headless, NodePort), watching
// every version of their intents, Services and EndpointSlices from before
// the restart: the new operator writes none of them. It reconciles one
// intent at a time, and an intent made while it was down, whose name sorts
// last, comes after the others (the first list's intents are queued in
// the order listed): once that one is Ready, every other has been
// reconciled.
func TestRestartWritesNothing(t *testing.T) {
	cfg, c, cs := restartEnv(t)
	ctx := context.Background()
	const ns = "restart-noop"
	testenv.CreateT(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 250, 0, byte(i + 1)}) }
	intents := []*v1alpha1.NetworkIntent{
		testenv.Intent(ns, "cluster-ip").HTTPPort(8080).Backends(addr(0), addr(1)).Build(),
		testenv.Intent(ns, "headless").HTTPPort(8080).Backends(addr(2), addr(3)).With(func(in *v1alpha1.NetworkIntent) { in.Spec.Headless = true }).Build(),
		testenv.Intent(ns, "node-port").Exposure(v1alpha1.ExposureNodePort).HTTPPort(8080).Backends(addr(4)).Build(),
	}
	stop := startOperatorWith(t, cfg, Options{Prober: health.NewProber(health.Options{}), IntentWorkers: 1})
	for _, in := range intents {
		testenv.CreateT(t, c, in)
	}
	waitIntentsReady(t, c, ns, len(intents))
	stop()

	last := testenv.Intent(ns, "zz-last").HTTPPort(8080).Backends(addr(5)).Build()
	testenv.CreateT(t, c, last)
	var list v1alpha1.NetworkIntentList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	notLast := func(obj runtime.Object) string {
		m, err := apimeta.Accessor(obj)
		if err != nil {
			return fmt.Sprintf("%T without metadata", obj)
		}
		if m.GetName() == last.Name || m.GetLabels()[v1alpha1.LabelIntent] == last.Name {
			return ""
		}
		return fmt.Sprintf("%T %s written (resourceVersion %s)", obj, m.GetName(), m.GetResourceVersion())
	}
	watches := []*versionWatch{
		watchVersions(t, list.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.CoreV1().Services(ns).Watch(ctx, o)
		}, notLast),
		watchVersions(t, list.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.DiscoveryV1().EndpointSlices(ns).Watch(ctx, o)
		}, notLast),
		watchVersions(t, list.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			var l v1alpha1.NetworkIntentList
			return wc.Watch(ctx, &l, client.InNamespace(ns), &client.ListOptions{Raw: &o})
		}, notLast),
	}

	startOperatorWith(t, cfg, Options{Prober: health.NewProber(health.Options{}), IntentWorkers: 1})
	waitIntentsReady(t, c, ns, len(intents)+1)
	for _, w := range watches {
		if _, bad := w.counts(); len(bad) > 0 {
			t.Errorf("the restarted operator wrote what was already right: %v", bad)
		}
	}
}

// waitIntentsReady waits until n intents in ns are Ready.
func waitIntentsReady(t *testing.T, c client.Reader, ns string, n int) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		var list v1alpha1.NetworkIntentList
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		ready := 0
		for _, in := range list.Items {
			if apimeta.IsStatusConditionTrue(in.Status.Conditions, v1alpha1.IntentConditionReady) {
				ready++
			}
		}
		if ready != n {
			return fmt.Errorf("%d of %d intents Ready", ready, n)
		}
		return nil
	})
}
