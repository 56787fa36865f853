package compact

import (
	"fmt"
	"reflect"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// slice is an EndpointSlice with every field an operator or Kubernetes'
// EndpointSlice controller sets, and the labels and annotations given. Its
// times are in the local zone, as decoded ones are.
func slice(labels, annotations map[string]string) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop", Name: "app-1-v4-5ca25d4a-0", UID: "u1", ResourceVersion: "227", Generation: 3,
			CreationTimestamp: metav1.NewTime(time.Date(2026, 12, 5, 2, 35, 12, 0, time.UTC).Local()),
			Labels:            labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "networking.netintent.io/v1alpha1", Kind: "NetworkIntent", Name: "app-1", UID: "u0", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
			Finalizers:      []string{"x/y"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{
				Addresses:  []string{"10.249.0.1"},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
				Hostname:   ptr.To("web-0"),
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-0", UID: types.UID("p0")},
				NodeName:   ptr.To("node-1"),
				Zone:       ptr.To("a"),
				Hints:      &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "a"}}},
			},
			{Addresses: []string{"10.250.0.1"}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
}

// TestEndpointSliceRoundTrip checks that the compact form gives back the
// slice it was made of, exactly, whatever its labels and annotations, and
// that what it gives back is a copy.
func TestEndpointSliceRoundTrip(t *testing.T) {
	many := map[string]string{}
	for i := range 20 {
		many[fmt.Sprintf("k%02d", 19-i)] = fmt.Sprint(i)
	}
	for _, tc := range []struct {
		name                string
		labels, annotations map[string]string
	}{
		{"none", nil, nil},
		{"labels only", map[string]string{discoveryv1.LabelServiceName: "app-1", discoveryv1.LabelManagedBy: "netintent", "networking.netintent.io/intent": "app-1"}, nil},
		{"annotations only", nil, map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-12-05T02:35:12.217185339Z"}},
		{"both, a key in each", map[string]string{"a": "1", "b": ""}, map[string]string{"a": "2"}},
		{"more than a map's group", many, many},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := slice(tc.labels, tc.annotations)
			c, err := FromEndpointSlice(want.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			got := checkForm(t, c, &c.meta, want, c.EndpointSlice)
			if !reflect.DeepEqual(c.GetLabels(), tc.labels) && (len(tc.labels) != 0 || c.GetLabels() != nil) {
				t.Errorf("GetLabels = %v, want %v", c.GetLabels(), tc.labels)
			}
			if !reflect.DeepEqual(c.GetAnnotations(), tc.annotations) && (len(tc.annotations) != 0 || c.GetAnnotations() != nil) {
				t.Errorf("GetAnnotations = %v, want %v", c.GetAnnotations(), tc.annotations)
			}
			for k, v := range tc.labels {
				if got, ok := c.Label(k); !ok || got != v {
					t.Errorf("Label(%q) = %q, %v; want %q", k, got, ok, v)
				}
			}
			if v, ok := c.Label("absent"); ok {
				t.Errorf("Label(absent) = %q, want none", v)
			}
			for k := range tc.annotations {
				if _, isLabel := tc.labels[k]; !isLabel {
					if v, ok := c.Label(k); ok {
						t.Errorf("Label(%q) = %q: an annotation read as a label", k, v)
					}
				}
			}

			// What is read back is the caller's to change.
			got.Endpoints[0].Addresses[0] = "10.0.0.9"
			*got.Endpoints[0].Conditions.Ready = false
			*got.Ports[0].Port = 1
			got.OwnerReferences[0].Name = "other"
			if got.Labels != nil {
				got.Labels["added"] = "x"
			}
			if again := c.EndpointSlice(); !reflect.DeepEqual(again, want) {
				t.Errorf("changing what was read back changed the compact form:\n%+v\nwant\n%+v", again, want)
			}
		})
	}
}

// TestEndpointSliceSetters checks the metav1.Object setters, which a cache
// never calls but the interface has.
func TestEndpointSliceSetters(t *testing.T) {
	c, err := FromEndpointSlice(slice(map[string]string{"a": "1"}, map[string]string{"n": "2"}))
	if err != nil {
		t.Fatal(err)
	}
	c.SetLabels(map[string]string{"b": "3"})
	if got := c.GetLabels(); !reflect.DeepEqual(got, map[string]string{"b": "3"}) || !reflect.DeepEqual(c.GetAnnotations(), map[string]string{"n": "2"}) {
		t.Errorf("after SetLabels: labels %v, annotations %v", got, c.GetAnnotations())
	}
	c.SetAnnotations(nil)
	if c.GetAnnotations() != nil || !reflect.DeepEqual(c.GetLabels(), map[string]string{"b": "3"}) {
		t.Errorf("after SetAnnotations(nil): labels %v, annotations %v", c.GetLabels(), c.GetAnnotations())
	}
	if m := c.GetObjectMeta(); m.GetLabels()["b"] != "3" {
		t.Errorf("GetObjectMeta's labels = %v, want the form's", m.GetLabels())
	}

	// Every other setter, each read back by its getter and by the slice.
	want := c.EndpointSlice()
	gone := metav1.NewTime(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC).Local())
	c.SetName("n2")
	c.SetNamespace("ns2")
	c.SetUID("u2")
	c.SetResourceVersion("9")
	c.SetGenerateName("g-")
	c.SetGeneration(7)
	c.SetSelfLink("/x")
	c.SetCreationTimestamp(gone)
	c.SetDeletionTimestamp(&gone)
	c.SetDeletionGracePeriodSeconds(ptr.To[int64](30))
	c.SetFinalizers([]string{"a/b"})
	c.SetOwnerReferences(nil)
	c.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "m", Operation: metav1.ManagedFieldsOperationApply}})
	want.Name, want.Namespace, want.UID, want.ResourceVersion, want.GenerateName, want.Generation = "n2", "ns2", "u2", "9", "g-", 7
	want.SetSelfLink("/x")
	want.CreationTimestamp, want.DeletionTimestamp, want.DeletionGracePeriodSeconds = gone, &gone, ptr.To[int64](30)
	want.Finalizers, want.OwnerReferences = []string{"a/b"}, nil
	want.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "m", Operation: metav1.ManagedFieldsOperationApply}}
	checkGetters(t, &c.meta, want)
	if got := c.EndpointSlice(); !reflect.DeepEqual(got, want) {
		t.Errorf("after the setters:\n%+v\nwant\n%+v", got, want)
	}

	// Metadata with nothing but what is held apart encodes to nothing.
	bare, err := FromEndpointSlice(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "s", UID: "u", ResourceVersion: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if bare.rest != nil {
		t.Errorf("bare metadata encoded to %d bytes", len(bare.rest))
	}
	checkGetters(t, &bare.meta, bare.EndpointSlice())
	other, err := FromEndpointSlice(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: string([]byte("shop")), Name: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(other.GetNamespace()) != unsafe.StringData(bare.GetNamespace()) {
		t.Error("two forms of one namespace hold two copies of its name")
	}
}

// TestUID checks that a UID is held as it was given: a UUID in canonical
// form as its bytes, any other as it is.
func TestUID(t *testing.T) {
	for _, tc := range []struct {
		uid  types.UID
		uuid bool
	}{
		{"6b2a1c9e-9f0e-4c1a-8d1e-2f3a4b5c6d7e", true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"6B2A1C9E-9F0E-4C1A-8D1E-2F3A4B5C6D7E", false},
		{"6b2a1c9e-9f0e-4c1a-8d1e-2f3a4b5c6d7", false},
		{"6b2a1c9e+9f0e-4c1a-8d1e-2f3a4b5c6d7e", false},
		{"6b2a1c9e-9f0e-4c1a-8d1e-2f3a4b5c6d7g", false},
		{"u1", false},
		{"", false},
	} {
		u := newUID(tc.uid)
		if u.isUUID() != tc.uuid || u.value() != tc.uid {
			t.Errorf("%q held as UUID %v, read back %q; want UUID %v, read back as it was", tc.uid, u.isUUID(), u.value(), tc.uuid)
		}
	}
}
