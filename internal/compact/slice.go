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

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// meta is an object's metadata as a compact form keeps it: its ObjectMeta
// with Labels and Annotations always nil, and those held as Pairs. GetLabels
// and GetAnnotations make the maps; Label reads one label without making
// one.
type meta struct {
	metav1.ObjectMeta
	pairs Pairs
}

func newMeta(m metav1.ObjectMeta) meta {
	pairs := NewPairs(m.Labels, m.Annotations)
	m.Labels, m.Annotations = nil, nil
	return meta{ObjectMeta: m, pairs: pairs}
}

// objectMeta is a deep copy of the ObjectMeta, with its labels and
// annotations.
func (m *meta) objectMeta() metav1.ObjectMeta {
	var out metav1.ObjectMeta
	m.DeepCopyInto(&out)
	out.Labels, out.Annotations = m.pairs.Labels(), m.pairs.Annotations()
	return out
}

// GetObjectMeta is m, whose own ObjectMeta holds no labels or annotations.
func (m *meta) GetObjectMeta() metav1.Object { return m }

// GetLabels makes a map of the labels (nil for none).
func (m *meta) GetLabels() map[string]string { return m.pairs.Labels() }

// GetAnnotations makes a map of the annotations (nil for none).
func (m *meta) GetAnnotations() map[string]string { return m.pairs.Annotations() }

// SetLabels replaces the labels. A form in a cache is never changed; this
// is for metav1.Object.
func (m *meta) SetLabels(labels map[string]string) {
	m.pairs = NewPairs(labels, m.pairs.Annotations())
}

// SetAnnotations replaces the annotations (see SetLabels).
func (m *meta) SetAnnotations(annotations map[string]string) {
	m.pairs = NewPairs(m.pairs.Labels(), annotations)
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
	return encoded{meta: newMeta(m), body: b}, nil
}

// decode decodes the body into out, an empty object of the type it was
// encoded from, and returns a copy of the metadata for out's. The body
// was encoded from that type by encode, so that decoding it can fail only
// through a defect, as a DeepCopy can.
func (e *encoded) decode(out message) metav1.ObjectMeta {
	if err := out.Unmarshal(e.body); err != nil {
		panic(fmt.Sprintf("decoding the cached %T %s/%s: %v", out, e.Namespace, e.Name, err))
	}
	return e.objectMeta()
}

// EndpointSlice is an EndpointSlice as the cache keeps it: its metadata
// (labels and annotations as Pairs), and its address type, endpoints and
// ports in their protobuf encoding, which is read back whenever the slice
// is. An endpoint takes some 100 bytes as a Go struct before what it
// points to (addresses, conditions, target reference, node and zone, each
// allocated apart), and some 20 to 70 encoded.
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

// Pairs are an object's labels then its annotations, each sorted by key,
// as key, value, key, value...: one array of strings in place of two maps.
type Pairs struct {
	kv     []string
	labels int // how many of kv's pairs are labels
}

// NewPairs holds labels and annotations as Pairs.
func NewPairs(labels, annotations map[string]string) Pairs {
	n := len(labels) + len(annotations)
	if n == 0 {
		return Pairs{}
	}
	kv := make([]string, 0, 2*n)
	kv = appendSorted(kv, labels)
	kv = appendSorted(kv, annotations)
	return Pairs{kv: kv, labels: len(labels)}
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
func (p Pairs) Labels() map[string]string { return toMap(p.kv[:2*p.labels]) }

// Annotations makes a map of the annotations (nil for none).
func (p Pairs) Annotations() map[string]string { return toMap(p.kv[2*p.labels:]) }

// Label is the value of label key, and whether there is one.
func (p Pairs) Label(key string) (string, bool) { return lookup(p.kv[:2*p.labels], key) }

// Annotation is the value of annotation key, and whether there is one.
func (p Pairs) Annotation(key string) (string, bool) { return lookup(p.kv[2*p.labels:], key) }

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
