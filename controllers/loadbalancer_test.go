package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
)

// Pools are cluster-scoped and outlive a test's namespace: each test makes
// pools that select only its own namespace, with addresses no other test
// uses, and deletes them when it ends.

// selectNamespace is a namespaceSelector for one namespace.
func selectNamespace(ns string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}
}

// poolIntent is a LoadBalancer intent of the address-pool class.
func poolIntent(ns, name, pool, address string) *v1alpha1.NetworkIntent {
	in := webIntent(ns, name, v1alpha1.ExposureLoadBalancer)
	in.Spec.LoadBalancer = &v1alpha1.LoadBalancerSpec{Class: v1alpha1.AddressPoolClass, Pool: pool, Address: address}
	in.Spec.Backends = []v1alpha1.Backend{{Address: "192.0.2.10"}}
	return in
}

// serviceAddress reads the address a Service shows and its condition, and
// checks they agree.
func serviceAddress(ctx context.Context, ns, name string) (string, *metav1.Condition, error) {
	svc, err := getService(ctx, ns, name)
	if err != nil {
		return "", nil, err
	}
	cond := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionAddressAssigned)
	if cond == nil {
		return "", nil, fmt.Errorf("service %s has no %s condition", name, v1alpha1.ServiceConditionAddressAssigned)
	}
	if cond.ObservedGeneration != svc.Generation {
		return "", nil, fmt.Errorf("service %s condition is for generation %d, service is at %d", name, cond.ObservedGeneration, svc.Generation)
	}
	ingress := svc.Status.LoadBalancer.Ingress
	pool, annotated := svc.Annotations[v1alpha1.AnnotationAllocatedFromPool]
	switch {
	case cond.Status == metav1.ConditionTrue && (len(ingress) != 1 || cond.Message != "address "+ingress[0].IP+" from pool "+pool):
		return "", nil, fmt.Errorf("service %s: condition %q with ingress %v and pool annotation %q", name, cond.Message, ingress, pool)
	case cond.Status == metav1.ConditionFalse && (len(ingress) != 0 || annotated):
		return "", nil, fmt.Errorf("service %s: condition %s/%s with ingress %v and pool annotation %q", name, cond.Status, cond.Reason, ingress, pool)
	case cond.Status == metav1.ConditionTrue:
		return ingress[0].IP, cond, nil
	}
	return "", cond, nil
}

// intentAddress reads the address an intent shows, checks it agrees with
// its Service, and returns it ("" if none) with the AddressAssigned reason.
func intentAddress(ctx context.Context, ns, name string) (string, string, error) {
	in, err := getIntent(ctx, ns, name)
	if err != nil {
		return "", "", err
	}
	addr, svcCond, err := serviceAddress(ctx, ns, name)
	if err != nil {
		return "", "", err
	}
	c := meta.FindStatusCondition(in.Status.Conditions, v1alpha1.IntentConditionAddressAssigned)
	switch {
	case c == nil:
		return "", "", fmt.Errorf("intent %s has no AddressAssigned condition", name)
	case c.ObservedGeneration != in.Generation:
		return "", "", fmt.Errorf("intent %s AddressAssigned is for generation %d, intent is at %d", name, c.ObservedGeneration, in.Generation)
	case addr != "" && (c.Status != metav1.ConditionTrue || in.Status.Address != addr ||
		in.Status.LoadBalancer == nil || "address "+addr+" from pool "+in.Status.LoadBalancer.Pool != svcCond.Message):
		return "", "", fmt.Errorf("intent %s shows %s/%s address %q lb %+v; service has %s", name, c.Status, c.Reason, in.Status.Address, in.Status.LoadBalancer, addr)
	case addr == "" && (c.Status != metav1.ConditionFalse || c.Reason != svcCond.Reason || c.Message != svcCond.Message):
		return "", "", fmt.Errorf("intent %s shows %s/%s %q; service has %s/%s", name, c.Status, c.Reason, c.Message, svcCond.Status, svcCond.Reason)
	}
	return addr, c.Reason, nil
}

// poolStatus checks an AddressPool's status; counts are "total/assigned/free"
// per family, "" for none.
func poolStatus(ctx context.Context, name string, ready metav1.ConditionStatus, reason, ipv4, ipv6 string) error {
	pool := &v1alpha1.AddressPool{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Name: name}, pool); err != nil {
		return err
	}
	if pool.Status.ObservedGeneration != pool.Generation {
		return fmt.Errorf("pool %s: observedGeneration %d, generation %d", name, pool.Status.ObservedGeneration, pool.Generation)
	}
	c := meta.FindStatusCondition(pool.Status.Conditions, v1alpha1.AddressPoolConditionReady)
	if c == nil || c.Status != ready || c.Reason != reason {
		return fmt.Errorf("pool %s: Ready %+v, want %s/%s", name, c, ready, reason)
	}
	counts := func(c *v1alpha1.PoolCounts) string {
		if c == nil {
			return ""
		}
		return fmt.Sprintf("%s/%d/%s", c.Total, c.Assigned, c.Free)
	}
	if got4, got6 := counts(pool.Status.IPv4), counts(pool.Status.IPv6); got4 != ipv4 || got6 != ipv6 {
		return fmt.Errorf("pool %s: counts ipv4 %q ipv6 %q, want %q %q", name, got4, got6, ipv4, ipv6)
	}
	return nil
}

func createIntents(t *testing.T, intents ...*v1alpha1.NetworkIntent) {
	t.Helper()
	for _, in := range intents {
		if err := k8sClient.Create(context.Background(), in); err != nil {
			t.Fatalf("creating intent %s: %v", in.Name, err)
		}
	}
}

func deleteIntent(t *testing.T, ns, name string) {
	t.Helper()
	ctx := context.Background()
	in := &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8sClient.Delete(ctx, in); err != nil {
		t.Fatalf("deleting intent %s: %v", name, err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, err := getService(ctx, ns, name); !apierrors.IsNotFound(err) {
			return fmt.Errorf("service %s still there: %v", name, err)
		}
		return nil
	})
}

// byReason reads the intents' addresses: assigned address by intent, and
// the intents refused by reason.
func byReason(ctx context.Context, ns string, names ...string) (map[string]string, map[string][]string, error) {
	assigned := map[string]string{}
	refused := map[string][]string{}
	for _, name := range names {
		addr, reason, err := intentAddress(ctx, ns, name)
		if err != nil {
			return nil, nil, err
		}
		if addr != "" {
			assigned[name] = addr
		} else {
			refused[reason] = append(refused[reason], name)
		}
	}
	return assigned, refused, nil
}

func distinct(addrs map[string]string) error {
	seen := map[string]string{}
	for name, addr := range addrs {
		if other, ok := seen[addr]; ok {
			return fmt.Errorf("%s and %s both have address %s", name, other, addr)
		}
		seen[addr] = name
	}
	return nil
}

func TestPoolExhaustedThenFreed(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	pool := "lb-exhaust-" + ns
	testenv.CreateT(t, k8sClient, testenv.Pool(pool, selectNamespace(ns), "198.51.100.10-198.51.100.11"))
	names := []string{"a", "b", "c", "d"}
	for _, name := range names {
		createIntents(t, poolIntent(ns, name, "", ""))
	}

	var assigned map[string]string
	testenv.Eventually(t, 30*time.Second, func() error {
		var refused map[string][]string
		var err error
		if assigned, refused, err = byReason(ctx, ns, names...); err != nil {
			return err
		}
		if len(assigned) != 2 || len(refused[v1alpha1.AddressReasonPoolExhausted]) != 2 {
			return fmt.Errorf("assigned %v, refused %v; want 2 and 2 PoolExhausted", assigned, refused)
		}
		for name, addr := range assigned {
			if addr != "198.51.100.10" && addr != "198.51.100.11" {
				return fmt.Errorf("%s has %s, outside the pool", name, addr)
			}
		}
		return distinct(assigned)
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		return poolStatus(ctx, pool, metav1.ConditionTrue, v1alpha1.AddressPoolReasonInUse, "2/2/0", "")
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		evs := &eventsv1.EventList{}
		if err := k8sClient.List(ctx, evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.Reason == v1alpha1.AddressReasonPoolExhausted && ev.Regarding.Kind == "Service" && ev.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return errors.New("no PoolExhausted event on a Service")
	})

	// Freeing an address gives it to one of the waiting intents.
	var gone, freed string
	for name, addr := range assigned {
		gone, freed = name, addr
		break
	}
	deleteIntent(t, ns, gone)
	testenv.Eventually(t, 20*time.Second, func() error {
		rest := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == gone })
		now, refused, err := byReason(ctx, ns, rest...)
		if err != nil {
			return err
		}
		if len(now) != 2 || len(refused[v1alpha1.AddressReasonPoolExhausted]) != 1 {
			return fmt.Errorf("assigned %v, refused %v; want 2 and 1 PoolExhausted", now, refused)
		}
		for name, addr := range assigned {
			if name != gone && now[name] != addr {
				return fmt.Errorf("%s moved from %s to %s", name, addr, now[name])
			}
		}
		if !slices.Contains(slices.Collect(mapValues(now)), freed) {
			return fmt.Errorf("freed address %s not reassigned: %v", freed, now)
		}
		return distinct(now)
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		return poolStatus(ctx, pool, metav1.ConditionTrue, v1alpha1.AddressPoolReasonInUse, "2/2/0", "")
	})
}

// controllerReconciles is how many reconciles the named controller has
// finished, from controller-runtime's own metric.
func controllerReconciles(t *testing.T, controller string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func TestRequestedAddresses(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	pool := "lb-request-" + ns
	other := "lb-request-other-" + ns
	testenv.CreateT(t, k8sClient, testenv.Pool(pool, selectNamespace(ns), "203.0.113.0/29"))
	forbidden := testenv.Pool(other, selectNamespace(ns), "203.0.113.16/29")
	forbidden.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"netintent-test": "nobody"}}
	testenv.CreateT(t, k8sClient, forbidden)

	createIntents(t,
		poolIntent(ns, "first", "", "203.0.113.5"),
		poolIntent(ns, "second", "", "203.0.113.5"),
		poolIntent(ns, "outside", "", "198.18.0.1"),
		poolIntent(ns, "not-allowed", "", "203.0.113.17"),
		poolIntent(ns, "named-not-allowed", other, ""),
		poolIntent(ns, "no-such-pool", "lb-request-missing-"+ns, ""),
	)
	var winner, loser string
	testenv.Eventually(t, 30*time.Second, func() error {
		assigned, refused, err := byReason(ctx, ns, "first", "second", "outside", "not-allowed", "named-not-allowed", "no-such-pool")
		if err != nil {
			return err
		}
		if len(assigned) != 1 || len(refused[v1alpha1.AddressReasonAddressTaken]) != 1 {
			return fmt.Errorf("assigned %v, refused %v; want one of first and second with 203.0.113.5, the other AddressTaken", assigned, refused)
		}
		for name, addr := range assigned {
			if addr != "203.0.113.5" {
				return fmt.Errorf("%s has %s", name, addr)
			}
			winner = name
		}
		loser = refused[v1alpha1.AddressReasonAddressTaken][0]
		want := map[string][]string{
			v1alpha1.AddressReasonAddressTaken:     {loser},
			v1alpha1.AddressReasonAddressNotInPool: {"outside"},
			v1alpha1.AddressReasonPoolNotAllowed:   {"not-allowed", "named-not-allowed"},
			v1alpha1.AddressReasonNoPool:           {"no-such-pool"},
		}
		for reason, names := range want {
			if !slices.Equal(refused[reason], names) {
				return fmt.Errorf("refused %s: %v, want %v (all refused: %v)", reason, refused[reason], names, refused)
			}
		}
		return nil
	})
	in, err := getIntent(ctx, ns, loser)
	if err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(in.Status.Conditions, v1alpha1.IntentConditionAddressAssigned); !strings.Contains(c.Message, ns+"/"+winner) {
		t.Errorf("AddressTaken message does not name the holder %s: %q", winner, c.Message)
	}

	// When the winner goes, the address goes to the one that asked next.
	deleteIntent(t, ns, winner)
	testenv.Eventually(t, 20*time.Second, func() error {
		addr, reason, err := intentAddress(ctx, ns, loser)
		if err != nil {
			return err
		}
		if addr != "203.0.113.5" {
			return fmt.Errorf("%s: address %q reason %s", loser, addr, reason)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		return poolStatus(ctx, pool, metav1.ConditionTrue, v1alpha1.AddressPoolReasonInUse, "8/1/7", "")
	})
}

func TestOverlappingPoolIsNotUsed(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	older := "lb-overlap-a-" + ns
	newer := "lb-overlap-b-" + ns
	testenv.CreateT(t, k8sClient, testenv.Pool(older, selectNamespace(ns), "192.0.2.128/29"))
	// Created in the same second, pools are ordered by name: a before b.
	testenv.CreateT(t, k8sClient, testenv.Pool(newer, selectNamespace(ns), "192.0.2.132-192.0.2.140"))
	testenv.Eventually(t, 10*time.Second, func() error {
		if err := poolStatus(ctx, older, metav1.ConditionTrue, v1alpha1.AddressPoolReasonInUse, "8/0/8", ""); err != nil {
			return err
		}
		return poolStatus(ctx, newer, metav1.ConditionFalse, v1alpha1.AddressPoolReasonOverlap, "", "")
	})

	createIntents(t, poolIntent(ns, "auto", "", ""), poolIntent(ns, "named", newer, ""))
	testenv.Eventually(t, 20*time.Second, func() error {
		assigned, refused, err := byReason(ctx, ns, "auto", "named")
		if err != nil {
			return err
		}
		if assigned["auto"] != "192.0.2.128" || !slices.Equal(refused[v1alpha1.AddressReasonNoPool], []string{"named"}) {
			return fmt.Errorf("assigned %v, refused %v", assigned, refused)
		}
		return nil
	})

	// Without the older pool, the newer one is used; the auto intent's
	// address is no pool's any more, so it gets one of the newer pool.
	if err := k8sClient.Delete(ctx, &v1alpha1.AddressPool{ObjectMeta: metav1.ObjectMeta{Name: older}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		assigned, refused, err := byReason(ctx, ns, "auto", "named")
		if err != nil {
			return err
		}
		if len(assigned) != 2 {
			return fmt.Errorf("assigned %v, refused %v", assigned, refused)
		}
		for name, addr := range assigned {
			a := netip.MustParseAddr(addr)
			if a.Less(netip.MustParseAddr("192.0.2.132")) || netip.MustParseAddr("192.0.2.140").Less(a) {
				return fmt.Errorf("%s has %s, outside pool %s", name, addr, newer)
			}
		}
		if err := distinct(assigned); err != nil {
			return err
		}
		return poolStatus(ctx, newer, metav1.ConditionTrue, v1alpha1.AddressPoolReasonInUse, "9/2/7", "")
	})
}

func TestPlainServiceGetsAddress(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	pool := "lb-plain-" + ns
	testenv.CreateT(t, k8sClient, testenv.Pool(pool, selectNamespace(ns), "198.51.100.64/29", "2001:db8:64::/120"))
	plain := func(name string, annotations map[string]string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
			Spec: corev1.ServiceSpec{
				Type:              corev1.ServiceTypeLoadBalancer,
				LoadBalancerClass: ptr.To(v1alpha1.AddressPoolClass),
				Ports:             []corev1.ServicePort{{Name: "http", Port: 80}},
			},
		}
	}
	for _, svc := range []*corev1.Service{
		plain("auto", nil),
		plain("asks", map[string]string{v1alpha1.AnnotationAddress: "198.51.100.70", v1alpha1.AnnotationPool: pool}),
		plain("elsewhere", map[string]string{v1alpha1.AnnotationPool: "lb-plain-missing-" + ns}),
	} {
		if err := k8sClient.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		want := map[string]string{"auto": "198.51.100.64", "asks": "198.51.100.70"}
		for name, addr := range want {
			got, cond, err := serviceAddress(ctx, ns, name)
			if err != nil {
				return err
			}
			if got != addr || cond.Message != "address "+addr+" from pool "+pool {
				return fmt.Errorf("%s: address %q, condition %q", name, got, cond.Message)
			}
		}
		_, cond, err := serviceAddress(ctx, ns, "elsewhere")
		if err != nil {
			return err
		}
		if cond.Reason != v1alpha1.AddressReasonNoPool || !strings.Contains(cond.Message, "annotation "+v1alpha1.AnnotationPool) {
			return fmt.Errorf("elsewhere: %s %q", cond.Reason, cond.Message)
		}
		return poolStatus(ctx, pool, metav1.ConditionTrue, v1alpha1.AddressPoolReasonInUse, "8/2/6", "256/0/256")
	})

	// Reconciling again writes nothing: the status stays at the
	// resourceVersion of the change that caused the reconcile.
	for _, name := range []string{"auto", "asks", "elsewhere"} {
		before := controllerReconciles(t, "loadbalancer")
		svc, err := getService(ctx, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		svc.Annotations["touch"] = "1"
		if err := k8sClient.Update(ctx, svc); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			if controllerReconciles(t, "loadbalancer") <= before {
				return errors.New("no reconcile yet")
			}
			return nil
		})
		cur, err := getService(ctx, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if cur.ResourceVersion != svc.ResourceVersion {
			t.Fatalf("reconciling %s again rewrote it: resourceVersion %s -> %s", name, svc.ResourceVersion, cur.ResourceVersion)
		}
	}

	// The pool annotation is the reconciler's: removed by hand, it comes
	// back.
	svc, err := getService(ctx, ns, "auto")
	if err != nil {
		t.Fatal(err)
	}
	delete(svc.Annotations, v1alpha1.AnnotationAllocatedFromPool)
	if err := k8sClient.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		cur, err := getService(ctx, ns, "auto")
		if err != nil {
			return err
		}
		if got := cur.Annotations[v1alpha1.AnnotationAllocatedFromPool]; got != pool {
			return fmt.Errorf("pool annotation %q, want %q", got, pool)
		}
		return nil
	})

	// No longer a LoadBalancer of the class: the address is released and
	// what the reconciler wrote is removed.
	svc, err = getService(ctx, ns, "auto")
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	svc.Spec.LoadBalancerClass = nil
	svc.Spec.ExternalTrafficPolicy = ""
	svc.Spec.AllocateLoadBalancerNodePorts = nil
	for i := range svc.Spec.Ports {
		svc.Spec.Ports[i].NodePort = 0
	}
	if err := k8sClient.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		cur, err := getService(ctx, ns, "auto")
		if err != nil {
			return err
		}
		if len(cur.Status.LoadBalancer.Ingress) != 0 || meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ServiceConditionAddressAssigned) != nil {
			return fmt.Errorf("status not cleared: %+v", cur.Status)
		}
		if pool, ok := cur.Annotations[v1alpha1.AnnotationAllocatedFromPool]; ok {
			return fmt.Errorf("pool annotation %q not removed", pool)
		}
		return poolStatus(ctx, pool, metav1.ConditionTrue, v1alpha1.AddressPoolReasonInUse, "8/1/7", "256/0/256")
	})
}
