package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
)

// zoneNode creates a Node labelled with zone, removed after the test.
func zoneNode(t *testing.T, name, zone string) {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelTopologyZone: zone}}}
	if err := k8sClient.Create(context.Background(), node); err != nil {
		t.Fatalf("creating node %s: %v", name, err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), node) })
}

// hintsAre checks the published hints of each address: "zone" or
// "zone/node", "" for none.
func hintsAre(ns, svc string, want map[string]string) func() error {
	return func() error {
		slices, err := slicesOf(context.Background(), ns, svc)
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, s := range slices {
			for _, ep := range s.Endpoints {
				got[ep.Addresses[0]] = hintString(ep.Hints)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("hints %v, want %v", got, want)
		}
		return nil
	}
}

func hintString(h *discoveryv1.EndpointHints) string {
	if h == nil {
		return ""
	}
	var parts []string
	for _, z := range h.ForZones {
		parts = append(parts, z.Name)
	}
	for _, n := range h.ForNodes {
		parts = append(parts, n.Name)
	}
	return strings.Join(parts, "/")
}

// serviceDistribution checks the Service's trafficDistribution ("" for
// unset).
func serviceDistribution(ns, name, want string) func() error {
	return func() error {
		svc, err := getService(context.Background(), ns, name)
		if err != nil {
			return err
		}
		if got := ptr.Deref(svc.Spec.TrafficDistribution, ""); got != want {
			return fmt.Errorf("Service trafficDistribution %q, want %q", got, want)
		}
		return nil
	}
}

// TestZoneHintsFollowHealth: with trafficDistribution the Service carries
// it and each ready endpoint is hinted for its node's zone; when a zone's
// only ready endpoint goes, every hint goes (status and an event say why),
// and comes back with it; PreferSameNode adds the node; dropping the field
// drops both.
func TestZoneHintsFollowHealth(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	nodeA, nodeB := ns+"-a", ns+"-b"
	zoneNode(t, nodeA, "zone-a")
	zoneNode(t, nodeB, "zone-b")
	in := apiIntent(ns, "payments")
	in.Spec.TrafficDistribution = v1alpha1.TrafficDistributionPreferSameZone
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	podOn(t, ns, "payments", "pay-a", nodeA, "10.24.0.1")
	podOn(t, ns, "payments", "pay-b0", nodeB, "10.24.0.2")
	podOn(t, ns, "payments", "pay-b1", nodeB, "10.24.0.3")

	testenv.Eventually(t, 20*time.Second, serviceDistribution(ns, "payments", "PreferSameZone"))
	hinted := map[string]string{"10.24.0.1": "zone-a", "10.24.0.2": "zone-b", "10.24.0.3": "zone-b"}
	testenv.Eventually(t, 20*time.Second, hintsAre(ns, "payments", hinted))

	// One of zone-b's two goes: the other still serves zone-b.
	flipPodReady(t, ns, "pay-b1", false)
	testenv.Eventually(t, 20*time.Second, hintsAre(ns, "payments", map[string]string{"10.24.0.1": "zone-a", "10.24.0.2": "zone-b", "10.24.0.3": ""}))

	// zone-a's only one goes: no hints at all, so that no proxy keeps
	// zone-a's clients waiting for a zone-a endpoint.
	flipPodReady(t, ns, "pay-a", false)
	testenv.Eventually(t, 20*time.Second, hintsAre(ns, "payments", map[string]string{"10.24.0.1": "", "10.24.0.2": "", "10.24.0.3": ""}))
	testenv.Eventually(t, 20*time.Second, func() error {
		got, err := getIntent(ctx, ns, "payments")
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.IntentConditionEndpointsHealthy)
		if c == nil || !strings.Contains(c.Message, "zone hints withheld") || !strings.Contains(c.Message, "zone zone-a has no ready endpoint") {
			return fmt.Errorf("EndpointsHealthy %+v does not say why the hints are withheld", c)
		}
		return nil
	})
	testenv.Eventually(t, 20*time.Second, eventSeen(ns, "ZoneHintsWithheld"))

	flipPodReady(t, ns, "pay-a", true)
	flipPodReady(t, ns, "pay-b1", true)
	testenv.Eventually(t, 20*time.Second, hintsAre(ns, "payments", hinted))

	setDistribution := func(dist v1alpha1.TrafficDistribution) {
		testenv.Eventually(t, 10*time.Second, func() error {
			got, err := getIntent(ctx, ns, "payments")
			if err != nil {
				return err
			}
			got.Spec.TrafficDistribution = dist
			return k8sClient.Update(ctx, got)
		})
	}
	setDistribution(v1alpha1.TrafficDistributionPreferSameNode)
	testenv.Eventually(t, 20*time.Second, serviceDistribution(ns, "payments", "PreferSameNode"))
	testenv.Eventually(t, 20*time.Second, hintsAre(ns, "payments", map[string]string{"10.24.0.1": "zone-a/" + nodeA, "10.24.0.2": "zone-b/" + nodeB, "10.24.0.3": "zone-b/" + nodeB}))

	setDistribution("")
	testenv.Eventually(t, 20*time.Second, serviceDistribution(ns, "payments", ""))
	testenv.Eventually(t, 20*time.Second, hintsAre(ns, "payments", map[string]string{"10.24.0.1": "", "10.24.0.2": "", "10.24.0.3": ""}))
}

// TestStaticBackendWithholdsZoneHints: a static backend is on no node, so
// has no zone: while it is in traffic the intent's slices carry no hints.
func TestStaticBackendWithholdsZoneHints(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	nodeA := ns + "-a"
	zoneNode(t, nodeA, "zone-a")
	in := apiIntent(ns, "mixed")
	in.Spec.Ports[0].TargetPort = nil
	in.Spec.TrafficDistribution = v1alpha1.TrafficDistributionPreferClose
	in.Spec.Backends = []v1alpha1.Backend{{Address: "192.0.2.10"}}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	podOn(t, ns, "mixed", "web-0", nodeA, "10.24.1.1")
	testenv.Eventually(t, 20*time.Second, hintsAre(ns, "mixed", map[string]string{"10.24.1.1": "", "192.0.2.10": ""}))
	testenv.Eventually(t, 20*time.Second, func() error {
		got, err := getIntent(ctx, ns, "mixed")
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.IntentConditionEndpointsHealthy)
		if c == nil || !strings.Contains(c.Message, "endpoint 192.0.2.10 has no zone: a static backend is on no node") {
			return fmt.Errorf("EndpointsHealthy %+v does not name the static backend", c)
		}
		return nil
	})

	// Without the backend, the pod is hinted.
	testenv.Eventually(t, 10*time.Second, func() error {
		got, err := getIntent(ctx, ns, "mixed")
		if err != nil {
			return err
		}
		got.Spec.Backends = nil
		return k8sClient.Update(ctx, got)
	})
	testenv.Eventually(t, 20*time.Second, hintsAre(ns, "mixed", map[string]string{"10.24.1.1": "zone-a"}))
}
