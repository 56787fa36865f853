package compact

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
)

// localTime is a time as a decoded object holds it: in the local zone.
func localTime(min int) metav1.Time {
	return metav1.NewTime(time.Date(2026, 12, 5, 2, min, 12, 0, time.UTC).Local())
}

// intents are intents of every exposure with every field of the spec and
// status set somewhere, as an informer decodes them (from JSON).
func intents(t *testing.T) []*v1alpha1.NetworkIntent {
	t.Helper()
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Namespace: "shop", Name: name, UID: types.UID("u-" + name), ResourceVersion: "4242", Generation: 3,
			CreationTimestamp: localTime(35), Finalizers: []string{v1alpha1.IntentFinalizer},
			Labels: map[string]string{"team": "web"}, Annotations: map[string]string{v1alpha1.AnnotationDNSTTL: "30"},
		}
	}
	cond := func(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, ObservedGeneration: 3, LastTransitionTime: localTime(36), Reason: reason, Message: msg}
	}
	ins := []*v1alpha1.NetworkIntent{
		{ObjectMeta: meta("app-1"), Spec: v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP, Headless: true, SessionAffinity: corev1.ServiceAffinityClientIP,
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}, MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"front", "edge"}}}},
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyPreferDualStack), IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol},
			Ports:               []v1alpha1.IntentPort{{Name: "grpc", Port: 9090, TargetPort: ptr.To(intstr.FromString("grpc")), Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("kubernetes.io/h2c")}},
			TrafficDistribution: v1alpha1.TrafficDistributionPreferSameZone,
			HealthCheck: &v1alpha1.HealthCheck{
				Mode: v1alpha1.HealthCheckObserve, IgnorePodReadiness: true, ReadinessGate: true,
				ProbeHandler: v1alpha1.ProbeHandler{GRPC: &v1alpha1.GRPCProbe{Port: ptr.To[int32](9090), Service: "web", TLS: v1alpha1.GRPCProbeTLSInsecureSkipVerify}},
				Period:       &metav1.Duration{Duration: 5 * time.Second}, Timeout: &metav1.Duration{Duration: time.Second},
				HealthyThreshold: ptr.To[int32](2), UnhealthyThreshold: ptr.To[int32](4), MinHealthyPercent: ptr.To[int32](30),
			},
			DNS: &v1alpha1.DNSSpec{TTL: ptr.To[int32](30)},
		}, Status: v1alpha1.NetworkIntentStatus{
			ObservedGeneration: 3, ServiceName: "app-1", Address: "None", IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol},
			Conditions: []metav1.Condition{cond(v1alpha1.IntentConditionEndpointsHealthy, metav1.ConditionFalse, v1alpha1.IntentReasonBelowHealthyFloor, "only 0 of 2 endpoints are healthy")},
			Endpoints: &v1alpha1.EndpointsStatus{Total: 2, Summary: "0/2", ObservedCount: 1,
				Unhealthy: []v1alpha1.UnhealthyEndpoint{{Address: "fd00::7", Pod: "web-1", Family: corev1.IPv6Protocol, Reason: v1alpha1.EndpointReasonProbeFailed, Message: "refused"}},
				Observed:  []v1alpha1.UnhealthyEndpoint{{Address: "10.244.0.7", Reason: v1alpha1.EndpointReasonNotReady}},
			},
		}},
		{ObjectMeta: meta("app-2"), Spec: v1alpha1.NetworkIntentSpec{
			Exposure:     v1alpha1.ExposureLoadBalancer,
			Backends:     []v1alpha1.Backend{{Address: "10.250.0.1", Port: ptr.To[int32](8443)}},
			Ports:        []v1alpha1.IntentPort{{Name: "https", Port: 443, NodePort: ptr.To[int32](30443)}},
			LoadBalancer: &v1alpha1.LoadBalancerSpec{Class: "netintent.io/pool", Pool: "public", Address: "192.0.2.10", ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
			HealthCheck: &v1alpha1.HealthCheck{ProbeHandler: v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{
				Path: "/ready", Port: ptr.To[int32](8443), Host: "web.example", ExpectedStatuses: []v1alpha1.StatusRange{{Min: 200, Max: 299}, {Min: 418}},
			}}},
		}, Status: v1alpha1.NetworkIntentStatus{
			ServiceName: "app-2", Address: "192.0.2.10", Addresses: []string{"192.0.2.10"}, AddressSummary: "192.0.2.10", ClusterIPs: []string{"10.96.0.12"},
			NodePorts:    []v1alpha1.NodePortStatus{{Name: "https", NodePort: 30443}},
			LoadBalancer: &v1alpha1.LoadBalancerStatus{Ingress: []string{"192.0.2.10"}, Pool: "public"},
		}},
		{ObjectMeta: meta("app-3"), Spec: v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureExternalName,
			ExternalName: &v1alpha1.ExternalNameSpec{
				Targets:  []v1alpha1.ExternalTarget{{Host: "db-1.example.com", ProbeHandler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{Port: ptr.To[int32](5432)}}}, {Host: "db-2.example.com"}},
				Failback: v1alpha1.FailbackManual, FailbackAfter: &metav1.Duration{Duration: 2 * time.Minute},
			},
		}, Status: v1alpha1.NetworkIntentStatus{
			ExternalName: &v1alpha1.ExternalNameStatus{ActiveTarget: "db-2.example.com", Targets: []v1alpha1.TargetStatus{{Host: "db-1.example.com"}, {Host: "db-2.example.com", Healthy: true}}},
		}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "bare"}, Spec: v1alpha1.NetworkIntentSpec{Exposure: v1alpha1.ExposureNodePort}},
	}
	// As an informer has them: decoded from their JSON.
	for i, in := range ins {
		raw, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		ins[i] = &v1alpha1.NetworkIntent{}
		if err := json.Unmarshal(raw, ins[i]); err != nil {
			t.Fatal(err)
		}
	}
	return ins
}

// TestIntentRoundTrip checks that the compact form gives back the intent
// it was made of, exactly, for intents of every exposure with every field
// set, that what it gives back is a copy, and that it holds the exposure
// and the selector as the intent has them.
func TestIntentRoundTrip(t *testing.T) {
	for _, in := range intents(t) {
		t.Run(in.Name, func(t *testing.T) {
			want := in.DeepCopy()
			c, err := FromIntent(in)
			if err != nil {
				t.Fatal(err)
			}
			got := checkForm(t, c, &c.meta, want, c.Intent)
			got.Spec.Ports = append(got.Spec.Ports, v1alpha1.IntentPort{Name: "x", Port: 1})
			got.Status.Conditions = nil
			got.Finalizers = nil
			if again := c.Intent(); !reflect.DeepEqual(again, want) {
				t.Errorf("changing what was read back changed the compact form:\n%+v\nwant\n%+v", again, want)
			}
			if c.Exposure() != want.Spec.Exposure {
				t.Errorf("Exposure() = %q, want %q", c.Exposure(), want.Spec.Exposure)
			}
			if unsafe.StringData(string(c.Exposure())) != unsafe.StringData(string(knownExposure(want.Spec.Exposure))) {
				t.Errorf("the exposure %q is a copy of its own, not the package's constant", c.Exposure())
			}
			for _, l := range []labels.Set{{"app": "web", "tier": "edge"}, {"app": "web"}, {"app": "db", "tier": "edge"}, nil} {
				wantSelects := false
				if want.Spec.Selector != nil {
					sel, err := metav1.LabelSelectorAsSelector(want.Spec.Selector)
					if err != nil {
						t.Fatal(err)
					}
					wantSelects = sel.Matches(l)
				}
				if c.Selects(l) != wantSelects {
					t.Errorf("Selects(%v) = %v, want %v", l, c.Selects(l), wantSelects)
				}
			}
		})
	}
}

// TestIntentSelectsNothingWithABadSelector checks that an intent whose
// selector cannot be parsed (admission refuses one; an intent stored
// before it might hold one) selects nothing, as the reconciler treats it.
func TestIntentSelectsNothingWithABadSelector(t *testing.T) {
	c, err := FromIntent(&v1alpha1.NetworkIntent{Spec: v1alpha1.NetworkIntentSpec{
		Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Selects(labels.Set{"app": "web"}) || c.Selects(nil) {
		t.Error("an intent with a selector that cannot be parsed selects something")
	}
	if got := c.Intent().Spec.Selector.MatchExpressions[0].Operator; got != "Near" {
		t.Errorf("the selector read back has operator %q, want it as it was", got)
	}
}

// TestIntentBodyIsSmall checks what the dictionary is for: the encoding
// of the usual intent (a ClusterIP intent, Ready, with the status the
// operator writes) compresses to a small part of its JSON.
func TestIntentBodyIsSmall(t *testing.T) {
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app-1234"},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP,
			Backends: []v1alpha1.Backend{{Address: "10.250.4.235"}, {Address: "10.249.4.235"}},
			Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(8080)), Protocol: corev1.ProtocolTCP}},
		},
		Status: v1alpha1.NetworkIntentStatus{
			ObservedGeneration: 1,
			Conditions: []metav1.Condition{
				{Type: v1alpha1.IntentConditionServiceReady, Status: metav1.ConditionTrue, ObservedGeneration: 1, LastTransitionTime: localTime(40), Reason: v1alpha1.IntentReasonApplied, Message: "Service app-1234 matches the intent"},
				{Type: v1alpha1.IntentConditionEndpointsHealthy, Status: metav1.ConditionTrue, ObservedGeneration: 1, LastTransitionTime: localTime(40), Reason: v1alpha1.IntentReasonAllHealthy, Message: "all 2 endpoints are healthy"},
				{Type: v1alpha1.IntentConditionReady, Status: metav1.ConditionTrue, ObservedGeneration: 1, LastTransitionTime: localTime(41), Reason: v1alpha1.IntentReasonReady, Message: "ClusterIP reachable at 10.108.137.111"},
			},
			ServiceName: "app-1234", Address: "10.108.137.111", Addresses: []string{"10.108.137.111"}, AddressSummary: "10.108.137.111",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, ClusterIPs: []string{"10.108.137.111"},
			Endpoints: &v1alpha1.EndpointsStatus{Total: 2, Healthy: 2, Summary: "2/2"},
		},
	}
	raw, err := json.Marshal(intentBody{Spec: in.Spec, Status: in.Status})
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromIntent(in)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("JSON %d bytes, held %d", len(raw), len(c.body))
	if len(c.body) > len(raw)/4 {
		t.Errorf("the body takes %d bytes of the JSON's %d: the dictionary does not fit the usual intent", len(c.body), len(raw))
	}
}

// TestRestIsSmall checks the dictionary's part for metadata: the rest of
// an intent's slice's metadata (its owner reference, with a random UID,
// and its creation time) compresses to little more than half.
func TestRestIsSmall(t *testing.T) {
	m := metav1.ObjectMeta{CreationTimestamp: localTime(42), Generation: 1, OwnerReferences: []metav1.OwnerReference{{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "NetworkIntent", Name: "app-1234",
		UID: "f6c973d6-d025-4a05-aeb7-d34e1358e85c", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}}}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var held meta
	if err := held.setRest(&m); err != nil {
		t.Fatal(err)
	}
	t.Logf("protobuf %d bytes, held %d", len(raw), len(held.rest))
	if len(held.rest) > len(raw)*3/5 {
		t.Errorf("the rest takes %d bytes of the protobuf's %d: the dictionary does not fit an owned object's metadata", len(held.rest), len(raw))
	}
}
