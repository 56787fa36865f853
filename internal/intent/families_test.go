package intent

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
)

// A new primary family is refused by the API server on a Service, so it
// recreates the Service; adding or dropping the second family does not,
// nor does an intent that names no family.
func TestRecreateReasonForFamilies(t *testing.T) {
	svc := func(families ...corev1.IPFamily) *corev1.Service {
		return &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, IPFamilies: families}}
	}
	in := func(families ...corev1.IPFamily) *v1alpha1.NetworkIntent {
		return &v1alpha1.NetworkIntent{Spec: v1alpha1.NetworkIntentSpec{Exposure: v1alpha1.ExposureClusterIP, IPFamilies: families}}
	}
	v4, v6 := corev1.IPv4Protocol, corev1.IPv6Protocol
	cases := []struct {
		name     string
		have     *corev1.Service
		want     *v1alpha1.NetworkIntent
		recreate bool
	}{
		{"same", svc(v4), in(corev1.IPv4Protocol), false},
		{"second added", svc(v4), in(corev1.IPv4Protocol, corev1.IPv6Protocol), false},
		{"second dropped", svc(v4, v6), in(corev1.IPv4Protocol), false},
		{"none named", svc(v6, v4), in(), false},
		{"primary changed", svc(v4), in(corev1.IPv6Protocol), true},
		{"primary swapped", svc(v4, v6), in(corev1.IPv6Protocol, corev1.IPv4Protocol), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			why := RecreateReason(tc.have, tc.want)
			if (why != "") != tc.recreate {
				t.Fatalf("RecreateReason = %q, want recreate %v", why, tc.recreate)
			}
			if tc.recreate && !strings.Contains(why, "primary IP family") {
				t.Errorf("reason %q does not name the primary family", why)
			}
		})
	}
}

// The second family the API server adds to a dual-stack Service that
// named one is no reason to write; any other difference is.
func TestUnchangedIgnoresTheDefaultedSecondFamily(t *testing.T) {
	desired := func(policy corev1.IPFamilyPolicy, families ...corev1.IPFamily) *corev1ac.ServiceApplyConfiguration {
		return corev1ac.Service("web", "shop").WithSpec(corev1ac.ServiceSpec().WithType(corev1.ServiceTypeClusterIP).
			WithIPFamilyPolicy(policy).WithIPFamilies(families...))
	}
	v4, v6 := corev1.IPv4Protocol, corev1.IPv6Protocol
	cases := []struct {
		name          string
		current, want *corev1ac.ServiceApplyConfiguration
		unchanged     bool
	}{
		{"second defaulted", desired(corev1.IPFamilyPolicyPreferDualStack, v4, v6), desired(corev1.IPFamilyPolicyPreferDualStack, v4), true},
		{"both named", desired(corev1.IPFamilyPolicyRequireDualStack, v4, v6), desired(corev1.IPFamilyPolicyRequireDualStack, v4, v6), true},
		{"single wanted", desired(corev1.IPFamilyPolicyRequireDualStack, v4, v6), desired(corev1.IPFamilyPolicySingleStack, v4), false},
		{"other primary", desired(corev1.IPFamilyPolicyPreferDualStack, v6, v4), desired(corev1.IPFamilyPolicyPreferDualStack, v4), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unchanged(tc.current, tc.want); got != tc.unchanged {
				t.Errorf("Unchanged = %v, want %v", got, tc.unchanged)
			}
		})
	}
}

// DesiredService carries the intent's policy and families, and none on
// an ExternalName Service.
func TestDesiredServiceFamilies(t *testing.T) {
	in := &v1alpha1.NetworkIntent{Spec: v1alpha1.NetworkIntentSpec{
		Exposure:       v1alpha1.ExposureLoadBalancer,
		IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
		IPFamilies:     []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol},
	}}
	in.Name, in.Namespace = "web", "shop"
	spec := DesiredService(in, "").Spec
	if ptr.Deref(spec.IPFamilyPolicy, "") != corev1.IPFamilyPolicyRequireDualStack || len(spec.IPFamilies) != 2 || spec.IPFamilies[0] != corev1.IPv6Protocol {
		t.Errorf("policy %v families %v", spec.IPFamilyPolicy, spec.IPFamilies)
	}
	in.Spec.Exposure = v1alpha1.ExposureExternalName
	spec = DesiredService(in, "api.example.com").Spec
	if spec.IPFamilyPolicy != nil || len(spec.IPFamilies) != 0 {
		t.Errorf("ExternalName Service with policy %v families %v", spec.IPFamilyPolicy, spec.IPFamilies)
	}
}
