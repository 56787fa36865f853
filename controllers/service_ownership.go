package controllers

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/netintent/netintent/internal/compact"
)

// What the operator owns in an intent's Service (ownedFields), which it
// compares with what it would apply, is read from the Service's
// managedFields. The cache transform (trimService) reads it once, as JSON,
// and keeps it with the cached Service (compact.Service's Keep), then drops
// the managedFields: they are the largest part of a cached Service, and
// the operator reads nothing else of them until it writes the Service,
// when it reads the Service from the API server. Services of one shape own
// the same fields with the same values but for their name, namespace and
// controller's UID: with those replaced by placeholders (ownedShape), one
// copy of the JSON serves them all (unique.Make), and what is kept goes
// with the cached version of the Service it was read from.

// ownStrings are the strings of a Service that its owned fields share
// with no other Service's: its name and namespace (also its controller's
// name and label, as an intent's Service is named after it) and its
// controller's UID. Empty ones are not replaced.
type ownStrings struct {
	uid, namespace, name string
}

// placeholders stand for ownStrings' fields, in their order, in a shape.
// JSON holds no NUL byte outside an escape, so no value holds them.
var placeholders = [3]string{"\"\x00uid\"", "\"\x00namespace\"", "\"\x00name\""}

func (o ownStrings) values() [3]string { return [3]string{o.uid, o.namespace, o.name} }

// ownedShape is raw, the owned fields as JSON, with the JSON strings equal
// to one of own's replaced by its placeholder; ok is false (and raw comes
// back as it is) should the shape not give raw back.
func ownedShape(raw string, own ownStrings) (shape string, ok bool) {
	shape = raw
	for i, v := range own.values() {
		if v != "" {
			shape = strings.ReplaceAll(shape, strconv.Quote(v), placeholders[i])
		}
	}
	if string(fromShape(shape, own)) != raw {
		return raw, false
	}
	return shape, true
}

// fromShape undoes ownedShape, in one pass.
func fromShape(shape string, own ownStrings) []byte {
	vals := own.values()
	// Room for the name three times (the Service's, its label's and its
	// controller's), the others once: what an intent's Service holds.
	out := make([]byte, 0, len(shape)+len(own.uid)+3*len(own.name)+len(own.namespace))
	for {
		i := strings.Index(shape, "\"\x00")
		if i < 0 {
			return append(out, shape...)
		}
		out, shape = append(out, shape[:i]...), shape[i:]
		n := 1 // not a placeholder: the quote goes as it is
		for k, p := range placeholders {
			if vals[k] != "" && strings.HasPrefix(shape, p) {
				out, n = strconv.AppendQuote(out, vals[k]), len(p)
				break
			}
		}
		if n == 1 {
			out = append(out, '"')
		}
		shape = shape[n:]
	}
}

// ownedShapeOf reads from svc's managedFields what the operator owns in
// it, as its shape (ownedShape); ok is false when it cannot be read, and
// the cache must keep the managedFields for ownedFieldsOf to read.
func ownedShapeOf(svc *corev1.Service) (shape unique.Handle[string], ok bool) {
	owned, err := ownedFields(svc)
	var fields []byte
	if err == nil {
		fields, err = json.Marshal(owned)
	}
	if err != nil {
		return shape, false
	}
	// A shape that does not give the JSON back is kept as the JSON, which
	// holds no placeholder for fromShape to fill.
	raw, _ := ownedShape(string(fields), ownStringsOf(svc))
	return unique.Make(raw), true
}

// ownStringsOf are obj's own strings (see ownStrings).
func ownStringsOf(obj metav1.Object) ownStrings {
	own := ownStrings{namespace: obj.GetNamespace(), name: obj.GetName()}
	if ref := controllingIntent(obj); ref != nil {
		own.uid = string(ref.UID)
	}
	return own
}

// keptOwnedFields is what the operator owns in svc as the cache transform
// kept it with the cached Service, when the cache (store, the Services'
// informer's) holds that very version of it; ok is false when it does
// not.
func keptOwnedFields(store toolscache.Store, svc *corev1.Service) (owned *corev1ac.ServiceApplyConfiguration, ok bool, err error) {
	if store == nil {
		return nil, false, nil
	}
	obj, exists, err := store.GetByKey(toolscache.MetaObjectToName(svc).String())
	if err != nil {
		return nil, false, fmt.Errorf("reading the cached service: %w", err)
	}
	held, isCompact := obj.(*compact.Service)
	if !exists || !isCompact || held.GetUID() != svc.UID || held.GetResourceVersion() != svc.ResourceVersion {
		return nil, false, nil
	}
	return ownedFieldsKept(held)
}

// ownedFieldsKept is what the operator owns in held, as the cache
// transform kept it; ok is false when it kept nothing.
func ownedFieldsKept(held *compact.Service) (owned *corev1ac.ServiceApplyConfiguration, ok bool, err error) {
	shape, ok := held.Kept()
	if !ok {
		return nil, false, nil
	}
	owned = &corev1ac.ServiceApplyConfiguration{}
	if err := json.Unmarshal(fromShape(shape.Value(), ownStringsOf(held)), owned); err != nil {
		return nil, false, fmt.Errorf("reading owned fields of service: %w", err)
	}
	return owned, true, nil
}
