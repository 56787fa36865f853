package compact

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// decoded is svc as an informer has it: decoded from protobuf.
func decoded(t *testing.T, svc *corev1.Service) *corev1.Service {
	t.Helper()
	raw, err := svc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := &corev1.Service{}
	if err := out.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServiceRoundTrip checks that the compact form gives back the Service
// it was made of, exactly, for Services of every type and with the fields
// an operator and a load balancer set, and that what it gives back is a
// copy.
func TestServiceRoundTrip(t *testing.T) {
	meta := metav1.ObjectMeta{
		Namespace: "shop", Name: "app-1", UID: "u1", ResourceVersion: "226",
		CreationTimestamp: metav1.Date(2026, 12, 5, 2, 35, 12, 0, time.UTC),
		Labels:            map[string]string{"app": "web"},
		Annotations:       map[string]string{"networking.netintent.io/pool": "public"},
		OwnerReferences:   []metav1.OwnerReference{{APIVersion: "networking.netintent.io/v1alpha1", Kind: "NetworkIntent", Name: "app-1", UID: "u0", Controller: ptr.To(true)}},
	}
	for _, svc := range []*corev1.Service{
		{ObjectMeta: meta, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.108.137.111", ClusterIPs: []string{"10.108.137.111"},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack),
			Ports:           []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
			SessionAffinity: corev1.ServiceAffinityNone, InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
		}},
		{ObjectMeta: meta, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "fd00::1", ClusterIPs: []string{"fd00::1", "10.0.0.1"},
			Selector:              map[string]string{"app": "web"},
			Ports:                 []corev1.ServicePort{{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromString("dns"), NodePort: 30053}},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal, HealthCheckNodePort: 31000,
			LoadBalancerClass: ptr.To("netintent.io/pool"), AllocateLoadBalancerNodePorts: ptr.To(false),
			SessionAffinity: corev1.ServiceAffinityClientIP, SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}},
		}, Status: corev1.ServiceStatus{
			LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.10", IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}}},
			Conditions:   []metav1.Condition{{Type: "AddressAssigned", Status: metav1.ConditionTrue, Reason: "Assigned", Message: "from pool public", LastTransitionTime: metav1.Date(2026, 12, 5, 2, 36, 0, 0, time.UTC)}},
		}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ext"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}},
	} {
		t.Run(string(svc.Spec.Type), func(t *testing.T) {
			want := decoded(t, svc)
			c, err := FromService(decoded(t, svc))
			if err != nil {
				t.Fatal(err)
			}
			got := checkForm(t, c, &c.meta, want, c.Service)
			got.Spec.ClusterIPs = append(got.Spec.ClusterIPs, "10.9.9.9")
			got.Spec.Type = corev1.ServiceTypeNodePort
			got.OwnerReferences = nil
			if again := c.Service(); !reflect.DeepEqual(again, want) {
				t.Errorf("changing what was read back changed the compact form:\n%+v\nwant\n%+v", again, want)
			}
		})
	}
	if _, ok := As[*corev1.Service](&corev1.Pod{}); ok {
		t.Error("As took a pod for a Service")
	}
}

// checkForm checks c, the compact form of want: the getters of m, its
// metadata, give what want's do, and it reads back want (read is its typed
// reader), through DeepCopyObject and As too. It returns what read gave.
func checkForm[T runtime.Object](t *testing.T, c form, m *meta, want T, read func() T) T {
	t.Helper()
	checkGetters(t, m, any(want).(metav1.Object))
	got := read()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back:\n%+v\nwant\n%+v", got, want)
	}
	if obj := c.DeepCopyObject(); !reflect.DeepEqual(obj, want) {
		t.Fatalf("DeepCopyObject:\n%+v\nwant\n%+v", obj, want)
	}
	if as, ok := As[T](c); !ok || !reflect.DeepEqual(as, want) {
		t.Fatalf("As of the form: %+v, %v", as, ok)
	}
	if as, ok := As[T](want); !ok || any(as) != any(want) {
		t.Fatalf("As of a %T is not that object itself", want)
	}
	return got
}

// checkGetters checks that every metav1.Object getter of m gives what
// want's gives.
func checkGetters(t *testing.T, m *meta, want metav1.Object) {
	t.Helper()
	for _, g := range []struct {
		name      string
		got, want any
	}{
		{"GetName", m.GetName(), want.GetName()},
		{"GetNamespace", m.GetNamespace(), want.GetNamespace()},
		{"GetUID", m.GetUID(), want.GetUID()},
		{"GetResourceVersion", m.GetResourceVersion(), want.GetResourceVersion()},
		{"GetGenerateName", m.GetGenerateName(), want.GetGenerateName()},
		{"GetGeneration", m.GetGeneration(), want.GetGeneration()},
		{"GetSelfLink", m.GetSelfLink(), want.GetSelfLink()},
		{"GetCreationTimestamp", m.GetCreationTimestamp(), want.GetCreationTimestamp()},
		{"GetDeletionTimestamp", m.GetDeletionTimestamp(), want.GetDeletionTimestamp()},
		{"GetDeletionGracePeriodSeconds", m.GetDeletionGracePeriodSeconds(), want.GetDeletionGracePeriodSeconds()},
		{"GetLabels", m.GetLabels(), want.GetLabels()},
		{"GetAnnotations", m.GetAnnotations(), want.GetAnnotations()},
		{"GetFinalizers", m.GetFinalizers(), want.GetFinalizers()},
		{"GetOwnerReferences", m.GetOwnerReferences(), want.GetOwnerReferences()},
		{"GetManagedFields", m.GetManagedFields(), want.GetManagedFields()},
	} {
		if !reflect.DeepEqual(g.got, g.want) {
			t.Errorf("%s = %+v, want %+v", g.name, g.got, g.want)
		}
	}
}
