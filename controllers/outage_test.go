package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
)

// apiOutage is how long the API server stays down.
const apiOutage = 20 * time.Second

// TestAPIOutage stops the API server for 20 s while intents are being
// created, updated and deleted, and starts it again: afterwards every
// intent converges, and no Service or EndpointSlice is lost, duplicated or
// left behind.
func TestAPIOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("stops the API server for 20 s")
	}
	// A certificate folder of its own, so the API server comes back with
	// the same certificates and port and the clients need not change. A
	// short grace period: kube-apiserver drains its watches slowly, and is
	// killed after it, as a crash would end it.
	cp := testenv.StartT(t, testenv.Options{ControlPlane: envtest.ControlPlane{APIServer: &envtest.APIServer{CertDir: t.TempDir(), StopTimeout: 3 * time.Second}}})
	env, cfg, c := cp.Env, cp.Config, cp.Client
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "outage"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	stop := startOperator(t, cfg)
	defer stop()

	create := func(name string, exposure v1alpha1.Exposure) {
		t.Helper()
		in := webIntent(ns.Name, name, exposure)
		if err := c.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	update := func(name string) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, func() error {
			in := &v1alpha1.NetworkIntent{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: name}, in); err != nil {
				return err
			}
			in.Spec.Backends = append(in.Spec.Backends, v1alpha1.Backend{Address: "192.0.2.11"})
			return c.Update(ctx, in)
		})
	}
	remove := func(name string) {
		t.Helper()
		in := &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name}}
		if err := c.Delete(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	exposures := []v1alpha1.Exposure{v1alpha1.ExposureClusterIP, v1alpha1.ExposureNodePort, v1alpha1.ExposureClusterIP}
	for i := range 6 {
		create(fmt.Sprintf("a%d", i), exposures[i%len(exposures)])
	}
	testenv.Eventually(t, 30*time.Second, func() error { return outageConverged(ctx, c, ns.Name) })

	// Work in flight when the API server goes.
	for i := range 4 {
		create(fmt.Sprintf("b%d", i), exposures[i%len(exposures)])
	}
	update("a0")
	update("a1")
	remove("a4")
	remove("a5")
	apiServer := env.ControlPlane.GetAPIServer()
	if err := apiServer.Stop(); err != nil {
		t.Logf("stopping the API server: %v (killed)", err)
	}
	down := time.Now()
	time.Sleep(apiOutage) // the outage itself, not a wait for anything
	if err := apiServer.Start(); err != nil {
		t.Fatalf("starting the API server again: %v", err)
	}
	t.Logf("API server down for %s", time.Since(down).Round(time.Millisecond))
	// And work as soon as it is back.
	testenv.Eventually(t, 30*time.Second, func() error {
		return c.Get(ctx, client.ObjectKey{Name: ns.Name}, &corev1.Namespace{})
	})
	create("c0", v1alpha1.ExposureClusterIP)
	update("b0")
	remove("b1")
	remove("a3")

	began := time.Now()
	testenv.Eventually(t, 2*time.Minute, func() error { return outageConverged(ctx, c, ns.Name) })
	t.Logf("converged %s after the API server came back", time.Since(began).Round(time.Millisecond))
	// Nothing lost, nothing left over: exactly the intents not deleted.
	intents := &v1alpha1.NetworkIntentList{}
	if err := c.List(ctx, intents, client.InNamespace(ns.Name)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range intents.Items {
		names = append(names, in.Name)
	}
	slices.Sort(names)
	if want := []string{"a0", "a1", "a2", "b0", "b2", "b3", "c0"}; !slices.Equal(names, want) {
		t.Errorf("intents after the outage %v, want %v", names, want)
	}
	// And stays so.
	testenv.Consistently(t, 2*time.Second, func() error { return outageConverged(ctx, c, ns.Name) })
}

// outageConverged checks that every intent in ns is converged (its Service
// and one slice with its backends, status for its generation) and that
// every Service and slice belongs to an intent that exists.
func outageConverged(ctx context.Context, c client.Client, ns string) error {
	intents := &v1alpha1.NetworkIntentList{}
	if err := c.List(ctx, intents, client.InNamespace(ns)); err != nil {
		return err
	}
	live := map[string]*v1alpha1.NetworkIntent{}
	for i := range intents.Items {
		in := &intents.Items[i]
		if !in.DeletionTimestamp.IsZero() {
			return fmt.Errorf("intent %s is still being deleted", in.Name)
		}
		live[in.Name] = in
	}
	services := &corev1.ServiceList{}
	if err := c.List(ctx, services, client.InNamespace(ns)); err != nil {
		return err
	}
	svcOf := map[string]*corev1.Service{}
	for i := range services.Items {
		svc := &services.Items[i]
		in, ok := live[svc.Name]
		if !ok {
			return fmt.Errorf("Service %s outlived its intent", svc.Name)
		}
		if !metav1.IsControlledBy(svc, in) {
			return fmt.Errorf("Service %s is not controlled by its intent: %+v", svc.Name, svc.OwnerReferences)
		}
		svcOf[svc.Name] = svc
	}
	sliceList := &discoveryv1.EndpointSliceList{}
	if err := c.List(ctx, sliceList, client.InNamespace(ns)); err != nil {
		return err
	}
	slicesOf := map[string][]discoveryv1.EndpointSlice{}
	for _, s := range sliceList.Items {
		name := s.Labels[discoveryv1.LabelServiceName]
		in, ok := live[name]
		if !ok {
			return fmt.Errorf("slice %s outlived intent %s", s.Name, name)
		}
		if !metav1.IsControlledBy(&s, in) {
			return fmt.Errorf("slice %s is not controlled by intent %s", s.Name, name)
		}
		slicesOf[name] = append(slicesOf[name], s)
	}
	for name, in := range live {
		svc, ok := svcOf[name]
		if !ok {
			return fmt.Errorf("intent %s has no Service", name)
		}
		if err := checkService(svc, in); err != nil {
			return fmt.Errorf("intent %s: %w", name, err)
		}
		if in.Status.ObservedGeneration != in.Generation {
			return fmt.Errorf("intent %s: observedGeneration %d, generation %d", name, in.Status.ObservedGeneration, in.Generation)
		}
		if err := testenv.IntentCondition(in, v1alpha1.IntentConditionReady, metav1.ConditionTrue, v1alpha1.IntentReasonReady); err != nil {
			return fmt.Errorf("intent %s: %w", name, err)
		}
		if n := len(slicesOf[name]); n != 1 {
			return fmt.Errorf("intent %s has %d slices, want 1", name, n)
		}
		var got, want []string
		for _, ep := range slicesOf[name][0].Endpoints {
			got = append(got, ep.Addresses[0])
		}
		for _, b := range in.Spec.Backends {
			want = append(want, b.Address)
		}
		sort.Strings(got)
		sort.Strings(want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("intent %s publishes %v, want %v", name, got, want)
		}
	}
	return nil
}
