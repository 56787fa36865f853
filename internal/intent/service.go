package intent

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
)

// ServiceType is the Service type an exposure produces.
func ServiceType(e v1alpha1.Exposure) corev1.ServiceType {
	switch e {
	case v1alpha1.ExposureNodePort:
		return corev1.ServiceTypeNodePort
	case v1alpha1.ExposureLoadBalancer:
		return corev1.ServiceTypeLoadBalancer
	case v1alpha1.ExposureExternalName:
		return corev1.ServiceTypeExternalName
	default:
		return corev1.ServiceTypeClusterIP
	}
}

// DesiredService is the Service the intent declares, as a server-side apply
// configuration holding exactly the fields the operator owns. externalName is
// the target to publish for an ExternalName intent (the first healthy one).
// The Service has no selector: the operator writes its EndpointSlices.
func DesiredService(in *v1alpha1.NetworkIntent, externalName string) *corev1ac.ServiceApplyConfiguration {
	typ := ServiceType(in.Spec.Exposure)
	svc := corev1ac.Service(in.Name, in.Namespace).
		WithLabels(map[string]string{v1alpha1.LabelManagedBy: v1alpha1.ManagedBy, v1alpha1.LabelIntent: in.Name}).
		WithOwnerReferences(metav1ac.OwnerReference().
			WithAPIVersion(v1alpha1.GroupVersion.String()).
			WithKind("NetworkIntent").
			WithName(in.Name).
			WithUID(in.UID).
			WithController(true).
			WithBlockOwnerDeletion(true))
	if in.Spec.DNS != nil && in.Spec.DNS.TTL != nil {
		svc.WithAnnotations(map[string]string{v1alpha1.AnnotationDNSTTL: strconv.Itoa(int(*in.Spec.DNS.TTL))})
	}

	spec := corev1ac.ServiceSpec().WithType(typ)
	for _, p := range in.Spec.Ports {
		port := corev1ac.ServicePort().
			WithName(p.Name).
			WithPort(p.Port).
			WithProtocol(Protocol(p))
		if typ != corev1.ServiceTypeExternalName {
			port.WithTargetPort(TargetPort(p))
		}
		if p.NodePort != nil && (typ == corev1.ServiceTypeNodePort || typ == corev1.ServiceTypeLoadBalancer) {
			port.WithNodePort(*p.NodePort)
		}
		if p.AppProtocol != nil {
			port.WithAppProtocol(*p.AppProtocol)
		}
		spec.WithPorts(port)
	}
	switch typ {
	case corev1.ServiceTypeExternalName:
		spec.WithExternalName(externalName)
	case corev1.ServiceTypeClusterIP:
		if in.Spec.Headless {
			spec.WithClusterIP(corev1.ClusterIPNone)
		}
	case corev1.ServiceTypeLoadBalancer:
		if class := LoadBalancerClass(in); class != "" {
			spec.WithLoadBalancerClass(class)
		}
	}
	if typ == corev1.ServiceTypeNodePort || typ == corev1.ServiceTypeLoadBalancer {
		if lb := in.Spec.LoadBalancer; lb != nil && lb.ExternalTrafficPolicy != "" {
			spec.WithExternalTrafficPolicy(lb.ExternalTrafficPolicy)
		}
	}
	if typ != corev1.ServiceTypeExternalName {
		if in.Spec.IPFamilyPolicy != nil {
			spec.WithIPFamilyPolicy(*in.Spec.IPFamilyPolicy)
		}
		spec.WithIPFamilies(in.Spec.IPFamilies...)
	}
	if typ != corev1.ServiceTypeExternalName && in.Spec.TrafficDistribution != "" {
		spec.WithTrafficDistribution(string(in.Spec.TrafficDistribution))
	}
	if typ != corev1.ServiceTypeExternalName && in.Spec.SessionAffinity != "" {
		spec.WithSessionAffinity(in.Spec.SessionAffinity)
	}
	return svc.WithSpec(spec)
}

// LoadBalancerClass is the intent's loadBalancer.class; "" for none (the
// cluster's own load-balancer implementation).
func LoadBalancerClass(in *v1alpha1.NetworkIntent) string {
	if lb := in.Spec.LoadBalancer; lb != nil {
		return lb.Class
	}
	return ""
}

// TargetPort is the port's targetPort, defaulting to its port.
func TargetPort(p v1alpha1.IntentPort) intstr.IntOrString {
	if p.TargetPort != nil {
		return *p.TargetPort
	}
	return intstr.FromInt32(p.Port)
}

// Protocol is the port's protocol, defaulting to TCP.
func Protocol(p v1alpha1.IntentPort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}

// RecreateReason says why the existing Service cannot be changed into the
// one the intent declares in place, or "" when it can. The API server
// refuses these changes on an existing Service. A changed loadBalancerClass
// is one: only one of the two classes can be the address-pool class, so the
// recreated Service's address comes from its new class's implementation.
func RecreateReason(existing *corev1.Service, in *v1alpha1.NetworkIntent) string {
	want := ServiceType(in.Spec.Exposure)
	have := existing.Spec.Type
	switch {
	case (have == corev1.ServiceTypeExternalName) != (want == corev1.ServiceTypeExternalName):
		return "type " + string(have) + " cannot change to " + string(want) + " in place"
	case want == corev1.ServiceTypeClusterIP && have != corev1.ServiceTypeExternalName &&
		(existing.Spec.ClusterIP == corev1.ClusterIPNone) != in.Spec.Headless:
		return "a Service cannot switch between headless and a cluster IP in place"
	case want == corev1.ServiceTypeLoadBalancer && have == corev1.ServiceTypeLoadBalancer &&
		ptr.Deref(existing.Spec.LoadBalancerClass, "") != LoadBalancerClass(in):
		// The API refuses every change of the class of a LoadBalancer
		// Service, setting or clearing it included.
		return "loadBalancerClass cannot change in place"
	case want != corev1.ServiceTypeExternalName && have != corev1.ServiceTypeExternalName &&
		len(in.Spec.IPFamilies) > 0 && len(existing.Spec.IPFamilies) > 0 &&
		in.Spec.IPFamilies[0] != existing.Spec.IPFamilies[0]:
		return "the primary IP family cannot change from " + string(existing.Spec.IPFamilies[0]) + " to " + string(in.Spec.IPFamilies[0]) + " in place"
	}
	return ""
}

// Unchanged reports whether applying desired would change nothing the
// operator owns. current holds the fields it owns (corev1ac.ExtractService).
// A create records as the creator's the fields the API server defaults
// (sessionAffinity, internalTrafficPolicy, externalTrafficPolicy,
// allocateLoadBalancerNodePorts) although the intent leaves them out; at
// their default value they are no reason to write, else every Service
// would be applied once more right after its create.
func Unchanged(current, desired *corev1ac.ServiceApplyConfiguration) bool {
	if current == nil || desired == nil || current.Spec == nil || desired.Spec == nil {
		return equality.Semantic.DeepEqual(current, desired)
	}
	owned := *current
	spec := *current.Spec
	owned.Spec = &spec
	want := desired.Spec
	if want.SessionAffinity == nil && isValue(spec.SessionAffinity, corev1.ServiceAffinityNone) {
		spec.SessionAffinity = nil
	}
	if want.InternalTrafficPolicy == nil && isValue(spec.InternalTrafficPolicy, corev1.ServiceInternalTrafficPolicyCluster) {
		spec.InternalTrafficPolicy = nil
	}
	if want.ExternalTrafficPolicy == nil && isValue(spec.ExternalTrafficPolicy, corev1.ServiceExternalTrafficPolicyCluster) {
		spec.ExternalTrafficPolicy = nil
	}
	if want.AllocateLoadBalancerNodePorts == nil && isValue(spec.AllocateLoadBalancerNodePorts, true) {
		spec.AllocateLoadBalancerNodePorts = nil
	}
	// A dual-stack policy with one family declared gets the other family
	// second: the API server's default, no reason to write.
	if len(want.IPFamilies) == 1 && len(spec.IPFamilies) == 2 && spec.IPFamilies[0] == want.IPFamilies[0] &&
		want.IPFamilyPolicy != nil && *want.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack {
		spec.IPFamilies = want.IPFamilies
	}
	return equality.Semantic.DeepEqual(&owned, desired)
}

func isValue[T comparable](p *T, v T) bool { return p != nil && *p == v }
