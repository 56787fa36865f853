package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
)

// podOn creates a ready pod labelled app=<app> on node, with ips (one per
// family) set through the status subresource.
func podOn(t *testing.T, ns, app, name, node string, ips ...string) {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "app", Image: "app:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
		},
	}
	if err := k8sClient.Create(ctx, pod); err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = ips[0]
	for _, ip := range ips {
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	testenv.SetPodReady(pod, true)
	if err := k8sClient.Status().Update(ctx, pod); err != nil {
		t.Fatalf("setting pod %s status: %v", name, err)
	}
}

// slicesOf lists the intent's slices.
func slicesOf(ctx context.Context, ns, svc string) ([]discoveryv1.EndpointSlice, error) {
	list := &discoveryv1.EndpointSliceList{}
	err := k8sClient.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: svc})
	return list.Items, err
}

// TestSlicesCarryTheHeadlessLabel: a headless intent's slices are labelled
// service.kubernetes.io/headless, as the EndpointSlice controller labels
// them; when the intent stops being headless the label goes.
func TestSlicesCarryTheHeadlessLabel(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	in := apiIntent(ns, "db")
	in.Spec.Headless = true
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	podOn(t, ns, "db", "db-0", "node-a", "10.22.0.1")
	headlessLabel := func(want bool) func() error {
		return func() error {
			slices, err := slicesOf(ctx, ns, "db")
			if err != nil {
				return err
			}
			// The headless Service, having no selector, is dual-stack
			// on the dual-stack test control plane: its IPv6 family,
			// without endpoints, has a placeholder slice, labelled too.
			withPod := 0
			for _, s := range slices {
				withPod += len(s.Endpoints)
				v, ok := s.Labels[corev1.IsHeadlessService]
				if ok != want || v != "" {
					return fmt.Errorf("slice %s labels %v, want %s present: %v", s.Name, s.Labels, corev1.IsHeadlessService, want)
				}
			}
			if withPod != 1 {
				return fmt.Errorf("%d slices, %d endpoints; want the pod once", len(slices), withPod)
			}
			return nil
		}
	}
	testenv.Eventually(t, 20*time.Second, headlessLabel(true))

	testenv.Eventually(t, 10*time.Second, func() error {
		got, err := getIntent(ctx, ns, "db")
		if err != nil {
			return err
		}
		got.Spec.Headless = false
		return k8sClient.Update(ctx, got)
	})
	testenv.Eventually(t, 20*time.Second, headlessLabel(false))
}

// TestSlicesOnlyOfTheServiceFamilies: a dual-stack pod behind a
// single-stack intent publishes its address of the Service's family only,
// and a static backend of the other family is left out and named.
func TestSlicesOnlyOfTheServiceFamilies(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	in := apiIntent(ns, "dual")
	in.Spec.Backends = []v1alpha1.Backend{{Address: "192.0.2.21", Port: ptr.To[int32](8080)}, {Address: "2001:db8::21", Port: ptr.To[int32](8080)}}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	podOn(t, ns, "dual", "web-0", "node-a", "10.21.0.1", "fd00:21::1")

	var families []corev1.IPFamily
	testenv.Eventually(t, 20*time.Second, func() error {
		svc, err := getService(ctx, ns, "dual")
		if err != nil {
			return err
		}
		families = svc.Spec.IPFamilies
		if len(families) != 1 {
			return fmt.Errorf("service families %v: the intent's Service is single-stack by default", families)
		}
		return nil
	})
	want, other := map[corev1.IPFamily][2]string{
		corev1.IPv4Protocol: {"10.21.0.1", "192.0.2.21"},
		corev1.IPv6Protocol: {"fd00:21::1", "2001:db8::21"},
	}[families[0]], map[corev1.IPFamily]string{corev1.IPv4Protocol: "2001:db8::21", corev1.IPv6Protocol: "192.0.2.21"}[families[0]]

	testenv.Eventually(t, 20*time.Second, func() error {
		slices, err := slicesOf(ctx, ns, "dual")
		if err != nil {
			return err
		}
		var addrs []string
		for _, s := range slices {
			if string(s.AddressType) != string(families[0]) {
				return fmt.Errorf("slice %s of address type %s, the Service has %v", s.Name, s.AddressType, families)
			}
			for _, ep := range s.Endpoints {
				addrs = append(addrs, ep.Addresses...)
			}
		}
		if len(addrs) != 2 || !(addrs[0] == want[0] && addrs[1] == want[1] || addrs[0] == want[1] && addrs[1] == want[0]) {
			return fmt.Errorf("published %v, want %v", addrs, want)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		got, err := getIntent(ctx, ns, "dual")
		if err != nil {
			return err
		}
		e := got.Status.Endpoints
		if e == nil || e.Total != 2 || e.Healthy != 2 || len(e.Unhealthy) != 1 ||
			e.Unhealthy[0].Address != other || e.Unhealthy[0].Reason != v1alpha1.EndpointReasonFamilyNotServed {
			return fmt.Errorf("endpoints status %+v, want 2/2 and %s named %s", e, other, v1alpha1.EndpointReasonFamilyNotServed)
		}
		return nil
	})
}

// TestSliceZoneFollowsTheNode: an endpoint's zone is its node's
// topology.kubernetes.io/zone label, and follows it when it changes.
func TestSliceZoneFollowsTheNode(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: ns + "-node", Labels: map[string]string{corev1.LabelTopologyZone: "zone-a"}}}
	if err := k8sClient.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), node) })
	if err := k8sClient.Create(ctx, apiIntent(ns, "zoned")); err != nil {
		t.Fatal(err)
	}
	podOn(t, ns, "zoned", "web-0", node.Name, "10.23.0.1")
	podOn(t, ns, "zoned", "web-1", "node-elsewhere", "10.23.0.2")

	zones := func(want0 string) func() error {
		return func() error {
			slices, err := slicesOf(ctx, ns, "zoned")
			if err != nil {
				return err
			}
			got := map[string]string{}
			for _, s := range slices {
				for _, ep := range s.Endpoints {
					got[ep.Addresses[0]] = ptr.Deref(ep.Zone, "")
				}
			}
			if len(got) != 2 || got["10.23.0.1"] != want0 || got["10.23.0.2"] != "" {
				return fmt.Errorf("zones %v, want 10.23.0.1 in %q and 10.23.0.2 in none", got, want0)
			}
			return nil
		}
	}
	testenv.Eventually(t, 20*time.Second, zones("zone-a"))

	setZone := func(zone string) {
		testenv.Eventually(t, 10*time.Second, func() error {
			n := &corev1.Node{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(node), n); err != nil {
				return err
			}
			if zone == "" {
				delete(n.Labels, corev1.LabelTopologyZone)
			} else {
				n.Labels[corev1.LabelTopologyZone] = zone
			}
			return k8sClient.Update(ctx, n)
		})
	}
	setZone("zone-b")
	testenv.Eventually(t, 20*time.Second, zones("zone-b"))
	setZone("")
	testenv.Eventually(t, 20*time.Second, zones(""))
}
