package dnsserver

import (
	"context"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/netintent/netintent/internal/compact"
)

// The DNS server reads every Service and EndpointSlice on every replica.
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

// Source feeds an Index from the informers of a controller-runtime cache
// (normally the manager's): every Service and EndpointSlice of all namespaces.
// It is a manager.Runnable that runs on every replica, leader or not, since
// every replica answers DNS.
type Source struct {
	informers cache.Informers
	index     *Index
}

var (
	_ manager.Runnable               = &Source{}
	_ manager.LeaderElectionRunnable = &Source{}
)

// NewSource returns a Source that feeds idx from the informers of c.
func NewSource(c cache.Informers, idx *Index) *Source {
	return &Source{informers: c, index: idx}
}

// NeedLeaderElection is false: every replica needs its own index.
func (s *Source) NeedLeaderElection() bool { return false }

// Synced reports whether the index has received the initial lists.
func (s *Source) Synced() bool { return s.index.Synced() }

// ReadyCheck is a healthz.Checker: it fails until the index has synced.
func (s *Source) ReadyCheck(req *http.Request) error { return s.index.ReadyCheck(req) }

// Start registers the event handlers, waits until they have received every
// existing object, marks the index synced, and then keeps it current until ctx
// is done.
func (s *Source) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("dns-source")

	services, err := s.informers.GetInformer(ctx, &corev1.Service{}, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("getting the Service informer: %w", err)
	}
	slices, err := s.informers.GetInformer(ctx, &discoveryv1.EndpointSlice{}, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("getting the EndpointSlice informer: %w", err)
	}
	serviceReg, err := services.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    s.upsertService,
		UpdateFunc: func(_, obj any) { s.upsertService(obj) },
		DeleteFunc: func(obj any) {
			if namespace, name, ok := deletedKey(obj); ok {
				s.index.DeleteService(namespace, name)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching Services: %w", err)
	}
	defer func() { _ = services.RemoveEventHandler(serviceReg) }()
	sliceReg, err := slices.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    s.upsertSlice,
		UpdateFunc: func(_, obj any) { s.upsertSlice(obj) },
		DeleteFunc: func(obj any) {
			if namespace, name, ok := deletedKey(obj); ok {
				s.index.DeleteEndpointSlice(namespace, name)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching EndpointSlices: %w", err)
	}
	defer func() { _ = slices.RemoveEventHandler(sliceReg) }()

	// A registration has synced once its handler has been given every
	// object of the initial list, which is what the index needs.
	if !toolscache.WaitFor(ctx, "", serviceReg.HasSyncedChecker(), sliceReg.HasSyncedChecker()) {
		return nil // stopped before syncing
	}
	s.index.MarkSynced()
	log.Info("DNS index synced")
	<-ctx.Done()
	return nil
}

// upsertService takes a Service as a cache keeps it: whole, or in the
// compact form of the operator's cache.
func (s *Source) upsertService(obj any) {
	if svc, ok := compact.As[*corev1.Service](obj); ok {
		s.index.UpsertService(svc)
	}
}

// upsertSlice takes a slice as a cache keeps it: whole, or in the compact
// form of the operator's cache.
func (s *Source) upsertSlice(obj any) {
	if slice, ok := compact.As[*discoveryv1.EndpointSlice](obj); ok {
		s.index.UpsertEndpointSlice(slice)
	}
}

// deletedKey names a deleted object, also when the informer missed the delete
// itself and delivers a tombstone.
func deletedKey(obj any) (namespace, name string, ok bool) {
	if tombstone, isTombstone := obj.(toolscache.DeletedFinalStateUnknown); isTombstone {
		if o, isObject := tombstone.Obj.(metav1.Object); isObject {
			return o.GetNamespace(), o.GetName(), true
		}
		namespace, name, err := toolscache.SplitMetaNamespaceKey(tombstone.Key)
		return namespace, name, err == nil
	}
	if o, isObject := obj.(metav1.Object); isObject {
		return o.GetNamespace(), o.GetName(), true
	}
	return "", "", false
}
