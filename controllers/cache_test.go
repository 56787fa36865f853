package controllers

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/endpoints"
)

// TestCacheTrims checks the cache transforms: managedFields and the
// last-applied annotation go from every object but an intent's Service,
// which the operator compares with what it applied; other annotations stay.
func TestCacheTrims(t *testing.T) {
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name: "web", Namespace: "ns",
			Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"big":"copy"}`, v1alpha1.AnnotationFailbackNow: "true"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}},
		}
	}
	intentOwned := meta()
	intentOwned.OwnerReferences = []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "NetworkIntent", Name: "web", UID: "u", Controller: ptr.To(true)}}
	// A kind of the same name from another API group is not ours.
	otherOwned := meta()
	otherOwned.OwnerReferences = []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "NetworkIntent", Name: "web", UID: "u", Controller: ptr.To(true)}}
	for _, tc := range []struct {
		name   string
		obj    metav1.Object
		trimFn func(any) (any, error)
		kept   bool
	}{
		{"intent", &v1alpha1.NetworkIntent{ObjectMeta: meta()}, trim, false},
		{"foreign Service", &corev1.Service{ObjectMeta: meta()}, trimService, false},
		{"an intent's Service", &corev1.Service{ObjectMeta: intentOwned}, trimService, true},
		{"a Service of another group's NetworkIntent", &corev1.Service{ObjectMeta: otherOwned}, trimService, false},
	} {
		out, err := tc.trimFn(tc.obj)
		if err != nil {
			t.Fatal(err)
		}
		m := out.(metav1.Object)
		_, lastApplied := m.GetAnnotations()[corev1.LastAppliedConfigAnnotation]
		if got := lastApplied || len(m.GetManagedFields()) > 0; got != tc.kept {
			t.Errorf("%s: managedFields %v, last-applied %v; want them kept: %v", tc.name, m.GetManagedFields(), lastApplied, tc.kept)
		}
		if m.GetAnnotations()[v1alpha1.AnnotationFailbackNow] != "true" {
			t.Errorf("%s: other annotations lost: %v", tc.name, m.GetAnnotations())
		}
	}
}

// TestLastAppliedSurvives creates an intent as a client-side `kubectl apply`
// does, with the last-applied annotation that the cache drops: the
// operator's writes of the intent (finalizer patch, status) must leave it on
// the intent.
func TestLastAppliedSurvives(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	in := webIntent(ns, "web", v1alpha1.ExposureClusterIP)
	in.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: `{"apiVersion":"networking.netintent.io/v1alpha1"}`}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	converged(t, ns, "web")
	eventually(t, 10*time.Second, func() error {
		got, err := getIntent(ctx, ns, "web")
		if err != nil {
			return err
		}
		if err := conditionStatus(got, v1alpha1.IntentConditionReady, metav1.ConditionTrue, v1alpha1.IntentReasonReady); err != nil {
			return err
		}
		if got.Annotations[corev1.LastAppliedConfigAnnotation] != in.Annotations[corev1.LastAppliedConfigAnnotation] || !hasFinalizer(got) {
			t.Fatalf("the operator's writes changed the intent's metadata: annotations %v, finalizers %v", got.Annotations, got.Finalizers)
		}
		return nil
	})
}

// TestCacheTrimsPods checks that a trimmed pod makes the same endpoints as
// the whole pod, and that what endpoints never read is gone.
func TestCacheTrimsPods(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "ns", Name: "web-0", UID: "uid-0", Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{"big": strings.Repeat("x", 1000)},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-a", Hostname: "web-0", Subdomain: "web",
			Containers: []corev1.Container{
				{Name: "app", Image: "app:1", Env: []corev1.EnvVar{{Name: "A", Value: "b"}}, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}},
				{Name: "sidecar", Image: "proxy:1", Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 9901, Protocol: corev1.ProtocolTCP}}},
			},
			Volumes:        []corev1.Volume{{Name: "data"}},
			ReadinessGates: []corev1.PodReadinessGate{{ConditionType: v1alpha1.PodConditionBackendHealthy}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.244.0.5", PodIPs: []corev1.PodIP{{IP: "10.244.0.5"}, {IP: "fd00::5"}},
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: "app:1", Ready: true}},
		},
	}
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec: v1alpha1.NetworkIntentSpec{Ports: []v1alpha1.IntentPort{
			{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromString("http"))},
			{Name: "admin", Port: 9901, TargetPort: ptr.To(intstr.FromString("admin"))},
		}},
	}
	zones := map[string]string{"node-a": "zone-1"}
	want, wantExcluded := endpoints.FromPods(in, []corev1.Pod{*pod.DeepCopy()}, zones)
	out, err := trimPod(pod.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	trimmed := out.(*corev1.Pod)
	got, gotExcluded := endpoints.FromPods(in, []corev1.Pod{*trimmed}, zones)
	if len(want) != 2 || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotExcluded, wantExcluded) {
		t.Fatalf("endpoints of the trimmed pod:\n%+v %+v\nof the whole pod:\n%+v %+v", got, gotExcluded, want, wantExcluded)
	}
	if !hasReadinessGate(trimmed) {
		t.Errorf("the trimmed pod lost its readiness gates: %+v", trimmed.Spec)
	}
	if trimmed.Annotations != nil || trimmed.Spec.Volumes != nil || trimmed.Status.ContainerStatuses != nil || trimmed.Spec.Containers[0].Env != nil || trimmed.Spec.Containers[0].Image != "" {
		t.Errorf("the trimmed pod keeps what endpoints never read: %+v", trimmed)
	}
}

// TestCacheInternsAndIndexes converges an intent and reads what the
// manager's cache holds of it (the stored objects themselves, not copies):
// the strings every intent, Service and EndpointSlice repeats are one
// shared copy, the Service's managedFields are kept for the operator's
// comparison, the slice's are not, and the operator's slice index names the
// intent's slice.
func TestCacheInternsAndIndexes(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	in := webIntent(ns, "web", v1alpha1.ExposureClusterIP)
	in.Spec.Selector = nil
	in.Spec.Backends = []v1alpha1.Backend{{Address: "192.0.2.10"}}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	converged(t, ns, "web")
	shared := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %q, want %q", what, got, want)
		} else if unsafe.StringData(got) != unsafe.StringData(intern(want)) {
			t.Errorf("%s %q is a copy of its own, not the shared one", what, got)
		}
	}
	key := client.ObjectKey{Namespace: ns, Name: "web"}
	var cached v1alpha1.NetworkIntent
	if err := suiteCache.Get(ctx, key, &cached, client.UnsafeDisableDeepCopy); err != nil {
		t.Fatal(err)
	}
	shared("intent exposure", string(cached.Spec.Exposure), string(v1alpha1.ExposureClusterIP))
	shared("intent finalizer", cached.Finalizers[0], v1alpha1.IntentFinalizer)
	for _, c := range cached.Status.Conditions {
		shared("condition type", c.Type, c.Type)
		shared("condition status", string(c.Status), string(c.Status))
		shared("condition reason", c.Reason, c.Reason)
	}

	var svc corev1.Service
	if err := suiteCache.Get(ctx, key, &svc, client.UnsafeDisableDeepCopy); err != nil {
		t.Fatal(err)
	}
	shared("Service type", string(svc.Spec.Type), string(corev1.ServiceTypeClusterIP))
	shared("Service port protocol", string(svc.Spec.Ports[0].Protocol), string(corev1.ProtocolTCP))
	shared("Service owner kind", svc.OwnerReferences[0].Kind, "NetworkIntent")
	shared("Service owner API version", svc.OwnerReferences[0].APIVersion, v1alpha1.GroupVersion.String())
	for k := range svc.Labels {
		shared("Service label key", k, k)
	}
	if len(svc.ManagedFields) == 0 {
		t.Error("the intent's Service lost its managedFields, which the operator compares")
	}
	for _, f := range svc.ManagedFields {
		shared("managedFields manager", f.Manager, f.Manager)
	}

	var slices discoveryv1.EndpointSliceList
	if err := suiteCache.List(ctx, &slices, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		t.Fatal(err)
	}
	if len(slices.Items) != 1 {
		t.Fatalf("%d slices, want 1", len(slices.Items))
	}
	slice := &slices.Items[0]
	if len(slice.ManagedFields) != 0 {
		t.Errorf("the slice keeps its managedFields: %v", slice.ManagedFields)
	}
	shared("slice address type", string(slice.AddressType), string(discoveryv1.AddressTypeIPv4))
	shared("slice managed-by", slice.Labels[discoveryv1.LabelManagedBy], v1alpha1.EndpointSliceManagedBy)
	shared("slice port protocol", string(*slice.Ports[0].Protocol), string(corev1.ProtocolTCP))
	for k := range slice.Labels {
		shared("slice label key", k, k)
	}
	// A slice index of its own on the same informer is handed every
	// slice that exists.
	x := newSliceIndex()
	if err := x.watch(ctx, suiteCache); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if names := x.names(key); len(names) != 1 || names[0] != slice.Name {
			return fmt.Errorf("the slice index names %v for the intent's Service, want [%s]", names, slice.Name)
		}
		return nil
	})
}

// TestSliceIndex follows slices through adds, a move to another Service,
// a slice that stops being netintent's, and deletes, tombstones included.
func TestSliceIndex(t *testing.T) {
	x := newSliceIndex()
	slice := func(name, svc, managedBy string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: managedBy}}}
	}
	web := types.NamespacedName{Namespace: "ns", Name: "web"}
	api := types.NamespacedName{Namespace: "ns", Name: "api"}
	want := func(svc types.NamespacedName, names ...string) {
		t.Helper()
		got := x.names(svc)
		sort.Strings(got)
		if !reflect.DeepEqual(got, names) && !(len(got) == 0 && len(names) == 0) {
			t.Fatalf("%s: %v, want %v", svc, got, names)
		}
	}
	ours := v1alpha1.EndpointSliceManagedBy
	x.add(slice("web-1", "web", ours))
	x.add(slice("web-2", "web", ours))
	x.add(slice("web-2", "web", ours)) // a resync
	x.add(slice("other", "web", "endpointslice-controller.k8s.io"))
	want(web, "web-1", "web-2")
	// An update that moves web-2 to api.
	old, moved := slice("web-2", "web", ours), slice("web-2", "api", ours)
	if serviceOfSlice(old) != serviceOfSlice(moved) {
		x.remove(old)
	}
	x.add(moved)
	want(web, "web-1")
	want(api, "web-2")
	x.remove(toolscache.DeletedFinalStateUnknown{Key: "ns/web-2", Obj: moved})
	want(api)
	x.remove(toolscache.DeletedFinalStateUnknown{Key: "ns/web-1"})
	want(web)
	if len(x.byService) != 0 {
		t.Errorf("entries left: %v", x.byService)
	}
}
