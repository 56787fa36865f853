package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unique"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// serviceOwnership holds, for each intent's Service in the cache, the
// fields the operator's field manager owns in it (ownedFields), as JSON,
// read from the Service's managedFields by the cache transform
// (trimService), which then drops the managedFields: they are the
// largest part of a cached Service, and the operator reads nothing else of
// them until it writes the Service, when it reads the Service from the API
// server. Services of one shape own the same fields with the same values
// but for their name, namespace and controller's UID: with those replaced
// by placeholders (ownedShape), one copy of the JSON serves them all. An
// entry stands for one resourceVersion of the Service; the Services'
// informer forgets it when the Service goes. It is one store for the
// process, as the transform is a function of the cache options; keyed by
// UID, it serves every manager the process runs.
var serviceOwnership = ownershipStore{byUID: map[types.UID]ownedEntry{}}

type ownershipStore struct {
	mu    sync.Mutex
	byUID map[types.UID]ownedEntry
}

// ownedEntry is what the operator owns in one version of a Service.
type ownedEntry struct {
	resourceVersion string
	// shape is the owned fields as JSON, with the Service's own strings
	// in it replaced by placeholders; own are those strings.
	shape unique.Handle[string]
	own   ownStrings
}

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

// record reads from svc's managedFields what the operator owns and keeps
// it. It reports whether it did: on an error it keeps nothing, and the
// cache must keep the managedFields for ownedFieldsOf to read.
func (s *ownershipStore) record(svc *corev1.Service) bool {
	owned, err := ownedFields(svc)
	var fields []byte
	if err == nil {
		fields, err = json.Marshal(owned)
	}
	if err != nil {
		s.forget(svc.UID)
		return false
	}
	own := ownStrings{namespace: svc.Namespace, name: svc.Name}
	if ref := controllingIntent(svc); ref != nil {
		own.uid = string(ref.UID)
	}
	shape, ok := ownedShape(string(fields), own)
	if !ok {
		own = ownStrings{}
	}
	s.mu.Lock()
	s.byUID[svc.UID] = ownedEntry{resourceVersion: svc.ResourceVersion, shape: unique.Make(shape), own: own}
	s.mu.Unlock()
	return true
}

// lookup is what the operator owns in version rv of Service uid, if kept.
func (s *ownershipStore) lookup(uid types.UID, rv string) (*corev1ac.ServiceApplyConfiguration, bool, error) {
	s.mu.Lock()
	e, ok := s.byUID[uid]
	s.mu.Unlock()
	if !ok || e.resourceVersion != rv {
		return nil, false, nil
	}
	owned := &corev1ac.ServiceApplyConfiguration{}
	if err := json.Unmarshal(fromShape(e.shape.Value(), e.own), owned); err != nil {
		return nil, false, fmt.Errorf("reading owned fields of service: %w", err)
	}
	return owned, true, nil
}

// retain forgets what is kept of Service uid unless it stands for version
// rv.
func (s *ownershipStore) retain(uid types.UID, rv string) {
	s.mu.Lock()
	if e, ok := s.byUID[uid]; ok && e.resourceVersion != rv {
		delete(s.byUID, uid)
	}
	s.mu.Unlock()
}

func (s *ownershipStore) forget(uid types.UID) {
	s.mu.Lock()
	delete(s.byUID, uid)
	s.mu.Unlock()
}

// holds reports whether the store holds anything of Service uid.
func (s *ownershipStore) holds(uid types.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.byUID[uid]
	return ok
}

// forgetDeletedServices makes the Services' informer of mgr's cache forget
// each Service that goes, on every replica (the cache runs on standbys
// too, the controllers only on the leader).
func forgetDeletedServices(mgr manager.Manager) error {
	inf, err := mgr.GetCache().GetInformer(context.Background(), &corev1.Service{})
	if err != nil {
		return fmt.Errorf("watching Services: %w", err)
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if svc, ok := obj.(client.Object); ok {
				serviceOwnership.forget(svc.GetUID())
			}
		},
	})
	return err
}
