package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
)

// apiIntent selects pods labelled app=<name> and resolves the named port
// "http" on them.
func apiIntent(ns, name string) *v1alpha1.NetworkIntent {
	return &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromString("http"))}},
		},
	}
}

// makePod creates a pod labelled app=<app> on node-a, with the container
// port "http" (none when port is 0), and sets its IP and readiness through
// the status subresource, as a kubelet would.
func makePod(t *testing.T, ns, app, name, ip string, port int32, ready bool) *corev1.Pod {
	t.Helper()
	b := testenv.Pod(ns, name).App(app).Node("node-a").Running(ready, ip)
	if port != 0 {
		b.ContainerPort("http", port)
	}
	return b.CreateT(t, k8sClient)
}

func flipPodReady(t *testing.T, ns, name string, ready bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		pod := &corev1.Pod{}
		if err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
			return err
		}
		testenv.SetPodReady(pod, ready)
		return k8sClient.Status().Update(context.Background(), pod)
	})
}

// endpointState is what the slices publish of one address.
type endpointState struct {
	ready, serving, terminating bool
	pod, node                   string
	port                        int32
	slice                       string
}

// published reads the intent's slices: each address's state, and the slices.
func published(ctx context.Context, ns, svc string) (map[string]endpointState, []discoveryv1.EndpointSlice, error) {
	list := &discoveryv1.EndpointSliceList{}
	if err := k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: svc}); err != nil {
		return nil, nil, err
	}
	out := map[string]endpointState{}
	for _, s := range list.Items {
		if s.Labels[discoveryv1.LabelManagedBy] != v1alpha1.EndpointSliceManagedBy {
			return nil, nil, fmt.Errorf("slice %s managed-by %q", s.Name, s.Labels[discoveryv1.LabelManagedBy])
		}
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "NetworkIntent" || !ptr.Deref(s.OwnerReferences[0].Controller, false) {
			return nil, nil, fmt.Errorf("slice %s owners %+v", s.Name, s.OwnerReferences)
		}
		for _, ep := range s.Endpoints {
			st := endpointState{
				ready:       ptr.Deref(ep.Conditions.Ready, false),
				serving:     ptr.Deref(ep.Conditions.Serving, false),
				terminating: ptr.Deref(ep.Conditions.Terminating, false),
				node:        ptr.Deref(ep.NodeName, ""),
				slice:       s.Name,
			}
			if ep.TargetRef != nil {
				st.pod = ep.TargetRef.Name
			}
			if len(s.Ports) > 0 {
				st.port = ptr.Deref(s.Ports[0].Port, 0)
			}
			out[ep.Addresses[0]] = st
		}
	}
	return out, list.Items, nil
}

// waitPublished polls until check accepts the published endpoints.
func waitPublished(t *testing.T, timeout time.Duration, ns, svc string, check func(map[string]endpointState) error) map[string]endpointState {
	t.Helper()
	var got map[string]endpointState
	testenv.Eventually(t, timeout, func() error {
		var err error
		if got, _, err = published(context.Background(), ns, svc); err != nil {
			return err
		}
		return check(got)
	})
	return got
}

func TestSlicesFollowPods(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	if err := k8sClient.Create(ctx, apiIntent(ns, "api")); err != nil {
		t.Fatal(err)
	}
	makePod(t, ns, "api", "a", "10.20.0.1", 8080, true)
	makePod(t, ns, "api", "b", "10.20.0.2", 8081, false)
	makePod(t, ns, "api", "noport", "10.20.0.3", 0, true)
	makePod(t, ns, "other", "c", "10.20.0.4", 8080, true)

	waitPublished(t, 20*time.Second, ns, "api", func(eps map[string]endpointState) error {
		a, b := eps["10.20.0.1"], eps["10.20.0.2"]
		switch {
		case len(eps) != 2:
			return fmt.Errorf("published %v, want pods a and b only", eps)
		case !a.ready || !a.serving || a.pod != "a" || a.node != "node-a" || a.port != 8080:
			return fmt.Errorf("pod a: %+v", a)
		case b.ready || b.serving || b.port != 8081:
			return fmt.Errorf("pod b (not ready, named port 8081): %+v", b)
		case a.slice == b.slice:
			return errors.New("pods resolving the named port differently share a slice")
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		in, err := getIntent(ctx, ns, "api")
		if err != nil {
			return err
		}
		if err := testenv.IntentCondition(in, v1alpha1.IntentConditionEndpointsHealthy, metav1.ConditionFalse, v1alpha1.IntentReasonDegraded); err != nil {
			return err
		}
		e := in.Status.Endpoints
		if e == nil || e.Total != 2 || e.Healthy != 1 || e.Summary != "1/2" {
			return fmt.Errorf("endpoints status %+v", e)
		}
		reasons := map[string]v1alpha1.EndpointReason{}
		for _, u := range e.Unhealthy {
			reasons[u.Pod] = u.Reason
		}
		if reasons["b"] != "NotReady" || reasons["noport"] != "NoSuchPort" {
			return fmt.Errorf("unhealthy %+v", e.Unhealthy)
		}
		return nil
	})

	// Readiness flips both ways.
	flipPodReady(t, ns, "b", true)
	flipPodReady(t, ns, "a", false)
	waitPublished(t, 10*time.Second, ns, "api", func(eps map[string]endpointState) error {
		if eps["10.20.0.1"].ready || !eps["10.20.0.2"].ready {
			return fmt.Errorf("after flips: %v", eps)
		}
		return nil
	})

	// A terminating pod serves while it runs and is never ready. The pod
	// is bound to a node, so deletion waits for a kubelet that never
	// comes: it stays terminating.
	flipPodReady(t, ns, "a", true)
	if err := k8sClient.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a"}}); err != nil {
		t.Fatal(err)
	}
	waitPublished(t, 10*time.Second, ns, "api", func(eps map[string]endpointState) error {
		if a := eps["10.20.0.1"]; a.ready || !a.serving || !a.terminating {
			return fmt.Errorf("terminating pod a: %+v", a)
		}
		return nil
	})
	// Gone for good.
	if err := k8sClient.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a"}}, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	waitPublished(t, 10*time.Second, ns, "api", func(eps map[string]endpointState) error {
		if _, ok := eps["10.20.0.1"]; ok || len(eps) != 1 {
			return fmt.Errorf("after deletion: %v", eps)
		}
		return nil
	})

	// The intent goes: so do its slices.
	if err := k8sClient.Delete(ctx, apiIntent(ns, "api")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		_, items, err := published(ctx, ns, "api")
		if err != nil {
			return err
		}
		if len(items) != 0 {
			return fmt.Errorf("%d slices left", len(items))
		}
		return nil
	})
}

func TestManyPodsSliceAndSteadyState(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	if err := k8sClient.Create(ctx, apiIntent(ns, "big")); err != nil {
		t.Fatal(err)
	}
	const n = 250
	for i := range n {
		makePod(t, ns, "big", fmt.Sprintf("p%03d", i), fmt.Sprintf("10.30.%d.%d", i/200, i%200+1), 8080, true)
	}
	var items []discoveryv1.EndpointSlice
	testenv.Eventually(t, 60*time.Second, func() error {
		eps, list, err := published(ctx, ns, "big")
		if err != nil {
			return err
		}
		if len(eps) != n {
			return fmt.Errorf("%d endpoints published, want %d", len(eps), n)
		}
		if len(list) != 3 {
			return fmt.Errorf("%d slices, want 3", len(list))
		}
		for _, s := range list {
			if len(s.Endpoints) > 100 {
				return fmt.Errorf("slice %s has %d endpoints", s.Name, len(s.Endpoints))
			}
		}
		items = list
		return nil
	})
	versions := func(list []discoveryv1.EndpointSlice) []string {
		var v []string
		for _, s := range list {
			v = append(v, s.Name+"@"+s.ResourceVersion)
		}
		sort.Strings(v)
		return v
	}
	want := versions(items)

	// Reconciles with nothing changed write nothing.
	for i := range 3 {
		resync(t, ns, "big", "resync", fmt.Sprint(i))
		_, list, err := published(ctx, ns, "big")
		if err != nil {
			t.Fatal(err)
		}
		if got := versions(list); !slices.Equal(got, want) {
			t.Fatalf("resync %d rewrote slices: %v -> %v", i, want, got)
		}
	}

	// One flip rewrites one slice.
	flipPodReady(t, ns, "p120", false)
	testenv.Eventually(t, 10*time.Second, func() error {
		eps, list, err := published(ctx, ns, "big")
		if err != nil {
			return err
		}
		if eps["10.30.0.121"].ready {
			return errors.New("p120 still ready")
		}
		changed := 0
		for i, v := range versions(list) {
			if v != want[i] {
				changed++
			}
		}
		if changed != 1 {
			return fmt.Errorf("%d slices rewritten for one flip, want 1", changed)
		}
		return nil
	})
}

func TestStaticBackendsAndNoBackends(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	in := apiIntent(ns, "ext")
	in.Spec.Selector = nil
	in.Spec.Ports[0].TargetPort = ptr.To(intstr.FromInt32(5432))
	in.Spec.Backends = []v1alpha1.Backend{{Address: "192.0.2.10"}, {Address: "2001:db8::10"}}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		eps, list, err := published(ctx, ns, "ext")
		if err != nil {
			return err
		}
		// The Service is IPv4 only (a single-stack test control
		// plane): the IPv6 backend is not published.
		if len(eps) != 1 || len(list) != 1 || eps["192.0.2.10"].port != 5432 || !eps["192.0.2.10"].ready {
			return fmt.Errorf("published %v in %d slices, want the IPv4 backend alone", eps, len(list))
		}
		return nil
	})

	empty := apiIntent(ns, "lonely")
	if err := k8sClient.Create(ctx, empty); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		got, err := getIntent(ctx, ns, "lonely")
		if err != nil {
			return err
		}
		if err := testenv.IntentCondition(got, v1alpha1.IntentConditionEndpointsHealthy, metav1.ConditionFalse, v1alpha1.IntentReasonNoBackends); err != nil {
			return err
		}
		return testenv.IntentCondition(got, v1alpha1.IntentConditionReady, metav1.ConditionFalse, v1alpha1.IntentReasonNoBackends)
	})
}
