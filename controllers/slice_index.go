package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/netintent/netintent/api/v1alpha1"
)

// sliceIndex names the EndpointSlices netintent manages by the Service
// they belong to, so that a reconcile reads its intent's slices by name
// rather than every slice of the namespace. It stands for a field index of
// the cache, which keeps two sets (maps) an indexed value: about 600 bytes
// for each slice, where a name in a list costs tens.
//
// It is fed by the slice informer's events, which arrive just after the
// cache has stored the slice: a slice the index has not seen yet looks to a
// reconcile as one the cache has not seen (its create is refused as
// existing, and the reconcile looks again), and a slice named here but gone
// from the cache is skipped.
type sliceIndex struct {
	mu        sync.RWMutex
	byService map[types.NamespacedName][]string
}

func newSliceIndex() *sliceIndex {
	return &sliceIndex{byService: map[types.NamespacedName][]string{}}
}

// watch registers the index's handler on the cache's slice informer.
func (x *sliceIndex) watch(ctx context.Context, c cache.Informers) error {
	inf, err := c.GetInformer(ctx, &discoveryv1.EndpointSlice{}, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("getting the EndpointSlice informer: %w", err)
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { x.add(obj) },
		UpdateFunc: func(oldObj, obj any) {
			if serviceOfSlice(oldObj) != serviceOfSlice(obj) {
				x.remove(oldObj)
			}
			x.add(obj)
		},
		DeleteFunc: x.remove,
	})
	if err != nil {
		return fmt.Errorf("watching EndpointSlices: %w", err)
	}
	return nil
}

// serviceOfSlice is the Service a slice that netintent manages belongs to;
// empty for any other slice.
func serviceOfSlice(obj any) types.NamespacedName {
	m, ok := obj.(metav1.Object)
	if !ok {
		return types.NamespacedName{}
	}
	l := m.GetLabels()
	svc := l[discoveryv1.LabelServiceName]
	if svc == "" || l[discoveryv1.LabelManagedBy] != v1alpha1.EndpointSliceManagedBy {
		return types.NamespacedName{}
	}
	return types.NamespacedName{Namespace: m.GetNamespace(), Name: svc}
}

func (x *sliceIndex) add(obj any) {
	svc := serviceOfSlice(obj)
	if svc.Name == "" {
		return
	}
	name := obj.(metav1.Object).GetName()
	x.mu.Lock()
	defer x.mu.Unlock()
	if names := x.byService[svc]; !slices.Contains(names, name) {
		x.byService[svc] = append(names, name)
	}
}

func (x *sliceIndex) remove(obj any) {
	if tombstone, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		if tombstone.Obj == nil {
			x.removeKey(tombstone.Key)
			return
		}
		obj = tombstone.Obj
	}
	svc := serviceOfSlice(obj)
	if svc.Name == "" {
		return
	}
	name := obj.(metav1.Object).GetName()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.drop(svc, name)
}

// removeKey forgets a slice known only by its key, under whichever
// Service of its namespace lists it.
func (x *sliceIndex) removeKey(key string) {
	namespace, name, err := toolscache.SplitMetaNamespaceKey(key)
	if err != nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for svc, names := range x.byService {
		if svc.Namespace == namespace && slices.Contains(names, name) {
			x.drop(svc, name)
		}
	}
}

// drop removes name from svc's list. x.mu is held.
func (x *sliceIndex) drop(svc types.NamespacedName, name string) {
	names := slices.DeleteFunc(x.byService[svc], func(n string) bool { return n == name })
	if len(names) == 0 {
		delete(x.byService, svc)
		return
	}
	x.byService[svc] = names
}

// names are the slices of a Service, as a copy.
func (x *sliceIndex) names(svc types.NamespacedName) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Clone(x.byService[svc])
}
