package compact

import (
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
)

// Intent is a NetworkIntent as the cache keeps it: its metadata (see
// meta); its exposure and its selector, which the operator reads of many
// intents at once (every intent of a namespace, on a pod's change), held
// apart as they are; and its spec and status in their JSON encoding,
// compressed (deflate), read back whenever the intent is. A decoded
// intent took some 1,500 bytes, its conditions some 300 of them before
// their messages; a Ready ClusterIP intent's compressed encoding takes
// some 100, and one with every field of the spec set some 400.
type Intent struct {
	meta
	exposure v1alpha1.Exposure
	// selector is the spec's selector, labels.Nothing() when there is none
	// (or one that cannot be parsed, which selects nothing either).
	selector labels.Selector
	body     []byte
}

var (
	_ metav1.Object  = &Intent{}
	_ runtime.Object = &Intent{}
)

// intentBody is what Intent encodes: the intent without its metadata.
type intentBody struct {
	Spec   v1alpha1.NetworkIntentSpec   `json:"spec"`
	Status v1alpha1.NetworkIntentStatus `json:"status"`
}

// FromIntent is in in its compact form. It takes in's metadata over: in
// must not be used after.
func FromIntent(in *v1alpha1.NetworkIntent) (*Intent, error) {
	raw, err := json.Marshal(intentBody{Spec: in.Spec, Status: in.Status})
	if err != nil {
		return nil, fmt.Errorf("encoding intent %s/%s: %w", in.Namespace, in.Name, err)
	}
	body, err := deflate(raw)
	if err != nil {
		return nil, fmt.Errorf("encoding intent %s/%s: %w", in.Namespace, in.Name, err)
	}
	sel := labels.Nothing()
	if in.Spec.Selector != nil {
		if s, err := metav1.LabelSelectorAsSelector(in.Spec.Selector); err == nil {
			sel = s
		}
	}
	m, err := newMeta(in.ObjectMeta)
	if err != nil {
		return nil, err
	}
	return &Intent{meta: m, exposure: knownExposure(in.Spec.Exposure), selector: sel, body: body}, nil
}

// knownExposure is e, the package's constant for a known one: a decoded
// intent's is a copy of its own.
func knownExposure(e v1alpha1.Exposure) v1alpha1.Exposure {
	for _, known := range []v1alpha1.Exposure{v1alpha1.ExposureClusterIP, v1alpha1.ExposureNodePort, v1alpha1.ExposureLoadBalancer, v1alpha1.ExposureExternalName} {
		if e == known {
			return known
		}
	}
	return e
}

// Intent is the intent c was made from, which the caller may change.
func (c *Intent) Intent() *v1alpha1.NetworkIntent {
	var b intentBody
	if err := json.Unmarshal(inflate(c.body), &b); err != nil {
		// c.body was encoded by FromIntent from this very type, so that
		// decoding it can fail only through a defect, as a DeepCopy can.
		panic(fmt.Sprintf("decoding the cached intent %s/%s: %v", c.namespace, c.name, err))
	}
	return &v1alpha1.NetworkIntent{ObjectMeta: c.objectMeta(), Spec: b.Spec, Status: b.Status}
}

// Exposure is the intent's spec.exposure.
func (c *Intent) Exposure() v1alpha1.Exposure { return c.exposure }

// Selects says whether the intent's selector selects an object with these
// labels; an intent without a selector selects nothing.
func (c *Intent) Selects(l labels.Labels) bool { return c.selector.Matches(l) }

// DeepCopyObject is the whole NetworkIntent (see Intent).
func (c *Intent) DeepCopyObject() runtime.Object { return c.Intent() }

func (c *Intent) compact() {}

// intentExamples are the dictionary's part for intents (see dictionary):
// the encodings of intents of each exposure, with the conditions, messages
// and status the operator writes, the most common (a ClusterIP intent)
// last. Made from the API types, they hold their field names as they are.
func intentExamples() []byte {
	const target, clusterIP = "db-1.example.com", "10.96.0.10"
	at := metav1.NewTime(time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC))
	cond := func(typ, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionTrue, ObservedGeneration: 1, LastTransitionTime: at, Reason: reason, Message: msg}
	}
	port := v1alpha1.IntentPort{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(8080)), Protocol: corev1.ProtocolTCP}
	probe := v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{Path: "/healthz", Port: ptr.To[int32](8080)}}
	bodies := []intentBody{
		{
			Spec: v1alpha1.NetworkIntentSpec{Exposure: v1alpha1.ExposureExternalName, ExternalName: &v1alpha1.ExternalNameSpec{
				Targets:  []v1alpha1.ExternalTarget{{Host: target, ProbeHandler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{Port: ptr.To[int32](5432)}}}},
				Failback: v1alpha1.FailbackAutomatic, FailbackAfter: &metav1.Duration{Duration: time.Minute},
			}},
			Status: v1alpha1.NetworkIntentStatus{
				Conditions:   []metav1.Condition{cond(v1alpha1.IntentConditionEndpointsHealthy, v1alpha1.IntentReasonAllHealthy, "all 2 targets are healthy; publishing "+target)},
				ExternalName: &v1alpha1.ExternalNameStatus{ActiveTarget: target, Targets: []v1alpha1.TargetStatus{{Host: target, Healthy: true}}},
			},
		},
		{
			Spec: v1alpha1.NetworkIntentSpec{
				Exposure: v1alpha1.ExposureLoadBalancer, Ports: []v1alpha1.IntentPort{port},
				LoadBalancer: &v1alpha1.LoadBalancerSpec{Pool: "public", ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
				HealthCheck: &v1alpha1.HealthCheck{
					Mode: v1alpha1.HealthCheckEnforce, ProbeHandler: probe, Period: &metav1.Duration{Duration: 10 * time.Second},
					Timeout: &metav1.Duration{Duration: time.Second}, HealthyThreshold: ptr.To[int32](1), UnhealthyThreshold: ptr.To[int32](3), MinHealthyPercent: ptr.To[int32](50),
				},
			},
			Status: v1alpha1.NetworkIntentStatus{
				Conditions: []metav1.Condition{
					cond(v1alpha1.IntentConditionAddressAssigned, v1alpha1.AddressReasonAssigned, "192.0.2.10 from AddressPool public"),
					cond(v1alpha1.IntentConditionEndpointsHealthy, v1alpha1.IntentReasonDegraded, "1 of 2 endpoints are healthy; the others are out of traffic (see status.endpoints.unhealthy)"),
				},
				NodePorts:    []v1alpha1.NodePortStatus{{Name: "http", NodePort: 30080}},
				LoadBalancer: &v1alpha1.LoadBalancerStatus{Ingress: []string{"192.0.2.10"}, Pool: "public"},
				Endpoints: &v1alpha1.EndpointsStatus{Total: 2, Healthy: 1, Summary: "1/2", Unhealthy: []v1alpha1.UnhealthyEndpoint{
					{Address: "10.244.1.7", Pod: "web-7d4b9c-x2x5q", Family: corev1.IPv4Protocol, Reason: v1alpha1.EndpointReasonProbeFailed, Message: "HTTP probe failed: connection refused"},
				}},
			},
		},
		{
			Spec: v1alpha1.NetworkIntentSpec{
				Exposure: v1alpha1.ExposureClusterIP, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": exampleName}},
				Backends: []v1alpha1.Backend{{Address: "10.0.0.10"}, {Address: "10.0.0.11", Port: ptr.To[int32](8080)}},
				Ports:    []v1alpha1.IntentPort{port},
			},
			Status: v1alpha1.NetworkIntentStatus{
				ObservedGeneration: 1,
				Conditions: []metav1.Condition{
					cond(v1alpha1.IntentConditionServiceReady, v1alpha1.IntentReasonApplied, "Service "+exampleName+" matches the intent"),
					cond(v1alpha1.IntentConditionEndpointsHealthy, v1alpha1.IntentReasonAllHealthy, "all 2 endpoints are healthy"),
					cond(v1alpha1.IntentConditionReady, v1alpha1.IntentReasonReady, "ClusterIP reachable at "+clusterIP),
				},
				ServiceName: exampleName, Address: clusterIP, Addresses: []string{clusterIP}, AddressSummary: clusterIP,
				IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, ClusterIPs: []string{clusterIP},
				Endpoints: &v1alpha1.EndpointsStatus{Total: 2, Healthy: 2, Summary: "2/2"},
			},
		},
	}
	var dict []byte
	for _, b := range bodies {
		raw, err := json.Marshal(b)
		if err != nil {
			panic(err)
		}
		dict = append(dict, raw...)
	}
	return dict
}
