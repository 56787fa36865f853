package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/compact"
	"github.com/netintent/netintent/internal/endpoints"
	"github.com/netintent/netintent/internal/testenv"
)

// TestCacheTrims checks the cache transforms: managedFields and the
// last-applied annotation go from every object, other annotations stay,
// and what the operator owns in an intent's Service, which it compares with
// what it applied, is kept with the cached Service (compact.Service.Keep).
func TestCacheTrims(t *testing.T) {
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name: "web", Namespace: "ns",
			Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"big":"copy"}`, v1alpha1.AnnotationFailbackNow: "true"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}},
		}
	}
	intentOwned := meta()
	intentOwned.UID, intentOwned.ResourceVersion = "intent-service-uid", "7"
	intentOwned.OwnerReferences = []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "NetworkIntent", Name: "web", UID: "u", Controller: ptr.To(true)}}
	// A kind of the same name from another API group is not ours.
	otherOwned := meta()
	otherOwned.OwnerReferences = []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "NetworkIntent", Name: "web", UID: "u", Controller: ptr.To(true)}}
	for _, tc := range []struct {
		name   string
		obj    metav1.Object
		trimFn func(any) (any, error)
		kept   bool
		// owned: what the operator owns is kept with the object.
		owned bool
	}{
		{"intent", &v1alpha1.NetworkIntent{ObjectMeta: meta()}, trimIntent, false, false},
		{"foreign Service", &corev1.Service{ObjectMeta: meta()}, trimService, false, false},
		{"an intent's Service", &corev1.Service{ObjectMeta: intentOwned}, trimService, false, true},
		{"a Service of another group's NetworkIntent", &corev1.Service{ObjectMeta: otherOwned}, trimService, false, false},
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
		if held, isService := out.(*compact.Service); isService {
			if _, owned := held.Kept(); owned != tc.owned {
				t.Errorf("%s: what the operator owns kept with it: %v, want %v", tc.name, owned, tc.owned)
			}
		}
	}

	// A Service whose owned fields cannot be read keeps its managedFields,
	// and the labels they name, for the operator to read them itself.
	unreadable := intentOwned.DeepCopy()
	unreadable.UID, unreadable.Labels = "unreadable-uid", map[string]string{v1alpha1.LabelIntent: "web"}
	fields := &metav1.FieldsV1{}
	fields.SetRawString("{not JSON")
	unreadable.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: v1alpha1.FieldOwner, Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1", FieldsV1: fields}}
	out, err := trimService(&corev1.Service{ObjectMeta: *unreadable})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := out.(*corev1.Service); !ok || len(m.GetManagedFields()) == 0 || m.GetLabels()[v1alpha1.LabelIntent] != "web" {
		t.Errorf("a Service whose owned fields could not be read is kept as %#v, want it whole with its managedFields and labels", out)
	}
}

// TestLastAppliedSurvives creates an intent as a client-side `kubectl apply`
// does, with the last-applied annotation that the cache drops: the
// operator's writes of the intent (finalizer patch, status) must leave it on
// the intent.
func TestLastAppliedSurvives(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	in := webIntent(ns, "web", v1alpha1.ExposureClusterIP)
	in.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: `{"apiVersion":"networking.netintent.io/v1alpha1"}`}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	converged(t, ns, "web")
	testenv.Eventually(t, 10*time.Second, func() error {
		got, err := getIntent(ctx, ns, "web")
		if err != nil {
			return err
		}
		if err := testenv.IntentCondition(got, v1alpha1.IntentConditionReady, metav1.ConditionTrue, v1alpha1.IntentReasonReady); err != nil {
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

// foreignSlice is an EndpointSlice as Kubernetes' EndpointSlice controller
// writes one for a Service of its own: n endpoints of pods, every third
// not ready, the first with a hostname.
func foreignSlice(ns, service string, n int) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: service + "-abcde", GenerateName: service + "-",
			Labels: map[string]string{
				discoveryv1.LabelServiceName: service,
				discoveryv1.LabelManagedBy:   "endpointslice-controller.k8s.io",
			},
			Annotations:     map[string]string{corev1.EndpointsLastChangeTriggerTime: "2026-12-04T10:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: service, UID: "svc-uid", Controller: ptr.To(true)}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for i := range n {
		pod := fmt.Sprintf("%s-%d", service, i)
		e := discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.%d.%d", i/250, i%250+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(i%3 != 2), Serving: ptr.To(i%3 != 2), Terminating: ptr.To(false)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod, UID: types.UID("uid-" + pod)},
			NodeName:   ptr.To(fmt.Sprintf("node-%d", i%10)),
			Zone:       ptr.To(fmt.Sprintf("zone-%d", i%3)),
			Hints:      &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: fmt.Sprintf("zone-%d", i%3)}}},
		}
		if i == 0 {
			e.Hostname = ptr.To(pod)
		}
		s.Endpoints = append(s.Endpoints, e)
	}
	return s
}

// TestCacheTrimsSlices checks the slices' transform: another controller's
// slice keeps what the DNS server reads (its Service, address type, ports,
// each endpoint's addresses, conditions and hostname) and loses the rest;
// an intent's slice is kept whole but for managedFields.
func TestCacheTrimsSlices(t *testing.T) {
	whole := foreignSlice("ns", "web", 3)
	out, err := trimSlice(whole.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got := cachedSlice(t, out)
	if !reflect.DeepEqual(got.Labels, whole.Labels) || got.AddressType != whole.AddressType || !reflect.DeepEqual(got.Ports, whole.Ports) || len(got.Endpoints) != 3 {
		t.Fatalf("the trimmed slice lost what the DNS server reads: %+v", got)
	}
	for i, e := range got.Endpoints {
		w := whole.Endpoints[i]
		if !reflect.DeepEqual(e.Addresses, w.Addresses) || !reflect.DeepEqual(e.Conditions, w.Conditions) || !reflect.DeepEqual(e.Hostname, w.Hostname) {
			t.Errorf("endpoint %d: %+v, want its addresses, conditions and hostname of %+v", i, e, w)
		}
		if e.TargetRef != nil || e.NodeName != nil || e.Zone != nil || e.Hints != nil {
			t.Errorf("endpoint %d keeps what the DNS server never reads: %+v", i, e)
		}
	}
	if got.OwnerReferences != nil || got.Annotations != nil {
		t.Errorf("the trimmed slice keeps its owners or annotations: %+v", got.ObjectMeta)
	}

	ours := foreignSlice("ns", "web", 3)
	ours.Labels[discoveryv1.LabelManagedBy] = v1alpha1.EndpointSliceManagedBy
	ours.OwnerReferences = []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "NetworkIntent", Name: "web", UID: "u", Controller: ptr.To(true)}}
	ours.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: v1alpha1.FieldOwner, Operation: metav1.ManagedFieldsOperationUpdate}}
	want := ours.DeepCopy()
	want.ManagedFields = nil
	out, err = trimSlice(ours)
	if err != nil {
		t.Fatal(err)
	}
	if got := cachedSlice(t, out); !reflect.DeepEqual(got, want) {
		t.Errorf("an intent's slice was trimmed beyond its managedFields:\n%+v\nwant\n%+v", got, want)
	}
	if again, err := trimSlice(out); err != nil || again != out {
		t.Errorf("a slice the cache holds already, put through the transform again, came out as %v (error %v), want it as it was", again, err)
	}
}

// cachedSlice is the EndpointSlice the cache's transform made of a slice:
// it must be in compact form (which has no maps), read back as an
// EndpointSlice.
func cachedSlice(t *testing.T, out any) *discoveryv1.EndpointSlice {
	t.Helper()
	c, ok := out.(*compact.EndpointSlice)
	if !ok {
		t.Fatalf("the cache keeps a slice as a %T, want a *compact.EndpointSlice", out)
	}
	return c.EndpointSlice()
}

// TestDNSAnswersFromTrimmedSlices serves a headless Service that no intent
// owns, with a slice as Kubernetes' EndpointSlice controller writes it:
// the suite's DNS server, reading the manager's trimmed cache, answers its
// name with the ready endpoints and the hostname of the first.
func TestDNSAnswersFromTrimmedSlices(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
	}
	if err := k8sClient.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	slice := foreignSlice(ns, "db", 3)
	slice.OwnerReferences[0].UID = svc.UID
	if err := k8sClient.Create(ctx, slice); err != nil {
		t.Fatal(err)
	}
	ask := func(name string) ([]string, error) {
		select {
		case <-suiteDNS.Listening():
		default:
			return nil, errors.New("the suite's DNS server is not listening yet")
		}
		r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), suiteDNS.Addr())
		if err != nil {
			return nil, err
		}
		var addrs []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				addrs = append(addrs, a.A.String())
			}
		}
		slices.Sort(addrs)
		return addrs, nil
	}
	want := []string{"10.244.0.1", "10.244.0.2"} // the third is not ready
	testenv.Eventually(t, 10*time.Second, func() error {
		got, err := ask("db." + ns + ".svc.cluster.local.")
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("db answers %v, want %v", got, want)
		}
		got, err = ask("db-0.db." + ns + ".svc.cluster.local.")
		if err != nil {
			return err
		}
		if !slices.Equal(got, want[:1]) {
			return fmt.Errorf("db-0.db answers %v, want %v", got, want[:1])
		}
		return nil
	})
}

// TestCacheInterns decodes an intent, its Service and its slice
// (testdata/cached) as the informers do and puts them through the cache's
// transforms, then what they hold through them again: each is held in its
// compact form, the strings that every such object repeats (label keys,
// namespaces) are then the one shared copy, no value changes, and what the
// operator owns in the Service is kept.
func TestCacheInterns(t *testing.T) {
	raw, svcIn, sliceIn := readCached(t)
	decoded, _, err := serializer.NewCodecFactory(testenv.NewScheme()).UniversalDeserializer().Decode(raw, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := decoded.(*v1alpha1.NetworkIntent)
	wantIn, wantSvc, wantSlice := in.DeepCopy(), svcIn.DeepCopy(), sliceIn.DeepCopy()
	// Twice: an informer may pass an object it holds through its
	// transform again, which must leave it as the first pass did.
	held := []any{in, svcIn, sliceIn}
	for pass := range 2 {
		for i, obj := range held {
			if held[i], err = cacheTransform(obj.(client.Object)); err != nil {
				t.Fatal(err)
			}
			if pass == 1 && held[i] != obj {
				t.Errorf("the transform made a %T it holds into another object", obj)
			}
		}
	}
	heldIn, ok := held[0].(*compact.Intent)
	if !ok {
		t.Fatalf("the cache holds the intent as a %T, want a *compact.Intent", held[0])
	}
	heldSvc, ok := held[1].(*compact.Service)
	if !ok {
		t.Fatalf("the cache holds the intent's Service as a %T, want a *compact.Service", held[1])
	}
	in, svc, slice := heldIn.Intent(), heldSvc.Service(), cachedSlice(t, held[2])
	// The transforms' trims, for the comparison of values.
	wantIn.ManagedFields, wantSlice.ManagedFields = nil, nil
	delete(wantIn.Annotations, corev1.LastAppliedConfigAnnotation)
	if len(wantIn.Annotations) == 0 {
		wantIn.Annotations = nil
	}
	wantSvcWhole := wantSvc.DeepCopy()
	wantSvc.ManagedFields, wantSvc.Labels = nil, nil // what the operator owns of the labels is kept aside
	// Decoded by an informer, an object has no kind; the cache's reader
	// sets it on what it reads back.
	wantIn.TypeMeta, wantSvc.TypeMeta, wantSlice.TypeMeta = metav1.TypeMeta{}, metav1.TypeMeta{}, metav1.TypeMeta{}
	for _, c := range []struct {
		got, want any
	}{{in, wantIn}, {svc, wantSvc}, {slice, wantSlice}} {
		if !equality.Semantic.DeepEqual(c.got, c.want) {
			t.Errorf("the transform changed a value:\n%+v\nwant\n%+v", c.got, c.want)
		}
	}
	shared := func(what, s string) {
		t.Helper()
		if unsafe.StringData(s) != unsafe.StringData(intern(s)) || intern(s) == "" {
			t.Errorf("%s %q is a copy of its own, not the shared one", what, s)
		}
	}
	same := func(what, a, b string) {
		t.Helper()
		if a != b || unsafe.StringData(a) != unsafe.StringData(b) {
			t.Errorf("%s %q is a copy of its own of %q", what, a, b)
		}
	}
	if len(in.Status.Conditions) == 0 || in.Status.Address == "" {
		t.Fatalf("testdata intent has no conditions or address in its status: %+v", in.Status)
	}
	if heldIn.GetAnnotations() != nil {
		t.Errorf("the intent keeps annotations with nothing left in them: %v", heldIn.GetAnnotations())
	}
	// The Service's spec and most of its metadata are held encoded.
	want, err := ownedFields(wantSvcWhole)
	if err != nil {
		t.Fatal(err)
	}
	if owned, ok, err := ownedFieldsKept(heldSvc); !ok || err != nil || !equality.Semantic.DeepEqual(owned, want) {
		t.Errorf("kept as owned in the intent's Service: %+v (kept: %v, %v), want %+v", owned, ok, err, want)
	}
	// The slice's labels are read back from what it holds, each string
	// as held (its body is held encoded).
	heldSlice := held[2].(*compact.EndpointSlice)
	managedBy, _ := heldSlice.Label(discoveryv1.LabelManagedBy)
	shared("slice managed-by", managedBy)
	for k := range heldSlice.GetLabels() {
		shared("slice label key", k)
	}
	// Their namespace's name, one copy for all three.
	same("the namespace of the slice and of the Service", heldSlice.GetNamespace(), heldSvc.GetNamespace())
	same("the namespace of the intent and of the Service", heldIn.GetNamespace(), heldSvc.GetNamespace())
}

// TestServiceOwnershipKeptInCache converges an intent: the cache holds its
// Service with what the operator owns in it kept, as the API server's
// managedFields say; a hand edit of the Service makes a new version, and
// what is kept follows it.
func TestServiceOwnershipKeptInCache(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	in := webIntent(ns, "web", v1alpha1.ExposureClusterIP)
	in.Spec.Selector = nil
	in.Spec.Backends = []v1alpha1.Backend{{Address: "192.0.2.10"}}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	converged(t, ns, "web")
	inf, err := suiteCache.GetInformer(ctx, &corev1.Service{})
	if err != nil {
		t.Fatal(err)
	}
	store := inf.(toolscache.SharedIndexInformer).GetStore()
	keptAsLive := func() error {
		live := &corev1.Service{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, live); err != nil {
			return err
		}
		want, err := ownedFields(live)
		if err != nil {
			return err
		}
		got, ok, err := keptOwnedFields(store, live)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("the cache keeps nothing of what the operator owns in version %s of the Service", live.ResourceVersion)
		case !equality.Semantic.DeepEqual(got, want):
			return fmt.Errorf("kept as owned in version %s: %+v, want %+v", live.ResourceVersion, got, want)
		}
		return nil
	}
	testenv.Eventually(t, 20*time.Second, keptAsLive)
	edit := client.MergeFrom(&corev1.Service{})
	labelled := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Labels: map[string]string{"team": "a"}}}
	if err := k8sClient.Patch(ctx, labelled, edit, client.FieldOwner("someone")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, keptAsLive)
}

// TestServiceOwnershipShared keeps what the operator owns in the Services
// of intents of one shape: they share one copy of it, and each reads back
// its own name, namespace and controller, also where its name is a string
// its owned fields hold anyway (a port's name) or is its namespace's.
func TestServiceOwnershipShared(t *testing.T) {
	_, base, _ := readCached(t)
	ref := controllingIntent(base)
	if ref == nil {
		t.Fatal("testdata Service has no controlling intent")
	}
	// of is base as the Service of intent ns/name of UID owner.
	of := func(ns, name string, owner types.UID) *corev1.Service {
		svc := base.DeepCopy()
		svc.Namespace, svc.Name, svc.UID, svc.ResourceVersion = ns, name, "svc-"+owner, "1"
		svc.Labels[v1alpha1.LabelIntent] = name
		c := metav1.GetControllerOfNoCopy(svc)
		c.Name, c.UID = name, owner
		for i := range svc.ManagedFields {
			f := svc.ManagedFields[i].FieldsV1
			f.SetRawBytes(bytes.ReplaceAll(f.GetRawBytes(), []byte(ref.UID), []byte(owner)))
		}
		return svc
	}
	port := base.Spec.Ports[0].Name
	svcs := []*corev1.Service{
		of("shop", "web", "owner-a"),
		of("bank", "api", "owner-b"),
		of("shop", port, "owner-c"),
		of("web", "web", "owner-d"),
	}
	var held []*compact.Service
	for _, svc := range svcs {
		want, err := ownedFields(svc)
		if err != nil {
			t.Fatal(err)
		}
		out, err := trimService(svc)
		if err != nil {
			t.Fatal(err)
		}
		c, isCompact := out.(*compact.Service)
		if !isCompact {
			t.Fatalf("Service %s/%s is held as a %T", svc.Namespace, svc.Name, out)
		}
		held = append(held, c)
		owned, ok, err := ownedFieldsKept(c)
		if !ok || err != nil || !equality.Semantic.DeepEqual(owned, want) {
			t.Fatalf("Service %s/%s: kept as owned %+v (kept: %v, %v), want %+v", svc.Namespace, svc.Name, owned, ok, err, want)
		}
		if got := owned.OwnerReferences; len(got) != 1 || *got[0].UID != metav1.GetControllerOfNoCopy(svc).UID || *got[0].Name != svc.Name {
			t.Errorf("Service %s/%s: owned owner references %+v", svc.Namespace, svc.Name, got)
		}
	}
	a, _ := held[0].Kept()
	b, _ := held[1].Kept()
	if a != b || unsafe.StringData(a.Value()) != unsafe.StringData(b.Value()) {
		t.Errorf("two Services of one shape keep their owned fields apart:\n%s\n%s", a.Value(), b.Value())
	}
	for _, own := range []string{"web", "shop", "owner-a"} {
		if strings.Contains(a.Value(), strconv.Quote(own)) {
			t.Errorf("the kept shape holds the Service's own %q: %s", own, a.Value())
		}
	}
}

// TestOwnedSlicesFromBucket reads an intent's slices through
// sliceIntentIndex from an informer's store holding, in the cache's
// compact form, its own slices, those an earlier intent of the same name
// left behind whose UID falls in the same bucket, and those of an intent
// in another bucket: it gets its own, read back whole, and no other.
func TestOwnedSlicesFromBucket(t *testing.T) {
	store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{sliceIntentIndex: intentBucketOf})
	intentOf := func(name string, uid types.UID) *v1alpha1.NetworkIntent {
		return &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: uid}}
	}
	sliceOf := func(in *v1alpha1.NetworkIntent, n int) *discoveryv1.EndpointSlice {
		s := foreignSlice(in.Namespace, in.Name, 2)
		s.Name = fmt.Sprintf("%s-%s-%d", in.Name, in.UID[2:6], n)
		s.Labels[discoveryv1.LabelManagedBy] = v1alpha1.EndpointSliceManagedBy
		s.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(in, v1alpha1.GroupVersion.WithKind("NetworkIntent"))}
		return s
	}
	a := intentOf("a", "ab0c1d2e-0000-4000-8000-000000000001")
	mate := intentOf("a", "ab9f8e7d-0000-4000-8000-000000000002")
	other := intentOf("c", "cd0c1d2e-0000-4000-8000-000000000003")
	if uidBucket(a.UID) != uidBucket(mate.UID) || uidBucket(a.UID) == uidBucket(other.UID) {
		t.Fatalf("buckets %q %q %q: want the first two alike, the third apart", uidBucket(a.UID), uidBucket(mate.UID), uidBucket(other.UID))
	}
	var want []discoveryv1.EndpointSlice
	for _, in := range []*v1alpha1.NetworkIntent{a, mate, other} {
		for n := range 2 {
			s := sliceOf(in, n)
			if in == a {
				whole := s.DeepCopy()
				whole.ManagedFields = nil
				want = append(want, *whole)
			}
			held, err := trimSlice(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Add(held); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := &IntentReconciler{sliceIndex: store}
	got, err := r.cachedOwnedSlices(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y discoveryv1.EndpointSlice) int { return strings.Compare(x.Name, y.Name) })
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("intent a's slices read through the index:\n%+v\nwant\n%+v", got, want)
	}
}
