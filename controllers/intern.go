package controllers

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/netintent/netintent/api/v1alpha1"
)

// knownStrings are strings that recur in every cached object of a kind:
// label and annotation keys, API versions and kinds, condition types,
// statuses and reasons, enumerations. A decoder allocates each occurrence
// anew; the cache transforms replace them by these constants, so that
// thousands of objects share one copy. The table is fixed, so an object's
// own strings (names, messages, addresses) are never kept beyond it.
var knownStrings = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		// meta
		"True", "False", "Unknown", "v1", "Update", "Apply", "FieldsV1",
		v1alpha1.GroupVersion.String(), "NetworkIntent", "AddressPool", "Service", "Pod", "EndpointSlice",
		v1alpha1.FieldOwner, v1alpha1.AddressFieldOwner, v1alpha1.PodConditionFieldOwner, v1alpha1.IntentFinalizer,
		v1alpha1.LabelIntent, v1alpha1.LabelManagedBy, v1alpha1.ManagedBy, v1alpha1.EndpointSliceManagedBy,
		v1alpha1.LabelReadinessGate, v1alpha1.ReadinessGateEnabled,
		v1alpha1.AnnotationDNSTTL, v1alpha1.AnnotationAddress, v1alpha1.AnnotationPool, v1alpha1.AnnotationAllocatedFromPool,
		corev1.EndpointsLastChangeTriggerTime, corev1.IsHeadlessService,
		discoveryv1.LabelServiceName, discoveryv1.LabelManagedBy, discoveryv1.LabelSkipMirror,
		"kubernetes.io/metadata.name",
		// conditions
		v1alpha1.IntentConditionReady, v1alpha1.IntentConditionServiceReady, v1alpha1.IntentConditionEndpointsHealthy, v1alpha1.IntentConditionAddressAssigned,
		v1alpha1.IntentReasonReady, v1alpha1.IntentReasonApplied, v1alpha1.IntentReasonServiceConflict, v1alpha1.IntentReasonRecreating,
		v1alpha1.IntentReasonApplyFailed, v1alpha1.IntentReasonAllHealthy, v1alpha1.IntentReasonDegraded, v1alpha1.IntentReasonBelowHealthyFloor,
		v1alpha1.IntentReasonNoBackends, v1alpha1.IntentReasonNoHealthyTarget,
		v1alpha1.AddressReasonAssigned, v1alpha1.AddressReasonPending, v1alpha1.AddressReasonPoolExhausted, v1alpha1.AddressReasonAddressTaken,
		v1alpha1.AddressReasonAddressNotInPool, v1alpha1.AddressReasonPoolNotAllowed, v1alpha1.AddressReasonNoPool,
		v1alpha1.PodConditionBackendHealthy, v1alpha1.BackendHealthyProbePassed, v1alpha1.BackendHealthyNotChecked,
		string(corev1.PodReady), string(corev1.ContainersReady), string(corev1.PodScheduled), string(corev1.PodInitialized),
		string(corev1.PodReadyToStartContainers),
		string(corev1.PodRunning), string(corev1.PodPending), string(corev1.PodSucceeded), string(corev1.PodFailed),
		// enumerations
		string(v1alpha1.ExposureClusterIP), string(v1alpha1.ExposureNodePort), string(v1alpha1.ExposureLoadBalancer), string(v1alpha1.ExposureExternalName),
		string(v1alpha1.HealthCheckEnforce), string(v1alpha1.HealthCheckObserve),
		string(corev1.ProtocolTCP), string(corev1.ProtocolUDP), string(corev1.ProtocolSCTP),
		string(corev1.IPv4Protocol), string(corev1.IPv6Protocol),
		string(corev1.IPFamilyPolicySingleStack), string(corev1.IPFamilyPolicyPreferDualStack), string(corev1.IPFamilyPolicyRequireDualStack),
		string(corev1.ServiceAffinityNone), string(corev1.ServiceAffinityClientIP), corev1.ClusterIPNone,
		string(corev1.ServiceExternalTrafficPolicyCluster), string(corev1.ServiceExternalTrafficPolicyLocal),
		string(discoveryv1.AddressTypeIPv4), string(discoveryv1.AddressTypeIPv6), string(discoveryv1.AddressTypeFQDN),
		"http", "https", "grpc", "h2c", "dns", "dns-tcp", "metrics",
	} {
		m[s] = s
	}
	return m
}()

// intern is s, or the known string equal to it.
func intern(s string) string {
	if k, ok := knownStrings[s]; ok {
		return k
	}
	return s
}

// internStrings interns a map's keys and values in place. A map keeps the
// key of its latest assignment, so assigning each entry anew swaps the
// key too.
func internStrings(m map[string]string) {
	for k, v := range m {
		_, knownKey := knownStrings[k]
		_, knownValue := knownStrings[v]
		if knownKey || knownValue {
			m[intern(k)] = intern(v)
		}
	}
}

// internMeta interns what every object's metadata repeats.
func internMeta(m metav1.Object) {
	internStrings(m.GetLabels())
	internStrings(m.GetAnnotations())
	for i, f := range m.GetFinalizers() {
		m.GetFinalizers()[i] = intern(f)
	}
	for i := range m.GetOwnerReferences() {
		ref := &m.GetOwnerReferences()[i]
		ref.APIVersion, ref.Kind = intern(ref.APIVersion), intern(ref.Kind)
	}
	for i := range m.GetManagedFields() {
		e := &m.GetManagedFields()[i]
		e.Manager, e.APIVersion, e.FieldsType = intern(e.Manager), intern(e.APIVersion), intern(e.FieldsType)
		e.Operation = metav1.ManagedFieldsOperationType(intern(string(e.Operation)))
	}
}

func internConditions(cs []metav1.Condition) {
	for i := range cs {
		c := &cs[i]
		c.Type, c.Reason = intern(c.Type), intern(c.Reason)
		c.Status = metav1.ConditionStatus(intern(string(c.Status)))
	}
}

// internObject interns the repeated strings of the kinds the operator
// caches most of: Services, EndpointSlices and pods (and the labels and
// annotations of any object).
func internObject(obj any) {
	if m, ok := obj.(metav1.Object); ok {
		internMeta(m)
	}
	switch o := obj.(type) {
	case *corev1.Service:
		s := &o.Spec
		s.Type = corev1.ServiceType(intern(string(s.Type)))
		s.SessionAffinity = corev1.ServiceAffinity(intern(string(s.SessionAffinity)))
		s.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicy(intern(string(s.ExternalTrafficPolicy)))
		s.ClusterIP = intern(s.ClusterIP)
		for i := range s.ClusterIPs {
			s.ClusterIPs[i] = intern(s.ClusterIPs[i])
			share(&s.ClusterIPs[i], s.ClusterIP)
		}
		for i := range s.IPFamilies {
			s.IPFamilies[i] = corev1.IPFamily(intern(string(s.IPFamilies[i])))
		}
		for i := range s.Ports {
			p := &s.Ports[i]
			p.Name, p.Protocol = intern(p.Name), corev1.Protocol(intern(string(p.Protocol)))
			p.TargetPort.StrVal = intern(p.TargetPort.StrVal)
		}
		internConditions(o.Status.Conditions)
	case *discoveryv1.EndpointSlice:
		o.AddressType = discoveryv1.AddressType(intern(string(o.AddressType)))
		for i := range o.Ports {
			p := &o.Ports[i]
			if p.Name != nil {
				*p.Name = intern(*p.Name)
			}
			if p.Protocol != nil {
				*p.Protocol = corev1.Protocol(intern(string(*p.Protocol)))
			}
		}
	case *corev1.Pod:
		o.Status.Phase = corev1.PodPhase(intern(string(o.Status.Phase)))
		for i := range o.Status.Conditions {
			c := &o.Status.Conditions[i]
			c.Type = corev1.PodConditionType(intern(string(c.Type)))
			c.Status = corev1.ConditionStatus(intern(string(c.Status)))
			c.Reason = intern(c.Reason)
		}
	}
}

// share makes *p the string s when they are equal, so that an object that
// repeats a string of its own keeps one copy of it.
func share(p *string, s string) {
	if *p == s {
		*p = s
	}
}
