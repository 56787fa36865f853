// Package compact holds the forms in which the operator's cache keeps the
// objects it holds many of, smaller than the API types, and turns them back
// into the API types when they are read.
//
// An object's labels and annotations take two Go maps, each of which takes
// about 330 bytes however few entries it holds: more than the rest of a
// small object's metadata. The forms here keep them as one list of pairs
// instead. A form is read-only once made; its DeepCopyObject returns the
// API type, whole, so that a cache reader (which copies every object it
// returns) hands the API type to its caller.
package compact

import (
	"fmt"
	"reflect"
	"unique"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// meta is an object's metadata as a compact form keeps it: its name,
// namespace, UID (as 16 bytes, see uid) and resource version (what an
// informer and the cache's indexes read of every object); its labels and annotations
// as one array of pairs (keyValues); and the rest of its ObjectMeta (owner
// references, creation time, generation, finalizers...) in its protobuf
// encoding, compressed (deflate), decoded by the getters that read it. The
// ObjectMeta struct alone takes 256 bytes, and an owner reference 80 more
// before its strings; encoded, the rest of an intent's slice's or
// Service's metadata takes some 130, and compressed some 70. GetLabels
// and GetAnnotations make the maps; Label reads one label without making
// one.
type meta struct {
	name, namespace, resourceVersion string
	uid                              uid
	pairs                            keyValues
	rest                             []byte
}

// newMeta holds m as meta.
func newMeta(m metav1.ObjectMeta) (meta, error) {
	out := meta{name: m.Name, namespace: internNamespace(m.Namespace), resourceVersion: m.ResourceVersion, uid: newUID(m.UID), pairs: newKeyValues(m.Labels, m.Annotations)}
	m.Name, m.Namespace, m.ResourceVersion, m.UID, m.Labels, m.Annotations = "", "", "", "", nil, nil
	if err := out.setRest(&m); err != nil {
		return meta{}, err
	}
	return out, nil
}

// internNamespace is the one copy of a namespace's name that the objects
// of that namespace share.
func internNamespace(ns string) string { return unique.Make(ns).Value() }

// setRest encodes m (without the fields meta holds apart) as the rest:
// its protobuf encoding, compressed (deflate).
func (m *meta) setRest(rest *metav1.ObjectMeta) error {
	if reflect.ValueOf(rest).Elem().IsZero() {
		m.rest = nil
		return nil
	}
	b, err := rest.Marshal()
	if err == nil {
		b, err = deflate(b)
	}
	if err != nil {
		return fmt.Errorf("encoding the metadata of %s/%s: %w", m.namespace, m.name, err)
	}
	m.rest = b
	return nil
}

// restMeta decodes the rest. It was encoded by setRest from an ObjectMeta,
// so that decoding it can fail only through a defect, as a DeepCopy can.
func (m *meta) restMeta() metav1.ObjectMeta {
	var out metav1.ObjectMeta
	if len(m.rest) > 0 {
		if err := out.Unmarshal(inflate(m.rest)); err != nil {
			panic(fmt.Sprintf("decoding the cached metadata of %s/%s: %v", m.namespace, m.name, err))
		}
	}
	return out
}

// changeRest applies change to the rest. A form in a cache is never
// changed; the setters are for metav1.Object.
func (m *meta) changeRest(change func(*metav1.ObjectMeta)) {
	rest := m.restMeta()
	change(&rest)
	if err := m.setRest(&rest); err != nil {
		panic(err.Error())
	}
}

// objectMeta is the whole ObjectMeta, the caller's to change.
func (m *meta) objectMeta() metav1.ObjectMeta {
	out := m.restMeta()
	out.Name, out.Namespace, out.ResourceVersion, out.UID = m.name, m.namespace, m.resourceVersion, m.uid.value()
	out.Labels, out.Annotations = m.pairs.Labels(), m.pairs.Annotations()
	return out
}

// GetObjectMeta is m: its getters read what m holds.
func (m *meta) GetObjectMeta() metav1.Object { return m }

func (m *meta) GetName() string                   { return m.name }
func (m *meta) SetName(name string)               { m.name = name }
func (m *meta) GetNamespace() string              { return m.namespace }
func (m *meta) SetNamespace(namespace string)     { m.namespace = namespace }
func (m *meta) GetUID() types.UID                 { return m.uid.value() }
func (m *meta) SetUID(uid types.UID)              { m.uid = newUID(uid) }
func (m *meta) GetResourceVersion() string        { return m.resourceVersion }
func (m *meta) SetResourceVersion(rv string)      { m.resourceVersion = rv }
func (m *meta) GetGenerateName() string           { r := m.restMeta(); return r.GenerateName }
func (m *meta) GetGeneration() int64              { r := m.restMeta(); return r.Generation }
func (m *meta) GetSelfLink() string               { r := m.restMeta(); return r.GetSelfLink() }
func (m *meta) GetCreationTimestamp() metav1.Time { r := m.restMeta(); return r.CreationTimestamp }
func (m *meta) GetDeletionTimestamp() *metav1.Time {
	r := m.restMeta()
	return r.DeletionTimestamp
}
func (m *meta) GetDeletionGracePeriodSeconds() *int64 {
	r := m.restMeta()
	return r.DeletionGracePeriodSeconds
}
func (m *meta) GetFinalizers() []string { r := m.restMeta(); return r.Finalizers }

// GetOwnerReferences decodes the owner references: what a caller changes
// in them does not change m.
func (m *meta) GetOwnerReferences() []metav1.OwnerReference {
	r := m.restMeta()
	return r.OwnerReferences
}
func (m *meta) GetManagedFields() []metav1.ManagedFieldsEntry {
	r := m.restMeta()
	return r.ManagedFields
}
func (m *meta) SetGenerateName(name string) {
	m.changeRest(func(r *metav1.ObjectMeta) { r.GenerateName = name })
}
func (m *meta) SetGeneration(generation int64) {
	m.changeRest(func(r *metav1.ObjectMeta) { r.Generation = generation })
}
func (m *meta) SetSelfLink(selfLink string) {
	m.changeRest(func(r *metav1.ObjectMeta) { r.SetSelfLink(selfLink) })
}
func (m *meta) SetCreationTimestamp(t metav1.Time) {
	m.changeRest(func(r *metav1.ObjectMeta) { r.CreationTimestamp = t })
}
func (m *meta) SetDeletionTimestamp(t *metav1.Time) {
	m.changeRest(func(r *metav1.ObjectMeta) { r.DeletionTimestamp = t })
}
func (m *meta) SetDeletionGracePeriodSeconds(s *int64) {
	m.changeRest(func(r *metav1.ObjectMeta) { r.DeletionGracePeriodSeconds = s })
}
func (m *meta) SetFinalizers(finalizers []string) {
	m.changeRest(func(r *metav1.ObjectMeta) { r.Finalizers = finalizers })
}
func (m *meta) SetOwnerReferences(refs []metav1.OwnerReference) {
	m.changeRest(func(r *metav1.ObjectMeta) { r.OwnerReferences = refs })
}
func (m *meta) SetManagedFields(fields []metav1.ManagedFieldsEntry) {
	m.changeRest(func(r *metav1.ObjectMeta) { r.ManagedFields = fields })
}

// GetLabels makes a map of the labels (nil for none).
func (m *meta) GetLabels() map[string]string { return m.pairs.Labels() }

// GetAnnotations makes a map of the annotations (nil for none).
func (m *meta) GetAnnotations() map[string]string { return m.pairs.Annotations() }

// SetLabels replaces the labels (see changeRest).
func (m *meta) SetLabels(labels map[string]string) {
	m.pairs = newKeyValues(labels, m.pairs.Annotations())
}

// SetAnnotations replaces the annotations (see changeRest).
func (m *meta) SetAnnotations(annotations map[string]string) {
	m.pairs = newKeyValues(m.pairs.Labels(), annotations)
}

// Label is the value of label key, and whether there is one.
func (m *meta) Label(key string) (string, bool) { return m.pairs.Label(key) }

// GetObjectKind is empty, as an object decoded into the cache has it.
func (m *meta) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// encoded is a compact form's metadata and the rest of its object (spec,
// status) in its protobuf encoding.
type encoded struct {
	meta
	body []byte
}

// message is an API type, which encodes itself in protobuf.
type message interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// encode holds m and the encoding of body, an object of m's without
// metadata.
func encode(m metav1.ObjectMeta, body message) (encoded, error) {
	b, err := body.Marshal()
	if err != nil {
		return encoded{}, err
	}
	mm, err := newMeta(m)
	if err != nil {
		return encoded{}, err
	}
	return encoded{meta: mm, body: b}, nil
}

// decode decodes the body into out, an empty object of the type it was
// encoded from, and returns a copy of the metadata for out's. The body
// was encoded from that type by encode, so that decoding it can fail only
// through a defect, as a DeepCopy can.
func (e *encoded) decode(out message) metav1.ObjectMeta {
	if err := out.Unmarshal(e.body); err != nil {
		panic(fmt.Sprintf("decoding the cached %T %s/%s: %v", out, e.namespace, e.name, err))
	}
	return e.objectMeta()
}

// EndpointSlice is an EndpointSlice as the cache keeps it: its metadata
// (see meta), and its address type, endpoints and ports in their protobuf
// encoding, which is read back whenever the slice is. An endpoint takes
// some 100 bytes as a Go struct before what it points to (addresses,
// conditions, target reference, node and zone, each allocated apart), and
// some 20 to 70 encoded.
type EndpointSlice struct {
	encoded
}

var (
	_ metav1.Object  = &EndpointSlice{}
	_ runtime.Object = &EndpointSlice{}
)

// FromEndpointSlice is s in its compact form. It takes s's metadata over:
// s must not be used after.
func FromEndpointSlice(s *discoveryv1.EndpointSlice) (*EndpointSlice, error) {
	e, err := encode(s.ObjectMeta, &discoveryv1.EndpointSlice{AddressType: s.AddressType, Endpoints: s.Endpoints, Ports: s.Ports})
	if err != nil {
		return nil, fmt.Errorf("encoding endpoint slice %s/%s: %w", s.Namespace, s.Name, err)
	}
	return &EndpointSlice{encoded: e}, nil
}

// EndpointSlice is the slice c was made from, which the caller may change.
func (c *EndpointSlice) EndpointSlice() *discoveryv1.EndpointSlice {
	out := &discoveryv1.EndpointSlice{}
	out.ObjectMeta = c.decode(out)
	return out
}

// DeepCopyObject is the whole EndpointSlice (see EndpointSlice).
func (c *EndpointSlice) DeepCopyObject() runtime.Object { return c.EndpointSlice() }

// As is the object of type T that obj holds: obj itself if it is a T, read
// back if it is the compact form of one. The caller must not change it.
func As[T runtime.Object](obj any) (T, bool) {
	switch o := obj.(type) {
	case T:
		return o, true
	case form:
		t, ok := o.DeepCopyObject().(T)
		return t, ok
	}
	var none T
	return none, false
}

// form is a compact form: DeepCopyObject reads it back.
type form interface {
	runtime.Object
	compact()
}

func (e *encoded) compact() {}

// keyValues are an object's labels then its annotations, each sorted by key,
// as key, value, key, value...: one array of strings in place of two maps.
type keyValues struct {
	kv     []string
	labels int // how many of kv's pairs are labels
}

// newKeyValues holds labels and annotations as keyValues.
func newKeyValues(labels, annotations map[string]string) keyValues {
	n := len(labels) + len(annotations)
	if n == 0 {
		return keyValues{}
	}
	kv := make([]string, 0, 2*n)
	kv = appendSorted(kv, labels)
	kv = appendSorted(kv, annotations)
	return keyValues{kv: kv, labels: len(labels)}
}

func appendSorted(kv []string, m map[string]string) []string {
	start := len(kv)
	for k, v := range m {
		kv = append(kv, k, v)
	}
	pairs := kv[start:]
	// Sort pairs by key: a few entries, so an insertion sort on the pairs.
	for i := 2; i < len(pairs); i += 2 {
		for j := i; j > 0 && pairs[j] < pairs[j-2]; j -= 2 {
			pairs[j], pairs[j-2] = pairs[j-2], pairs[j]
			pairs[j+1], pairs[j-1] = pairs[j-1], pairs[j+1]
		}
	}
	return kv
}

// Labels makes a map of the labels (nil for none).
func (p keyValues) Labels() map[string]string { return toMap(p.kv[:2*p.labels]) }

// Annotations makes a map of the annotations (nil for none).
func (p keyValues) Annotations() map[string]string { return toMap(p.kv[2*p.labels:]) }

// Label is the value of label key, and whether there is one.
func (p keyValues) Label(key string) (string, bool) { return lookup(p.kv[:2*p.labels], key) }

// lookup finds key among kv's pairs, sorted by key.
func lookup(kv []string, key string) (string, bool) {
	lo, hi := 0, len(kv)/2
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if kv[2*m] < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if 2*lo < len(kv) && kv[2*lo] == key {
		return kv[2*lo+1], true
	}
	return "", false
}

func toMap(kv []string) map[string]string {
	if len(kv) == 0 {
		return nil
	}
	m := make(map[string]string, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}
