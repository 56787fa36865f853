package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

func TestMergeResults(t *testing.T) {
	s := func(d time.Duration) ctrl.Result { return ctrl.Result{RequeueAfter: d} }
	cases := []struct {
		name string
		a, b ctrl.Result
		want ctrl.Result
	}{
		{"neither", s(0), s(0), s(0)},
		{"first only", s(time.Second), s(0), s(time.Second)},
		{"second only", s(0), s(time.Second), s(time.Second)},
		{"first sooner", s(time.Second), s(time.Minute), s(time.Second)},
		{"second sooner", s(time.Minute), s(time.Second), s(time.Second)},
		{"equal", s(time.Second), s(time.Second), s(time.Second)},
		{"negative is none", s(-time.Second), s(time.Minute), s(time.Minute)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := mergeResults(tc.a, tc.b); got != tc.want {
				t.Fatalf("mergeResults(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := mergeResults(tc.b, tc.a); got.RequeueAfter != tc.want.RequeueAfter && tc.name != "negative is none" {
				t.Fatalf("mergeResults is not symmetric: (%v, %v) = %v", tc.b, tc.a, got)
			}
		})
	}
}

// TestLoadBalancerClassChangesRecreate changes the class of a live
// LoadBalancer intent in each way the API refuses in place: the Service is
// recreated with the new class each time, and the intent is not stuck.
func TestLoadBalancerClassChangesRecreate(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	if err := k8sClient.Create(ctx, webIntent(ns, "web", v1alpha1.ExposureLoadBalancer)); err != nil {
		t.Fatal(err)
	}
	var uid string
	settled := func(class string) func() error {
		return func() error {
			svc, err := getService(ctx, ns, "web")
			if err != nil {
				return err
			}
			if got := ptr.Deref(svc.Spec.LoadBalancerClass, ""); got != class {
				return fmt.Errorf("loadBalancerClass %q, want %q", got, class)
			}
			in, err := getIntent(ctx, ns, "web")
			if err != nil {
				return err
			}
			if in.Status.ObservedGeneration != in.Generation {
				return fmt.Errorf("observedGeneration %d, generation %d", in.Status.ObservedGeneration, in.Generation)
			}
			if err := testenv.IntentCondition(in, v1alpha1.IntentConditionServiceReady, metav1.ConditionTrue, v1alpha1.IntentReasonApplied); err != nil {
				return err
			}
			uid = string(svc.UID)
			return nil
		}
	}
	testenv.Eventually(t, 20*time.Second, settled("example.com/lb"))
	for _, step := range []struct{ name, class string }{
		{"set to another", "example.com/other"},
		{"cleared", ""},
		{"set", "example.com/lb"},
	} {
		t.Run(step.name, func(t *testing.T) {
			before := uid
			testenv.Eventually(t, 10*time.Second, func() error {
				cur, err := getIntent(ctx, ns, "web")
				if err != nil {
					return err
				}
				cur.Spec.LoadBalancer.Class = step.class
				return k8sClient.Update(ctx, cur)
			})
			testenv.Eventually(t, 20*time.Second, settled(step.class))
			if uid == before {
				t.Fatalf("Service %s kept its UID; a class change needs a new Service", uid)
			}
		})
	}
}

// TestTakeoverWithdrawsEndpoints takes the intent's Service over in each way
// a person can: the intent reports the conflict, withdraws the slices it
// controls (and only those) and stops probing.
func TestTakeoverWithdrawsEndpoints(t *testing.T) {
	ctx := context.Background()
	tn := testnet.New(t, 1)
	backend := tn.Hosts[0]
	if err := backend.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []struct {
		name     string
		takeOver func(ns string) error
	}{
		{"replaced without owner", func(ns string) error {
			// kubectl replace with a manifest that has no ownerReferences.
			svc, err := getService(ctx, ns, "web")
			if err != nil {
				return err
			}
			svc.OwnerReferences = nil
			svc.Labels = map[string]string{"team": "other"}
			return k8sClient.Update(ctx, svc)
		}},
		{"deleted and recreated", func(ns string) error {
			svc, err := getService(ctx, ns, "web")
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			if err == nil && len(svc.OwnerReferences) == 0 {
				return nil // theirs now
			}
			if err == nil {
				if err := k8sClient.Delete(ctx, svc, client.Preconditions{UID: &svc.UID}); client.IgnoreNotFound(err) != nil {
					return err
				}
			}
			theirs := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
				Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
			}
			// The operator may recreate its own first: then try again.
			if err := k8sClient.Create(ctx, theirs); err != nil {
				return err
			}
			return nil
		}},
	} {
		t.Run(kind.name, func(t *testing.T) {
			ns := testEnv.Namespace(t)
			key := types.NamespacedName{Namespace: ns, Name: "web"}
			in := &v1alpha1.NetworkIntent{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
				Spec: v1alpha1.NetworkIntentSpec{
					Exposure: v1alpha1.ExposureClusterIP,
					Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(testnet.HTTPPort))}},
					Backends: []v1alpha1.Backend{{Address: backend.IP.String()}},
					HealthCheck: &v1alpha1.HealthCheck{
						ProbeHandler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{Port: ptr.To[int32](testnet.TCPPort)}},
						Period:       &metav1.Duration{Duration: probePeriod},
						Timeout:      &metav1.Duration{Duration: probeTimeout},
					},
				},
			}
			if err := k8sClient.Create(ctx, in); err != nil {
				t.Fatal(err)
			}
			waitPublished(t, 20*time.Second, ns, "web", func(eps map[string]endpointState) error {
				if !eps[backend.IP.String()].ready {
					return fmt.Errorf("backend not published ready: %v", eps)
				}
				return nil
			})
			if len(suiteProber.Status(key)) == 0 {
				t.Fatal("the backend is not being probed")
			}
			// A slice another controller writes for the Service: not ours
			// to delete.
			theirSlice := &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-theirs", Labels: map[string]string{
					discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "other-controller",
				}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.20"}}},
			}
			if err := k8sClient.Create(ctx, theirSlice); err != nil {
				t.Fatal(err)
			}

			testenv.Eventually(t, 10*time.Second, func() error { return kind.takeOver(ns) })

			withdrawn := func() error {
				cur, err := getIntent(ctx, ns, "web")
				if err != nil {
					return err
				}
				if err := testenv.IntentCondition(cur, v1alpha1.IntentConditionServiceReady, metav1.ConditionFalse, v1alpha1.IntentReasonServiceConflict); err != nil {
					return err
				}
				if c := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.IntentConditionServiceReady); !strings.Contains(c.Message, "publishes no endpoints") {
					return fmt.Errorf("condition message %q does not say the endpoints are withdrawn", c.Message)
				}
				if cur.Status.Endpoints != nil {
					return fmt.Errorf("status still reports endpoints %+v", cur.Status.Endpoints)
				}
				list := &discoveryv1.EndpointSliceList{}
				if err := k8sClient.List(ctx, list, client.InNamespace(ns)); err != nil {
					return err
				}
				if len(list.Items) != 1 || list.Items[0].Name != theirSlice.Name {
					var names []string
					for _, s := range list.Items {
						names = append(names, s.Name)
					}
					return fmt.Errorf("slices %v, want only %s", names, theirSlice.Name)
				}
				if st := suiteProber.Status(key); len(st) != 0 {
					return fmt.Errorf("still probing %v", st)
				}
				return nil
			}
			testenv.Eventually(t, 20*time.Second, withdrawn)
			testenv.Consistently(t, 2*probePeriod, withdrawn)
			svc, err := getService(ctx, ns, "web")
			if err != nil {
				t.Fatal(err)
			}
			if len(svc.OwnerReferences) != 0 {
				t.Fatalf("the operator took the Service back: owners %+v", svc.OwnerReferences)
			}
		})
	}
}

// laggingClient reads Services and EndpointSlices as a cache that has not
// seen them yet would, while lag is set: Get says NotFound, List is empty.
// While frozen is set, a List of EndpointSlices returns it, as a cache
// that has seen nothing since would. While stale is set, a Get of that
// intent returns it, as a cache that has not seen the intent go would.
type laggingClient struct {
	client.Client
	lag    atomic.Bool
	frozen atomic.Pointer[discoveryv1.EndpointSliceList]
	stale  atomic.Pointer[v1alpha1.NetworkIntent]
}

func (c *laggingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if in, ok := obj.(*v1alpha1.NetworkIntent); ok {
		if stale := c.stale.Load(); stale != nil && client.ObjectKeyFromObject(stale) == key {
			stale.DeepCopyInto(in)
			return nil
		}
	}
	if c.lag.Load() {
		switch obj.(type) {
		case *corev1.Service:
			return apierrors.NewNotFound(corev1.Resource("services"), key.Name)
		case *discoveryv1.EndpointSlice:
			return apierrors.NewNotFound(discoveryv1.Resource("endpointslices"), key.Name)
		}
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c *laggingClient) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if frozen, ok := list.(*discoveryv1.EndpointSliceList); ok && c.frozen.Load() != nil {
		c.frozen.Load().DeepCopyInto(frozen)
		return nil
	}
	if c.lag.Load() {
		switch list.(type) {
		case *corev1.ServiceList, *discoveryv1.EndpointSliceList:
			return nil
		}
	}
	// The API server has no index of slices by intent: list by the
	// labels alone, which the owner check after the list narrows anyway.
	kept := opts[:0:0]
	for _, o := range opts {
		if _, byIndex := o.(client.MatchingFields); !byIndex {
			kept = append(kept, o)
		}
	}
	return c.Client.List(ctx, list, kept...)
}

// TestLaggingCacheLeaksNothing reconciles with a client whose reads of
// Services and slices lag: an existing Service the cache has not seen is a
// conflict and is left untouched, the intent's own unseen Service is no
// conflict, and an intent deleted right after its first reconcile leaves
// nothing behind. It uses a control plane of its own, on which no manager
// runs, and calls Reconcile itself.
func TestLaggingCacheLeaksNothing(t *testing.T) {
	_, direct, _ := restartEnv(t)
	ctx := context.Background()
	lagging := &laggingClient{Client: direct}
	r := &IntentReconciler{
		Client:    lagging,
		APIReader: direct,
		Recorder:  events.NewFakeRecorder(100),
		Prober:    health.NewProber(health.Options{}),
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lagging"}}
	if err := direct.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	newIntent := func(name string) *v1alpha1.NetworkIntent {
		in := &v1alpha1.NetworkIntent{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name},
			Spec: v1alpha1.NetworkIntentSpec{
				Exposure: v1alpha1.ExposureClusterIP,
				Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(8080))}},
				Backends: []v1alpha1.Backend{{Address: "192.0.2.10"}},
			},
		}
		if err := direct.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
		return in
	}
	reconcile := func(in *v1alpha1.NetworkIntent) ctrl.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(in)})
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		return res
	}
	ourSlices := func() int {
		t.Helper()
		list := &discoveryv1.EndpointSliceList{}
		if err := direct.List(ctx, list, client.InNamespace(ns.Name), client.MatchingLabels{discoveryv1.LabelManagedBy: v1alpha1.EndpointSliceManagedBy}); err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}

	t.Run("unseen foreign Service", func(t *testing.T) {
		theirs := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "legacy"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		}
		if err := direct.Create(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		in := newIntent("legacy")
		lagging.lag.Store(true)
		defer lagging.lag.Store(false)
		reconcile(in)
		got := &corev1.Service{}
		if err := direct.Get(ctx, client.ObjectKeyFromObject(theirs), got); err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != theirs.ResourceVersion || len(got.OwnerReferences) != 0 {
			t.Fatalf("the foreign Service was taken over: rv %s -> %s, owners %+v", theirs.ResourceVersion, got.ResourceVersion, got.OwnerReferences)
		}
		cur := &v1alpha1.NetworkIntent{}
		if err := direct.Get(ctx, client.ObjectKeyFromObject(in), cur); err != nil {
			t.Fatal(err)
		}
		if err := testenv.IntentCondition(cur, v1alpha1.IntentConditionServiceReady, metav1.ConditionFalse, v1alpha1.IntentReasonServiceConflict); err != nil {
			t.Fatal(err)
		}
		if n := ourSlices(); n != 0 {
			t.Fatalf("%d slices written for a foreign Service", n)
		}
	})

	t.Run("unseen own Service", func(t *testing.T) {
		in := newIntent("own")
		reconcile(in) // creates the Service
		lagging.lag.Store(true)
		defer lagging.lag.Store(false)
		if res := reconcile(in); res.RequeueAfter <= 0 {
			t.Fatalf("result %+v: an unseen own Service should bring a requeue", res)
		}
		cur := &v1alpha1.NetworkIntent{}
		if err := direct.Get(ctx, client.ObjectKeyFromObject(in), cur); err != nil {
			t.Fatal(err)
		}
		if conditionIs(cur, v1alpha1.IntentConditionServiceReady, v1alpha1.IntentReasonServiceConflict) {
			t.Fatal("the intent's own Service, not yet in the cache, was called a conflict")
		}
		// The created fields stay under the create's entry until a change
		// needs an apply: TestServiceNotWrittenAfterCreate checks that the
		// apply then owns them.
	})

	t.Run("unseen own Service keeps its families' slices", func(t *testing.T) {
		// A headless Service without a selector gets both IP families
		// (the control plane has both): the family without a backend
		// has an empty placeholder slice, which must not go while the
		// cache has not seen the Service.
		in := &v1alpha1.NetworkIntent{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "dual"},
			Spec: v1alpha1.NetworkIntentSpec{
				Exposure: v1alpha1.ExposureClusterIP,
				Headless: true,
				Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(8080))}},
				Backends: []v1alpha1.Backend{{Address: "192.0.2.11"}},
			},
		}
		if err := direct.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
		slices := func() *discoveryv1.EndpointSliceList {
			t.Helper()
			list := &discoveryv1.EndpointSliceList{}
			if err := direct.List(ctx, list, client.InNamespace(ns.Name), client.MatchingLabels{discoveryv1.LabelServiceName: in.Name}); err != nil {
				t.Fatal(err)
			}
			return list
		}
		reconcile(in)
		before := slices()
		if len(before.Items) != 2 {
			t.Fatalf("%d slices for a dual-stack Service with an IPv4 backend, want 2 (one the IPv6 placeholder)", len(before.Items))
		}
		lagging.frozen.Store(before)
		lagging.lag.Store(true)
		defer func() {
			lagging.lag.Store(false)
			lagging.frozen.Store(nil)
		}()
		reconcile(in)
		if after := slices(); len(after.Items) != 2 {
			var names []string
			for _, s := range after.Items {
				names = append(names, s.Name)
			}
			t.Fatalf("with the Service unseen by the cache the slices became %v", names)
		}
	})

	t.Run("own slice writes the cache has not seen", func(t *testing.T) {
		// Backends change faster than the cache follows, as when a
		// node's backends fail one after another and the API server is
		// slow to send watch events: each write builds on the last.
		in := newIntent("outrun")
		reconcile(in)
		sliceOf := func() *discoveryv1.EndpointSlice {
			t.Helper()
			list := &discoveryv1.EndpointSliceList{}
			if err := direct.List(ctx, list, client.InNamespace(ns.Name), client.MatchingLabels{discoveryv1.LabelServiceName: in.Name}); err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != 1 {
				t.Fatalf("%d slices, want 1", len(list.Items))
			}
			return &list.Items[0]
		}
		addrs := func(s *discoveryv1.EndpointSlice) []string {
			var out []string
			for _, ep := range s.Endpoints {
				out = append(out, ep.Addresses...)
			}
			return out
		}
		seen := &discoveryv1.EndpointSliceList{Items: []discoveryv1.EndpointSlice{*sliceOf()}}
		lagging.frozen.Store(seen)
		defer lagging.frozen.Store(nil)
		setBackends := func(addrs ...string) {
			t.Helper()
			cur := &v1alpha1.NetworkIntent{}
			if err := direct.Get(ctx, client.ObjectKeyFromObject(in), cur); err != nil {
				t.Fatal(err)
			}
			cur.Spec.Backends = nil
			for _, a := range addrs {
				cur.Spec.Backends = append(cur.Spec.Backends, v1alpha1.Backend{Address: a})
			}
			if err := direct.Update(ctx, cur); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{"192.0.2.10"}
		for _, a := range []string{"192.0.2.11", "192.0.2.12", "192.0.2.13"} {
			want = append(want, a)
			setBackends(want...)
			// A conflict here (the cache's version sent again) fails
			// the reconcile.
			reconcile(in)
			if got := addrs(sliceOf()); !slices.Equal(got, want) {
				t.Fatalf("published %v, want %v", got, want)
			}
		}

		// A hand edit the cache has not seen either: the write built on
		// the remembered one is refused, and nothing is lost.
		edited := sliceOf()
		edited.Endpoints = edited.Endpoints[:1]
		if err := direct.Update(ctx, edited); err != nil {
			t.Fatal(err)
		}
		want = append(want, "192.0.2.14")
		setBackends(want...)
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(in)}); !apierrors.IsConflict(err) {
			t.Fatalf("reconcile over an unseen hand edit = %v, want a conflict", err)
		}
		if got := addrs(sliceOf()); !slices.Equal(got, []string{"192.0.2.10"}) {
			t.Fatalf("after the refused write the slice holds %v, want the hand edit's [192.0.2.10]", got)
		}
		// The cache catches up: the next reconcile repairs the edit.
		lagging.frozen.Store(nil)
		reconcile(in)
		if got := addrs(sliceOf()); !slices.Equal(got, want) {
			t.Fatalf("published %v after the cache caught up, want %v", got, want)
		}
		if len(r.slicesWritten.byIntent[in.UID]) != 0 {
			// The last write is remembered until a reconcile sees the
			// cache show it.
			reconcile(in)
			if n := len(r.slicesWritten.byIntent[in.UID]); n != 0 {
				t.Fatalf("writes of %d slices still remembered after the cache showed them", n)
			}
		}
	})

	t.Run("gone while the cache still shows it", func(t *testing.T) {
		// The intent is deleted and finalized, and a reconcile then reads
		// it from a cache that has not seen it go: it makes a Service
		// and a slice for an intent that no longer exists, and learns so
		// when it writes the status.
		in := newIntent("vanished")
		reconcile(in)
		stale := &v1alpha1.NetworkIntent{}
		if err := direct.Get(ctx, client.ObjectKeyFromObject(in), stale); err != nil {
			t.Fatal(err)
		}
		if err := direct.Delete(ctx, in); err != nil {
			t.Fatal(err)
		}
		reconcile(in) // finalizes
		if err := direct.Get(ctx, client.ObjectKeyFromObject(in), &v1alpha1.NetworkIntent{}); !apierrors.IsNotFound(err) {
			t.Fatalf("intent not released: %v", err)
		}
		lagging.stale.Store(stale)
		defer lagging.stale.Store(nil)
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(in)}); err != nil {
			t.Fatalf("reconcile of an intent gone: %v", err)
		}
		if err := direct.Get(ctx, client.ObjectKeyFromObject(in), &corev1.Service{}); !apierrors.IsNotFound(err) {
			t.Fatalf("Service made for an intent gone is left behind: %v", err)
		}
		list := &discoveryv1.EndpointSliceList{}
		if err := direct.List(ctx, list, client.InNamespace(ns.Name), client.MatchingLabels{discoveryv1.LabelServiceName: in.Name}); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 0 {
			t.Fatalf("%d slices made for an intent gone are left behind", len(list.Items))
		}
	})

	t.Run("deleted after first reconcile", func(t *testing.T) {
		in := newIntent("brief")
		reconcile(in)
		if n := ourSlices(); n == 0 {
			t.Fatal("first reconcile wrote no slice")
		}
		// The cache has seen neither the Service nor the slice yet.
		lagging.lag.Store(true)
		defer lagging.lag.Store(false)
		if err := direct.Delete(ctx, in); err != nil {
			t.Fatal(err)
		}
		reconcile(in)
		if err := direct.Get(ctx, client.ObjectKeyFromObject(in), &corev1.Service{}); !apierrors.IsNotFound(err) {
			t.Fatalf("Service left behind: %v", err)
		}
		list := &discoveryv1.EndpointSliceList{}
		if err := direct.List(ctx, list, client.InNamespace(ns.Name), client.MatchingLabels{discoveryv1.LabelServiceName: "brief"}); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 0 {
			t.Fatalf("%d slices left behind", len(list.Items))
		}
		if err := direct.Get(ctx, client.ObjectKeyFromObject(in), &v1alpha1.NetworkIntent{}); !apierrors.IsNotFound(err) {
			t.Fatalf("intent not released: %v", errors.Join(err))
		}
	})
}
