package intent

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
)

func TestRecreateReason(t *testing.T) {
	svc := func(typ corev1.ServiceType, clusterIP string, class *string) *corev1.Service {
		return &corev1.Service{Spec: corev1.ServiceSpec{Type: typ, ClusterIP: clusterIP, LoadBalancerClass: class}}
	}
	intent := func(e v1alpha1.Exposure, headless bool, class string) *v1alpha1.NetworkIntent {
		in := &v1alpha1.NetworkIntent{Spec: v1alpha1.NetworkIntentSpec{Exposure: e, Headless: headless}}
		if class != "" {
			in.Spec.LoadBalancer = &v1alpha1.LoadBalancerSpec{Class: class}
		}
		return in
	}
	cases := []struct {
		name     string
		have     *corev1.Service
		want     *v1alpha1.NetworkIntent
		recreate bool
	}{
		{"ClusterIP to NodePort", svc(corev1.ServiceTypeClusterIP, "10.0.0.1", nil), intent(v1alpha1.ExposureNodePort, false, ""), false},
		{"NodePort to LoadBalancer", svc(corev1.ServiceTypeNodePort, "10.0.0.1", nil), intent(v1alpha1.ExposureLoadBalancer, false, "a/b"), false},
		{"LoadBalancer to ClusterIP", svc(corev1.ServiceTypeLoadBalancer, "10.0.0.1", ptr.To("a/b")), intent(v1alpha1.ExposureClusterIP, false, ""), false},
		{"ClusterIP to ExternalName", svc(corev1.ServiceTypeClusterIP, "10.0.0.1", nil), intent(v1alpha1.ExposureExternalName, false, ""), true},
		{"ExternalName to ClusterIP", svc(corev1.ServiceTypeExternalName, "", nil), intent(v1alpha1.ExposureClusterIP, false, ""), true},
		{"cluster IP to headless", svc(corev1.ServiceTypeClusterIP, "10.0.0.1", nil), intent(v1alpha1.ExposureClusterIP, true, ""), true},
		{"headless to cluster IP", svc(corev1.ServiceTypeClusterIP, corev1.ClusterIPNone, nil), intent(v1alpha1.ExposureClusterIP, false, ""), true},
		{"headless stays", svc(corev1.ServiceTypeClusterIP, corev1.ClusterIPNone, nil), intent(v1alpha1.ExposureClusterIP, true, ""), false},
		{"another load balancer class", svc(corev1.ServiceTypeLoadBalancer, "10.0.0.1", ptr.To("a/b")), intent(v1alpha1.ExposureLoadBalancer, false, "c/d"), true},
		{"same load balancer class", svc(corev1.ServiceTypeLoadBalancer, "10.0.0.1", ptr.To("a/b")), intent(v1alpha1.ExposureLoadBalancer, false, "a/b"), false},
		{"no load balancer class either side", svc(corev1.ServiceTypeLoadBalancer, "10.0.0.1", nil), intent(v1alpha1.ExposureLoadBalancer, false, ""), false},
		{"load balancer class set", svc(corev1.ServiceTypeLoadBalancer, "10.0.0.1", nil), intent(v1alpha1.ExposureLoadBalancer, false, "a/b"), true},
		{"load balancer class cleared", svc(corev1.ServiceTypeLoadBalancer, "10.0.0.1", ptr.To("a/b")), intent(v1alpha1.ExposureLoadBalancer, false, ""), true},
		{"load balancer class cleared, loadBalancer kept", svc(corev1.ServiceTypeLoadBalancer, "10.0.0.1", ptr.To("a/b")), func() *v1alpha1.NetworkIntent {
			in := intent(v1alpha1.ExposureLoadBalancer, false, "")
			in.Spec.LoadBalancer = &v1alpha1.LoadBalancerSpec{ExternalTrafficPolicy: "Local"}
			return in
		}(), true},
		{"ClusterIP to LoadBalancer with a class", svc(corev1.ServiceTypeClusterIP, "10.0.0.1", nil), intent(v1alpha1.ExposureLoadBalancer, false, "a/b"), false},
		{"NodePort to LoadBalancer without a class", svc(corev1.ServiceTypeNodePort, "10.0.0.1", nil), intent(v1alpha1.ExposureLoadBalancer, false, ""), false},
		{"LoadBalancer with a class to NodePort", svc(corev1.ServiceTypeLoadBalancer, "10.0.0.1", ptr.To("a/b")), intent(v1alpha1.ExposureNodePort, false, ""), false},
		{"LoadBalancer with a class to ExternalName", svc(corev1.ServiceTypeLoadBalancer, "10.0.0.1", ptr.To("a/b")), intent(v1alpha1.ExposureExternalName, false, ""), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := RecreateReason(tc.have, tc.want) != ""; got != tc.recreate {
				t.Fatalf("recreate %v, want %v", got, tc.recreate)
			}
		})
	}
}

func TestDesiredServiceHasNoSelector(t *testing.T) {
	in := &v1alpha1.NetworkIntent{Spec: v1alpha1.NetworkIntentSpec{
		Exposure: v1alpha1.ExposureNodePort,
		Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80, NodePort: ptr.To[int32](30080)}},
		DNS:      &v1alpha1.DNSSpec{TTL: ptr.To[int32](5)},
	}}
	in.Name, in.Namespace = "web", "shop"
	svc := DesiredService(in, "")
	switch {
	case svc.Spec.Selector != nil:
		t.Fatalf("selector %v", svc.Spec.Selector)
	case *svc.Spec.Ports[0].TargetPort != TargetPort(in.Spec.Ports[0]) || *svc.Spec.Ports[0].Protocol != corev1.ProtocolTCP || *svc.Spec.Ports[0].NodePort != 30080:
		t.Fatalf("port %+v", svc.Spec.Ports[0])
	case svc.Annotations[v1alpha1.AnnotationDNSTTL] != "5":
		t.Fatalf("annotations %v", svc.Annotations)
	case len(svc.OwnerReferences) != 1 || !*svc.OwnerReferences[0].Controller:
		t.Fatalf("owner %+v", svc.OwnerReferences)
	}
}

// TestDesiredServiceTrafficDistribution: the intent's trafficDistribution is
// the Service's, and an intent without one leaves the field to others.
func TestDesiredServiceTrafficDistribution(t *testing.T) {
	for _, dist := range []v1alpha1.TrafficDistribution{"", v1alpha1.TrafficDistributionPreferClose, v1alpha1.TrafficDistributionPreferSameZone, v1alpha1.TrafficDistributionPreferSameNode} {
		in := &v1alpha1.NetworkIntent{Spec: v1alpha1.NetworkIntentSpec{
			Exposure:            v1alpha1.ExposureClusterIP,
			Ports:               []v1alpha1.IntentPort{{Name: "http", Port: 80}},
			TrafficDistribution: dist,
		}}
		got := DesiredService(in, "").Spec.TrafficDistribution
		if (dist == "" && got != nil) || (dist != "" && (got == nil || *got != string(dist))) {
			t.Errorf("trafficDistribution %q gives %v", dist, ptr.Deref(got, "<unset>"))
		}
	}
}

func TestUnchanged(t *testing.T) {
	desired := func() *corev1ac.ServiceApplyConfiguration {
		return corev1ac.Service("web", "shop").WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeLoadBalancer).
			WithPorts(corev1ac.ServicePort().WithName("http").WithPort(80)))
	}
	cases := []struct {
		name    string
		current func() *corev1ac.ServiceApplyConfiguration
		want    bool
	}{
		{"the same", desired, true},
		{"defaults recorded by the create", func() *corev1ac.ServiceApplyConfiguration {
			c := desired()
			c.Spec.WithSessionAffinity(corev1.ServiceAffinityNone).
				WithInternalTrafficPolicy(corev1.ServiceInternalTrafficPolicyCluster).
				WithExternalTrafficPolicy(corev1.ServiceExternalTrafficPolicyCluster).
				WithAllocateLoadBalancerNodePorts(true)
			return c
		}, true},
		{"a traffic policy the intent no longer asks for", func() *corev1ac.ServiceApplyConfiguration {
			return desired().WithSpec(desired().Spec.WithExternalTrafficPolicy(corev1.ServiceExternalTrafficPolicyLocal))
		}, false},
		{"session affinity not at its default", func() *corev1ac.ServiceApplyConfiguration {
			return desired().WithSpec(desired().Spec.WithSessionAffinity(corev1.ServiceAffinityClientIP))
		}, false},
		{"node ports not allocated", func() *corev1ac.ServiceApplyConfiguration {
			return desired().WithSpec(desired().Spec.WithAllocateLoadBalancerNodePorts(false))
		}, false},
		{"another port", func() *corev1ac.ServiceApplyConfiguration {
			c := desired()
			c.Spec.WithPorts(corev1ac.ServicePort().WithName("metrics").WithPort(9090))
			return c
		}, false},
		{"no spec", func() *corev1ac.ServiceApplyConfiguration { return corev1ac.Service("web", "shop") }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			current := tc.current()
			before, _ := json.Marshal(current)
			if got := Unchanged(current, desired()); got != tc.want {
				t.Errorf("Unchanged = %v, want %v", got, tc.want)
			}
			if after, _ := json.Marshal(current); string(after) != string(before) {
				t.Errorf("Unchanged modified its argument")
			}
		})
	}
}
