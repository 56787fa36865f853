package controllers

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
)

// Options configures the reconcilers.
type Options struct {
	// Prober runs active health checks; it must also be added to the
	// manager (it runs on the leader only). Nil: a default prober is made
	// and added.
	Prober *health.Prober
	// IntentWorkers is how many intents are reconciled at once (0: one).
	IntentWorkers int
}

// SetupWithManager registers every netintent reconciler with the manager.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.Prober == nil {
		opts.Prober = health.NewProber(health.Options{})
		if err := mgr.Add(opts.Prober); err != nil {
			return err
		}
	}
	if err := indexPodsByNode(context.Background(), mgr); err != nil {
		return err
	}
	if err := indexSlicesByIntent(context.Background(), mgr); err != nil {
		return err
	}
	if err := (&IntentReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("netintent"),
		Prober:    opts.Prober,
		Workers:   opts.IntentWorkers,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	// LoadBalancer addresses from AddressPools: the two reconcilers share
	// one allocator.
	pools := newAddressPools(mgr.GetClient(), mgr.GetAPIReader())
	if err := (&LoadBalancerReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("netintent"),
		pools:     pools,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&AddressPoolReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("netintent"),
		pools:    pools,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return nil
}

// CacheOptions trims what the manager's cache keeps of each object: the
// operator's memory grows with the cluster, so it keeps only what it reads.
// managedFields are a good part of every cached object, and only those of
// the intents' Services are read (to compare what the operator applied).
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&corev1.Service{}: {Transform: trimService}},
	}
}

// trimService is the Services' cache transform: an intent's Service is
// kept as it is, since the operator compares and writes it; any other is
// only read by the DNS server, which needs neither its managedFields nor
// the copy of it that `kubectl apply` keeps in an annotation.
func trimService(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	if ref := metav1.GetControllerOfNoCopy(svc); ref != nil && ref.Kind == "NetworkIntent" && strings.HasPrefix(ref.APIVersion, v1alpha1.GroupVersion.Group+"/") {
		return svc, nil
	}
	svc.ManagedFields = nil
	delete(svc.Annotations, corev1.LastAppliedConfigAnnotation)
	return svc, nil
}
